"""``hsm worker submit``: start N identical workers on a scheduler (or as local processes).

Slurm: one array job ``--array=0-(N-1)`` with ``--requeue`` (a preempted or requeued element
restarts its worker, which resumes the interrupted task first) and ``--open-mode=append`` (a
requeued element's output is added to its log, not truncated). PBS (Pro, Torque, or Slurm's
Torque front-end): ``qsub -J 0-(N-1)`` with ``-r y``. Local: N background processes.

Resources come from ``hpc:`` (and ``hpc.clusters.<cluster>``) in ``hsm_config.yaml``, read with
the same rules as the scheduler sources (:func:`hsm_core.plugin.resources_from_options`), and
command-line overrides. The job script is written under ``<sweep>/scripts/job_scripts/`` and is
kept, so it can be read, edited and resubmitted by hand.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from hsm_core.atomic import atomic_write_text
from hsm_core.plugin import ConfigError, HsmError
from hsm_core.workers.layout import WorkerSweep

SOURCES = ("slurm", "pbs", "local")


@dataclass
class SubmitRequest:
    """What to submit."""

    sweep: WorkerSweep
    project_root: Path
    sweep_file: Path
    workers: int
    source: str
    cluster: str
    #: Arguments for each ``hsm worker`` (after ``--sweep``/``--cluster``/``--project-dir``).
    worker_args: list[str] = field(default_factory=list)
    #: Options as in an ``hpc:`` section (walltime, partition, gpus, cpus, memory, setup_commands ...).
    options: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  #: exported in the job script
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


def scheduler_options(project_config: Mapping[str, Any], cluster: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``hpc:`` merged with ``hpc.clusters.<cluster>`` and the command-line overrides (later wins)."""
    hpc = dict(project_config.get("hpc") or {})
    clusters = hpc.pop("clusters", None) or {}
    out = dict(hpc)
    out.update(clusters.get(cluster) or {})
    out.update({k: v for k, v in overrides.items() if v not in (None, "")})
    return out


def worker_command(req: SubmitRequest) -> list[str]:
    """The ``hsm worker`` command each array element runs."""
    return [
        req.python, "-m", "hsm_core", "worker",
        "--sweep", str(req.sweep_file.resolve()),
        "--cluster", req.cluster,
        "--project-dir", str(req.project_root.resolve()),
        *req.worker_args,
    ]  # fmt: skip


def _body(req: SubmitRequest) -> list[str]:
    from hsm_core.plugin import check_line

    q = shlex.quote
    lines = [f"cd {q(str(req.project_root.resolve()))} || exit 1"]
    for i, cmd in enumerate(req.options.get("setup_commands") or []):
        lines.append(check_line(cmd, f"setup_commands[{i}]"))
    for k, v in sorted(req.env.items()):
        lines.append(f"export {k}={q(v)}")
    # exec: the worker is the job's main process, so the scheduler's signals reach it directly.
    lines.append("exec " + " ".join(q(a) for a in worker_command(req)))
    return lines


def render_slurm(req: SubmitRequest, log_dir: str) -> str:
    """A Slurm batch script running one worker per array element (pure function)."""
    from hsm_core.plugin import check_name, finish_directives, format_memory, format_walltime, resources_from_options

    res = resources_from_options(req.options)
    name = check_name(req.job_name or f"hsm-w-{req.sweep.sweep_id}", "job_name")
    d = [
        f"#SBATCH --job-name={name}",
        f"#SBATCH --array=0-{req.workers - 1}",
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
        f"#SBATCH --output={log_dir}/slurm-%A_%a.out",
    ]
    if res.walltime:
        d.append(f"#SBATCH --time={format_walltime(res.walltime)}")
    if res.partition:
        d.append(f"#SBATCH --partition={res.partition}")
    if res.account:
        d.append(f"#SBATCH --account={res.account}")
    if res.qos:
        d.append(f"#SBATCH --qos={res.qos}")
    if res.nodes:
        d.append(f"#SBATCH --nodes={res.nodes}")
    if res.cpus:
        d.append(f"#SBATCH --cpus-per-task={res.cpus}")
    if res.memory_mb:
        d.append(f"#SBATCH --mem={format_memory(res.memory_mb, 'slurm')}")
    if res.gpus:
        d.append(f"#SBATCH --gres=gpu:{res.gpus}")
    d = finish_directives("#SBATCH", d, req.options.get("extra_directives") or (), req.options.get("skip_directives") or ())
    return "\n".join(["#!/bin/bash", *d, "", *_body(req)]) + "\n"


