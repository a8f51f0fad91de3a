"""CLI: ``hsm remote add/list/test/health/sync`` and ``hsm collect-results``.

``hsm test ssh:NAME`` (core's ``test`` command) and ``hsm sync --force --target ssh:NAME`` (core's
``sync`` group) reach ``remote test`` and ``remote sync`` through the command tree. paramiko is
imported only when a command connects.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

import click

from hsm_core.plugin import HsmError, ProjectLocation

LOCAL_DIR = click.option("--local-dir", "local_dir", type=click.Path(file_okay=False),
                         help="Local project root (default: found from the current directory).")


def _project(local_dir: str | None) -> ProjectLocation:
    from hsm_core.plugin import locate_project

    return locate_project(local_dir)


def _remotes(project: ProjectLocation) -> dict[str, Any]:
    """``distributed.remotes`` by name (empty when none)."""
    return dict(project.setting("distributed.remotes") or {})


def _ssh_defaults(project: ProjectLocation) -> dict[str, Any]:
    """The project's ``ssh:`` section (defaults of every remote)."""
    return dict(project.setting("ssh") or {})


def _remote(project: ProjectLocation, name: str) -> dict[str, Any]:
    remotes = _remotes(project)
    if name not in remotes:
        known = ", ".join(sorted(remotes)) or "none configured"
        raise HsmError(f"unknown remote {name!r} (remotes: {known})", hint=f"add it with: hsm remote add {name} --host HOST")
    return dict(remotes[name] or {})


def _host(project: ProjectLocation, name: str) -> Any:
    from hsm_plugin_ssh.host import shared_host

    return shared_host(name, _remote(project, name), _ssh_defaults(project))


def _names(project: ProjectLocation, name: str | None) -> list[str]:
    if name:
        _remote(project, name)
        return [name]
    names = sorted(_remotes(project))
    if not names:
        raise HsmError("no remotes configured (distributed.remotes is empty)", hint="add one with: hsm remote add NAME --host HOST")
    return names


@click.group("remote")
def remote_group() -> None:
    """Remote machines for --sources ssh:NAME (distributed.remotes in hsm_config.yaml)."""


# -- add ------------------------------------------------------------------------------------------
@remote_group.command("add")
@click.argument("name")
@click.option("--host", required=True, help="Host name, address or ~/.ssh/config alias.")
@click.option("--user", help="Login name (default: ~/.ssh/config, else yours).")
@click.option("--port", type=click.IntRange(1, 65535), help="SSH port (default 22).")
@click.option("--key", "key", help="Private key file (e.g. ~/.ssh/id_ed25519).")
@click.option("--project-dir", help="Project root on the remote (default: same path relative to $HOME).")
@click.option("--python", "python", help="Python on the remote (default: its hsm_config.yaml's, else python3).")
@click.option("--max-parallel-jobs", type=click.IntRange(min=1), help="Tasks at once on the remote.")
@click.option("--known-hosts", help="Extra known_hosts file for this remote (--trust-host-key writes there).")
@click.option("--trust-host-key", is_flag=True, help="Fetch the host's key and add it to known_hosts (prints its fingerprint).")
@LOCAL_DIR
def add_command(name: str, host: str, user: str | None, port: int | None, key: str | None, project_dir: str | None,
                python: str | None, max_parallel_jobs: int | None, known_hosts: str | None, trust_host_key: bool,
                local_dir: str | None) -> None:
    """Add (or update) remote NAME in hsm_config.yaml; the rest of the file is kept."""
    from hsm_core.plugin import set_project_setting

    from hsm_plugin_ssh.settings import check_remote_name

    check_remote_name(name)
    project = _project(local_dir)
    given = {"host": host, "user": user, "port": port, "key": key, "project_dir": project_dir,
             "python_interpreter": python, "max_parallel_jobs": max_parallel_jobs, "known_hosts": known_hosts}
    given = {k: v for k, v in given.items() if v is not None}
    existing = dict(_remotes(project).get(name) or {})
    if key and "ssh_key" in existing:
        given["ssh_key"] = key  # the v1 spelling is what the file uses: keep one key setting
        given.pop("key")
    entry = {**existing, **given}
    path = project.settings_file
    if entry == existing:
        click.echo(f"Remote {name} unchanged in {path}")
    elif not existing:
        path = set_project_setting(project.root, f"distributed.remotes.{name}", entry)
        click.echo(f"Added remote {name} ({_where(entry)}) to {path}")
    else:
        # One key at a time keeps the file's comments (each write is atomic and validated).
        for k, v in given.items():
            if existing.get(k) != v:
                path = set_project_setting(project.root, f"distributed.remotes.{name}.{k}", v)
        click.echo(f"Updated remote {name} ({_where(entry)}) in {path}")
    if trust_host_key:
        from hsm_plugin_ssh.settings import resolve
        from hsm_plugin_ssh.trust import trust_host_key as trust

        s = resolve(name, entry, _ssh_defaults(project))
        res = trust(s)
        if res.added:
            click.echo(f"Trusted {s.known_hosts_name}: {res.key_type} {res.fingerprint} (added to {res.file})")
        else:
            click.echo(f"Host key of {s.known_hosts_name} already trusted: {res.key_type} {res.fingerprint}")
    click.echo(f"Next: hsm remote test {name}")


