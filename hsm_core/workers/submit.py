"""``hsm worker submit``: start N identical workers on a batch scheduler (or as local processes).

A scheduler's workers are one array job of N elements, which its plugin renders and submits
(:meth:`~hsm_core.plugin.ComputeSource.submit_workers`, implemented once for every scheduler by
:class:`~hsm_core.plugin.ArrayJobSource`): each element runs one ``hsm worker``, and is requeued
when preempted (its worker then resumes the interrupted task first). Local: N background processes.

Options come from where the scheduler's source reads them (``hpc:``, ``compute.<kind>``,
``hpc.clusters.<cluster>``: see :mod:`hsm_core.sources`) and the command-line overrides. The job
script is written under ``<sweep>/scripts/job_scripts/`` and is kept, so it can be read, edited and
resubmitted by hand. Each submission is recorded in ``logs/workers/submissions.jsonl`` with the
command that stops it (``hsm cancel`` of the sweep prints it).
"""

from __future__ import annotations

import datetime as _dt
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from hsm_core.plugin import ComputeSourceRecord, ConfigError, HsmError, SourceContext, WorkerArray
from hsm_core.workers.layout import WorkerSweep

LOCAL = "local"


@dataclass
class SubmitRequest:
    """What to submit."""

    sweep: WorkerSweep
    project_root: Path
    sweep_file: Path
    workers: int
    source: str  #: ``local`` or a batch scheduler's kind
    cluster: str
    #: Arguments for each ``hsm worker`` (after ``--sweep``/``--cluster``/``--project-dir``).
    worker_args: list[str] = field(default_factory=list)
    #: The scheduler source's options (walltime, partition, gpus, cpus, memory, setup_commands ...).
    options: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  #: added to local workers' environment
    python: str = sys.executable
    job_name: str = ""


@dataclass
class Submitted:
    """The result of a submission."""

    source: str
    script: Path | None
    job_id: str | None = None
    pids: list[int] = field(default_factory=list)
    command: list[str] = field(default_factory=list)


def scheduler_request(
    text: str, project_config: Mapping[str, Any], registry: Any, cluster: str | None, overrides: Mapping[str, Any]
) -> tuple[str, str, dict[str, Any]]:
    """``--sources TEXT`` of ``hsm worker submit`` as ``(kind, cluster name, options)``.

    ``TEXT`` is ``local``, an installed batch scheduler (``KIND``, ``KIND:CLUSTER``), or ``hpc[:CLUSTER]``
    (``hpc.system``, else the scheduler detected here). Options: the source's own (see
    :func:`hsm_core.sources.parse_sources`), the entry ``hpc.clusters.<cluster>`` when ``--cluster``
    names one, then the command-line ``overrides`` (later wins).
    """
    from hsm_core.registry import scheduler_records
    from hsm_core.sources import parse_sources

    if text.strip().lower() == LOCAL:
        return LOCAL, cluster or LOCAL, {}
    requests = parse_sources(text, project_config, registry)
    if len(requests) != 1:
        raise HsmError(f"give one place for the workers, not {text!r}", hint="e.g. --sources hpc")
    req = requests[0]
    schedulers = scheduler_records(registry)
    if req.kind not in schedulers:
        choices = ", ".join([LOCAL, *schedulers, "hpc"])
        raise HsmError(f"--sources {text}: the {req.kind} source cannot start workers", hint=f"use one of: {choices}")
    options = dict(req.options)
    clusters = (project_config.get("hpc") or {}).get("clusters") or {}
    if cluster and cluster != req.name and isinstance(clusters.get(cluster), Mapping):
        options.update(clusters[cluster])
    from hsm_core.run_resources import overlay_options

    overlay_options(options, overrides)
    return req.kind, cluster or req.name, options


def worker_command(req: SubmitRequest) -> list[str]:
    """The ``hsm worker`` command each array element runs."""
    return [
        req.python, "-m", "hsm_core", "worker",
        "--sweep", str(req.sweep_file.resolve()),
        "--cluster", req.cluster,
        "--project-dir", str(req.project_root.resolve()),
        *req.worker_args,
    ]  # fmt: skip


def _stamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d_%H%M%S_%f")


def submit(req: SubmitRequest, registry: Any, project_config: Mapping[str, Any], *, dry_run: bool = False) -> Submitted:
    """Write the job script and submit it (or start the local processes) for ``req``."""
    if req.workers < 1:
        raise ConfigError("--workers must be at least 1")
    logs = req.sweep.logs_dir / "workers"
    logs.mkdir(parents=True, exist_ok=True)
    if req.source == LOCAL:
        return _start_local(req, logs, dry_run)
    source = _scheduler(req, registry, project_config)
    if not dry_run:
        _require_commands(req, registry)
    array = WorkerArray(
        count=req.workers,
        command=tuple(worker_command(req)),
        job_name=req.job_name or f"hsm-w-{req.sweep.sweep_id}",
        project_root=req.project_root.resolve(),
        script_dir=req.sweep.path / "scripts" / "job_scripts",
        log_dir=logs,
        stamp=_stamp(),
    )
    try:
        done = source.submit_workers(array, dry_run=dry_run)
    except NotImplementedError as exc:
        raise HsmError(f"--sources {req.source}: {exc}", hint="use --sources local, or another scheduler") from None
    finally:
        source.close()
    if not dry_run:
        _record(req, {"source": req.source, "job_id": done.job_id, "script": str(done.script), "workers": req.workers,
                      "submitter": done.submit_command[0] if done.submit_command else None,
                      "cancel": list(done.cancel_command)})
    return Submitted(req.source, done.script, job_id=done.job_id, command=list(done.submit_command))


def _scheduler(req: SubmitRequest, registry: Any, project_config: Mapping[str, Any]) -> Any:
    from hsm_core.sources import SourceRequest, create_sources

    context = SourceContext(sweep_id=req.sweep.sweep_id, sweep_dir=req.sweep.path.resolve(),
                            project_root=req.project_root.resolve(), project_config=project_config)
    return create_sources([SourceRequest(req.source, req.cluster, None, dict(req.options))], registry, context)[0]


def _require_commands(req: SubmitRequest, registry: Any) -> None:
    """The scheduler's client commands must be here to submit (a dry run only writes the script)."""
    from hsm_core.sources import SourceRequest, missing_local_commands

    record = registry.get(ComputeSourceRecord.kind, req.source)
    missing = missing_local_commands(SourceRequest(req.source, req.cluster, None, dict(req.options)), record)
    if missing:
        raise HsmError(f"{missing[0]} is not on PATH: is this a {req.source} login node?",
                       hint="--dry-run writes the job script without submitting it")


def _start_local(req: SubmitRequest, logs: Path, dry_run: bool) -> Submitted:
    import os

    cmd = worker_command(req)
    if dry_run:
        return Submitted(LOCAL, None, command=cmd)
    env = {**os.environ, **req.env}
    pids = []
    stamp = _stamp()
    for i in range(req.workers):
        log = open(logs / f"local-{stamp}-{i}.log", "ab")
        try:
            proc = subprocess.Popen(cmd, cwd=req.project_root, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        pids.append(proc.pid)
    _record(req, {"source": LOCAL, "pids": pids, "workers": req.workers})
    return Submitted(LOCAL, None, pids=pids, command=cmd)


def _record(req: SubmitRequest, entry: dict[str, Any]) -> None:
    """Append the submission to ``logs/workers/submissions.jsonl`` (for people, ``hsm cancel`` and
    ``hsm worker --status``)."""
    entry = {"time": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), "cluster": req.cluster, **entry}
    with open(req.sweep.logs_dir / "workers" / "submissions.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