def render_pbs(req: SubmitRequest, log_dir: str) -> str:
    """A PBS (Pro/Torque) script running one worker per array element (pure function)."""
    from hsm_core.plugin import check_name, finish_directives, format_memory, format_walltime, resources_from_options

    res = resources_from_options(req.options)
    name = check_name(req.job_name or f"hsm-w-{req.sweep.sweep_id}", "job_name")[:15]
    d = [f"#PBS -N {name}", "#PBS -r y", "#PBS -j oe", f"#PBS -o {log_dir}/"]
    if req.workers > 1:
        d.append(f"#PBS -J 0-{req.workers - 1}")
    if res.walltime:
        d.append(f"#PBS -l walltime={format_walltime(res.walltime)}")
    if res.partition:
        d.append(f"#PBS -q {res.partition}")
    if res.account:
        d.append(f"#PBS -A {res.account}")
    chunk = []
    if res.cpus:
        chunk.append(f"ncpus={res.cpus}")
    if res.memory_mb:
        chunk.append(f"mem={format_memory(res.memory_mb, 'pbs')}")
    if res.gpus:
        chunk.append(f"ngpus={res.gpus}")
    if chunk:
        d.append("#PBS -l select=1:" + ":".join(chunk))
    d = finish_directives("#PBS", d, req.options.get("extra_directives") or (), req.options.get("skip_directives") or ())
    return "\n".join(["#!/bin/bash", *d, "", *_body(req)]) + "\n"


def _stamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d_%H%M%S_%f")


def submit(req: SubmitRequest, *, dry_run: bool = False, env: Mapping[str, str] | None = None) -> Submitted:
    """Write the job script (or start the processes) for ``req``."""
    if req.source not in SOURCES:
        raise HsmError(f"unknown --sources {req.source!r} for workers", hint="use one of: " + ", ".join(SOURCES))
    if req.workers < 1:
        raise ConfigError("--workers must be at least 1")
    jobs = req.sweep.path / "scripts" / "job_scripts"
    jobs.mkdir(parents=True, exist_ok=True)
    logs = req.sweep.logs_dir / "workers"
    logs.mkdir(parents=True, exist_ok=True)
    run_env = dict(os.environ if env is None else env)
    if req.source == "local":
        return _start_local(req, logs, run_env, dry_run)
    # Log paths relative to the submission dir keep user paths (spaces ...) out of directives.
    log_rel = os.path.relpath(logs, jobs)
    stamp = _stamp()
    if req.source == "slurm":
        text, exe, name = render_slurm(req, log_rel), "sbatch", f"workers_{stamp}.sbatch"
        argv = [exe, "--parsable", name]
    else:
        text, exe, name = render_pbs(req, log_rel), "qsub", f"workers_{stamp}.pbs"
        argv = [exe, name]
    script = jobs / name
    atomic_write_text(script, text)
    os.chmod(script, 0o755)
    if dry_run:
        return Submitted(req.source, script, command=argv)
    if shutil.which(exe, path=run_env.get("PATH")) is None:
        raise HsmError(f"{exe} is not on PATH: is this a {req.source} login node?",
                       hint=f"the job script is ready: {script}")
    try:
        proc = subprocess.run(argv, cwd=jobs, env=run_env, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise HsmError(f"{exe} did not answer within 120 s", hint=f"submit by hand: cd {jobs} && {' '.join(argv)}") from None
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip().splitlines()
        raise HsmError(f"{exe} refused the workers job: {said[-1] if said else 'exit ' + str(proc.returncode)}",
                       hint=f"script: {script}")
    job_id = proc.stdout.strip().splitlines()[-1].split(";")[0].strip() if proc.stdout.strip() else None
    _record(req, {"source": req.source, "submitter": exe, "job_id": job_id, "script": str(script), "workers": req.workers})
    return Submitted(req.source, script, job_id=job_id, command=argv)


def _start_local(req: SubmitRequest, logs: Path, env: dict[str, str], dry_run: bool) -> Submitted:
    cmd = worker_command(req)
    if dry_run:
        return Submitted("local", None, command=cmd)
    env = {**env, **req.env}
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
    _record(req, {"source": "local", "pids": pids, "workers": req.workers})
    return Submitted("local", None, pids=pids, command=cmd)


def _record(req: SubmitRequest, entry: dict[str, Any]) -> None:
    """Append the submission to ``logs/workers/submissions.jsonl`` (for people and ``hsm worker --status``)."""
    entry = {"time": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), "cluster": req.cluster, **entry}
    with open(req.sweep.logs_dir / "workers" / "submissions.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