def _where(entry: dict[str, Any]) -> str:
    user = f"{entry['user']}@" if entry.get("user") else ""
    port = f":{entry['port']}" if entry.get("port") else ""
    return f"{user}{entry.get('host')}{port}"


# -- list -----------------------------------------------------------------------------------------
@remote_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@LOCAL_DIR
def list_command(as_json: bool, local_dir: str | None) -> None:
    """List the configured remotes."""
    project = _project(local_dir)
    remotes = _remotes(project)
    if as_json:
        click.echo(json.dumps(remotes, indent=1, sort_keys=True, default=str))
        return
    if not remotes:
        click.echo("No remotes configured. Add one with: hsm remote add NAME --host HOST")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Remotes ({project.config_file or project.root})")
    for col in ("Name", "Host", "Key", "Max jobs", "Project dir", "Python"):
        table.add_column(col, overflow="fold")
    for name, e in sorted(remotes.items()):
        e = e or {}
        table.add_row(name, _where(e), str(e.get("key") or e.get("ssh_key") or "-"),
                      str(e.get("max_parallel_jobs") or "auto"), str(e.get("project_dir") or "auto"),
                      str(e.get("python_interpreter") or "auto"))
    Console(highlight=False, width=max(100, Console().width)).print(table)


# -- test -----------------------------------------------------------------------------------------
def test_remote(name: str, project: ProjectLocation, *, run_task: bool = False, timeout: float = 120.0,
                echo: Callable[[str], None] = click.echo) -> bool:
    """Connect to ``name``, find the project, Python and hsm there, check sync; optionally run a
    one-task sweep through the ssh source. Returns True when every check passed."""
    from hsm_plugin_ssh.discovery import discover
    from hsm_plugin_ssh.sync_check import check_remote

    ok = True

    def check(what: str, passed: bool, detail: str = "") -> None:
        nonlocal ok
        ok = ok and passed
        echo(f"  [{'ok' if passed else 'FAILED'}] {what}" + (f": {detail}" if detail else ""))

    options = _remote(project, name)
    host = _host(project, name)
    echo(f"Testing remote {name} ({host.settings.describe()})")
    try:
        host.connect()
    except HsmError as exc:
        check("connect", False, str(exc))
        return False
    check("connect", True, "host key verified, logged in")
    rp = discover(host, options, project.root)
    check("project found", rp.exists, rp.project_dir if rp.exists else f"not in {', '.join(rp.candidates)} (push it: hsm remote sync {name})")
    if rp.exists:
        echo(f"  remote hsm_config.yaml: {rp.config_path or 'none (defaults)'}")
    if rp.python_ok:
        check("python", True, f"{rp.python} ({rp.python_from})")
    else:
        check("python", False, f"{rp.problems[-1]} ({rp.hints[-1]})" if rp.problems else rp.python)
    if rp.python_ok:
        from hsm_core.plugin import CORE_VERSION as local_version

        if rp.hsm_version:
            same = rp.hsm_version == local_version
            check("hsm-core installed", True, f"version {rp.hsm_version}" + ("" if same else f" (here: {local_version})"))
        else:
            check("hsm-core installed", False, f"{rp.problems[-1]} ({rp.hints[-1]})")
    rsync = host.has_rsync()
    echo(f"  file transfer: {'rsync over ssh' if rsync else 'SFTP (no rsync on one side)'}")
    if rp.exists and rp.python_ok:
        report = check_remote(name, options, project.root, project.config, host=host, remote=rp)
        check("project in sync", report.in_sync, report.summary() if not report.in_sync else f"{report.checked} file(s) compared")
        said = {*rp.problems, *(f"{p} ({h})" for p, h in zip(rp.problems, rp.hints))}
        for note in report.notes:
            if note not in said:  # a discovery problem was already its own check line above
                echo(f"    ! {note}")
    if run_task and ok:
        passed, detail = _run_test_task(name, options, project, rp, timeout)
        check("test task completed", passed, detail)
    elif run_task:
        echo("  test task not run (fix the checks above first)")
    return ok


