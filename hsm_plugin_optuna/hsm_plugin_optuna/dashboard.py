"""``hsm optuna-dashboard [SWEEP_ID]``: optuna-dashboard as a live web view of an adaptive sweep.

optuna-dashboard reads an Optuna storage; an hsm study lives in the sweep directory's trial log
(:mod:`hsm_core.adaptive`). The command copies the log into an Optuna journal file in a temporary
directory, starts ``optuna-dashboard`` on it, and copies what changed every ``--refresh`` seconds
(new trials, trials that finished) until the dashboard is stopped (Ctrl-C), then removes the
copy. The sweep directory is only read: the view works on a read-only copy of a sweep too, and
nothing the dashboard writes (notes) can disagree with hsm's log.

The executable is ``optuna-dashboard`` on ``PATH``, or ``$HSM_OPTUNA_DASHBOARD`` (one installed
with pipx or in another environment). Without it the command says how to install it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from hsm_core.plugin import HsmError, SearchParam, Trial, locate_sweep, read_search_trials

#: The environment variable naming the optuna-dashboard executable.
EXECUTABLE_ENV = "HSM_OPTUNA_DASHBOARD"
INSTALL_HINT = "pip install optuna-dashboard (or pipx install optuna-dashboard, then set HSM_OPTUNA_DASHBOARD to it)"


def dashboard_executable() -> str | None:
    """The optuna-dashboard executable to run, or None when there is none."""
    named = os.environ.get(EXECUTABLE_ENV)
    if named:
        return named if os.path.isfile(named) and os.access(named, os.X_OK) else None
    return shutil.which("optuna-dashboard")


class StudyMirror:
    """An Optuna study in a journal file that follows an hsm trial log (one writer: this process)."""

    def __init__(self, journal: Path, study_name: str, settings: dict[str, Any]) -> None:
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        from hsm_plugin_optuna.strategy import distribution_of

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.storage = JournalStorage(JournalFileBackend(str(journal)))
        direction = "maximize" if settings.get("goal") == "maximize" else "minimize"
        self.study = optuna.create_study(storage=self.storage, study_name=study_name, direction=direction,
                                         load_if_exists=True)
        self.study.set_user_attr("hsm", f"adaptive sweep {study_name}: {settings.get('strategy')}, "
                                        f"{settings.get('trials')} trials")
        self.distributions = {}
        for p in settings.get("params") or []:
            param = SearchParam(p["name"], p["distribution"], tuple(p["args"]), p.get("q"))
            try:
                dist = distribution_of(param, str(settings.get("strategy")))
            except Exception:  # noqa: BLE001 - a distribution Optuna cannot draw (random's normal): not shown
                continue
            if dist is not None:
                self.distributions[p["name"]] = dist
        self.ids: dict[int, tuple[int, str]] = {}  #: hsm trial number -> (Optuna trial id, state copied)

    def sync(self, trials: list[Trial]) -> int:
        """Copy new trials and finished ones; returns how many changed."""
        from optuna.trial import TrialState, create_trial

        states = {"completed": TrialState.COMPLETE, "failed": TrialState.FAIL, "running": TrialState.RUNNING,
                  "pruned": TrialState.PRUNED}
        changed = 0
        for trial in trials:
            state = states.get(trial.state, TrialState.FAIL)
            known = self.ids.get(trial.number)
            if known is not None:
                if known[1] == trial.state or known[1] != "running":
                    continue
                values = [float(trial.value)] if state == TrialState.COMPLETE and trial.value is not None else None
                self.storage.set_trial_state_values(known[0], state, values)
                self.ids[trial.number] = (known[0], trial.state)
                changed += 1
                continue
            params = {k: v for k, v in trial.params.items() if k in self.distributions}
            value = float(trial.value) if state == TrialState.COMPLETE and trial.value is not None else None
            if state == TrialState.COMPLETE and value is None:
                state = TrialState.FAIL
            try:
                frozen = create_trial(state=state, value=value, params=params,
                                      distributions={k: self.distributions[k] for k in params},
                                      user_attrs={"hsm_trial": trial.number})
            except ValueError:
                continue  # a value outside today's space (an edited sweep file)
            self.study.add_trial(frozen)
            self.ids[trial.number] = (self.study.get_trials(deepcopy=False)[-1]._trial_id, trial.state)
            changed += 1
        return changed


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@click.command("optuna-dashboard")
@click.argument("sweep_id", required=False)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the dashboard listens on.")
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--refresh", default=5.0, show_default=True, type=float, help="Seconds between two copies of the trial log.")
@click.option("--project-dir", type=click.Path(file_okay=False))
def dashboard_command(sweep_id: str | None, host: str, port: int, refresh: float, project_dir: str | None) -> None:
    """Open optuna-dashboard on SWEEP_ID's adaptive search (default: the latest sweep), live."""
    exe = dashboard_executable()
    if exe is None:
        where = f" (${EXECUTABLE_ENV} is {os.environ[EXECUTABLE_ENV]!r})" if os.environ.get(EXECUTABLE_ENV) else ""
        raise HsmError(f"optuna-dashboard is not installed{where}", hint=INSTALL_HINT)
    sweep = locate_sweep(sweep_id, project_dir)
    found = read_search_trials(sweep.sweep_dir)
    if found is None:
        raise HsmError(f"sweep {sweep.sweep_id} is not an adaptive search (no search: section): it has no study to show",
                       hint="optuna-dashboard shows the trials of a search: sweep")
    settings, trials = found
    tmp = Path(tempfile.mkdtemp(prefix="hsm-optuna-dashboard-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        journal = tmp / f"{sweep.sweep_id}.journal"
        mirror = StudyMirror(journal, sweep.sweep_id, settings)
        mirror.sync(trials)
        proc = subprocess.Popen([exe, str(journal), "--storage-class", "JournalFileStorage",
                                 "--host", host, "--port", str(port)])
        click.echo(f"optuna-dashboard on sweep {sweep.sweep_id} ({len(trials)} trials so far): http://{host}:{port}/ "
                   f"(updated every {refresh:g} s; Ctrl-C stops it)", err=True)
        signal.signal(signal.SIGTERM, _stop)  # stopped like Ctrl-C: the dashboard and the copy go too
        while proc.poll() is None:
            time.sleep(max(0.1, refresh))
            again = read_search_trials(sweep.sweep_dir)
            if again is not None:
                mirror.sync(again[1])
        if proc.returncode:
            raise HsmError(f"optuna-dashboard stopped with exit code {proc.returncode}",
                           hint=f"is port {port} free? choose another with --port")
    except KeyboardInterrupt:
        pass
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