def _run_test_task(name: str, options: dict[str, Any], project: ProjectLocation, rp: Any, timeout: float) -> tuple[bool, str]:
    from hsm_core.plugin import SourceContext, TaskState, make_probe_task, now_iso, stdout_path

    from hsm_plugin_ssh.source import SshSource

    stamp = now_iso().replace(":", "").replace("+", "_").replace("-", "")[:15]
    spec = make_probe_task(project.root / ".hsm" / "ssh_test" / f"test_{stamp}",
                           "import socket; print('hsm test ok on', socket.gethostname())",
                           project_root=project.root, python=sys.executable, task_id="ssh-test")
    context = SourceContext(spec.sweep_id, spec.sweep_dir, project.root.resolve(), project.config)
    source = SshSource(name, options, context)
    source.remote = rp
    try:
        source.launch([spec])
        final = None
        deadline = time.monotonic() + timeout
        while final is None and time.monotonic() < deadline:
            for upd in source.poll():
                if upd.state.finished:
                    final = upd
            if final is None:
                time.sleep(0.3)
        if final is None:
            source.cancel([spec.task_id])
            return False, f"not finished after {timeout:g}s; cancelled (files in {spec.sweep_dir})"
        out = stdout_path(spec.task_dir).read_text(errors="replace").strip() if stdout_path(spec.task_dir).exists() else ""
        passed = final.state == TaskState.COMPLETED and "hsm test ok" in out
        if passed:
            source.host.run(["rm", "-rf", "--", str(Path(source.remote_sweep_dir))])
            shutil.rmtree(spec.sweep_dir, ignore_errors=True)
            return True, out
        return False, f"{final.state.value} {final.message} (files kept in {spec.sweep_dir})"
    except HsmError as exc:
        return False, str(exc)
    finally:
        source.close()


@remote_group.command("test")
@click.argument("name", required=False)
@click.option("--task", "run_task", is_flag=True, help="Also run a one-task sweep there and bring its result back.")
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds to wait for the test task.")
@LOCAL_DIR
def test_command(name: str | None, run_task: bool, timeout: float, local_dir: str | None) -> None:
    """Connect to NAME (default: every remote), find the project, Python and hsm there; say what is missing."""
    project = _project(local_dir)
    results = [test_remote(n, project, run_task=run_task, timeout=timeout) for n in _names(project, name)]
    if not all(results):
        click.echo("Some checks failed (see above).", err=True)
        click.get_current_context().exit(1)
    click.echo("All checks passed.")


# -- health ---------------------------------------------------------------------------------------
_HEALTH_SCRIPT = r"""
d="$1"
[ -d "$d" ] || d="$HOME"
echo "@load"; cat /proc/loadavg 2>/dev/null || uptime
echo "@cpus"; getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>/dev/null
echo "@disk"; df -Pk -- "$d" 2>/dev/null | tail -n 1
echo "@mem"; grep -E '^(MemTotal|MemAvailable):' /proc/meminfo 2>/dev/null
echo "@gpus"; if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits 2>&1; fi
echo "@tasks"; ps -eo pid=,args= 2>/dev/null | grep -E -- '-m hsm_core[.]runner( |$)|/hsm-task( |$)' || true
"""


def parse_health(text: str) -> dict[str, Any]:
    """The sections printed by the health script, as numbers where they are numbers."""
    sections: dict[str, list[str]] = {}
    cur = None
    for line in text.splitlines():
        if line.startswith("@"):
            cur = line[1:].strip()
            sections[cur] = []
        elif cur is not None and line.strip():
            sections[cur].append(line.strip())
    out: dict[str, Any] = {}
    load = (sections.get("load") or [""])[0].split()
    if len(load) >= 3 and load[0].replace(".", "").isdigit():
        out["load"] = [float(x) for x in load[:3]]
    cpus = (sections.get("cpus") or [""])[0]
    out["cpus"] = int(cpus) if cpus.isdigit() else None
    disk = (sections.get("disk") or [""])[0].split()
    if len(disk) >= 6 and disk[3].isdigit():
        out["disk_free_gb"] = round(int(disk[3]) / 1024 / 1024, 1)
        out["disk_mount"] = disk[5]
    mem = {ln.split(":")[0]: int(ln.split()[1]) for ln in sections.get("mem") or [] if len(ln.split()) >= 2 and ln.split()[1].isdigit()}
    if mem:
        out["mem_total_gb"] = round(mem.get("MemTotal", 0) / 1024 / 1024, 1)
        out["mem_available_gb"] = round(mem.get("MemAvailable", 0) / 1024 / 1024, 1)
    gpus = []
    for ln in sections.get("gpus") or []:
        parts = [p.strip() for p in ln.split(",")]
        if len(parts) == 5 and parts[0].isdigit():
            gpus.append({"index": int(parts[0]), "name": parts[1], "util": parts[2], "mem_used_mb": parts[3], "mem_total_mb": parts[4]})
    out["gpus"] = gpus if sections.get("gpus") else None
    out["tasks"] = [ln.split(None, 1)[1] if " " in ln else ln for ln in sections.get("tasks") or []]
    return out


@remote_group.command("health")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@LOCAL_DIR
def health_command(name: str | None, as_json: bool, local_dir: str | None) -> None:
    """Load, free disk and memory, GPUs (nvidia-smi) and running hsm tasks of NAME (default: all)."""
    from hsm_plugin_ssh.discovery import find_project

    project = _project(local_dir)
    results: dict[str, Any] = {}
    failed = False
    for n in _names(project, name):
        host = _host(project, n)
        try:
            project_dir, _, _ = find_project(host, _remote(project, n), project.root)
            res = host.run(["sh", "-c", _HEALTH_SCRIPT, "hsm-health", project_dir], timeout=60)
            info = parse_health(res.stdout)
            info["host"] = host.settings.describe()
            results[n] = info
        except HsmError as exc:
            failed = True
            results[n] = {"host": host.settings.describe(), "error": str(exc)}
    if as_json:
        click.echo(json.dumps(results, indent=1))
    else:
        for n, info in results.items():
            click.echo(f"{n} ({info['host']})")
            if "error" in info:
                click.echo(f"  unreachable: {info['error']}")
                continue
            load = info.get("load")
            click.echo(f"  load:   {' '.join(f'{x:.2f}' for x in load) if load else '?'} ({info.get('cpus') or '?'} CPUs)")
            click.echo(f"  disk:   {info.get('disk_free_gb', '?')} GB free on {info.get('disk_mount', '?')}")
            if "mem_available_gb" in info:
                click.echo(f"  memory: {info['mem_available_gb']} GB available of {info['mem_total_gb']} GB")
            gpus = info.get("gpus")
            if gpus is None:
                click.echo("  gpus:   none (no nvidia-smi)")
            else:
                for g in gpus:
                    click.echo(f"  gpu {g['index']}: {g['name']}, {g['util']}% busy, {g['mem_used_mb']}/{g['mem_total_mb']} MiB")
            tasks = info.get("tasks") or []
            click.echo(f"  hsm tasks running: {len(tasks)}")
            for t in tasks[:10]:
                click.echo(f"    {t[-120:]}")
    if failed:
        click.get_current_context().exit(1)


# -- sync -----------------------------------------------------------------------------------------
@remote_group.command("sync")
@click.argument("name")
@click.option("--delete-extra", is_flag=True, help="Also delete remote files that are not in the project "
              "(sweep outputs, .gitignore'd data and the remote's hsm_config.yaml are always kept).")
@click.option("--force", is_flag=True, help="Overwrite uncommitted edits made on the remote.")
@click.option("--dry-run", is_flag=True, help="Show what would be copied; change nothing.")
@LOCAL_DIR
def sync_command(name: str, delete_extra: bool, force: bool, dry_run: bool, local_dir: str | None) -> None:
    """Push the project to remote NAME (rsync over SSH, honouring .gitignore)."""
    from hsm_plugin_ssh.project_sync import push_project

    project = _project(local_dir)
    host = _host(project, name)
    result = push_project(host, _remote(project, name), project.root, project.config,
                          delete_extra=delete_extra, force=force, dry_run=dry_run)
    verb = "Would copy" if dry_run else "Copied"
    where = f"{name}:{result.remote_dir}" + (" (new)" if result.created else "")
    click.echo(f"{verb} {len(result.sent)} file(s) to {where} via {result.method}")
    for rel in result.sent[:20]:
        click.echo(f"  {rel}")
    if len(result.sent) > 20:
        click.echo(f"  ... and {len(result.sent) - 20} more")
    if result.deleted:
        click.echo(f"{'Would delete' if dry_run else 'Deleted'} {len(result.deleted)} remote file(s) not in the project")


# -- collect-results ------------------------------------------------------------------------------
@click.command("collect-results")
@click.argument("sweep_id", required=False)
@click.option("--remote", "only", help="Only this remote.")
@LOCAL_DIR
def collect_command(sweep_id: str | None, only: str | None, local_dir: str | None) -> None:
    """Copy SWEEP_ID's task dirs back from the remotes it ran on (default: the latest sweep)."""
    from hsm_core.plugin import locate_sweep

    loc = locate_sweep(sweep_id, local_dir)
    from hsm_plugin_ssh.collect import collect_sweep

    total = collect_sweep(loc, only=only, echo=click.echo)
    if total is None:
        raise HsmError(f"sweep {loc.sweep_id} has no tasks that ran over SSH", hint="nothing to collect")


def test_target(target: str, project_root: str, timeout: float, echo: Callable[[str], None]) -> bool:
    """``hsm test ssh:NAME``: connect, find the project, Python and hsm there, run a test task."""
    name = target.split(":", 1)[1] if ":" in target else ""
    if not name:
        raise HsmError(f"{target!r} names no remote", hint="use hsm test ssh:NAME")
    return test_remote(name, _project(project_root), run_task=True, timeout=timeout, echo=echo)


def register(cli: click.Group) -> None:
    """Add ``remote`` and ``collect-results`` (``hsm test ssh:NAME`` comes through hsm_test_target)."""
    cli.add_command(remote_group)
    cli.add_command(collect_command)
