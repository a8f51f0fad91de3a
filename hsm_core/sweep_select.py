"""Which sweep a command means: a sweep id, ``latest``, or nothing (the latest sweep).

Every command that takes a sweep id (``status``, ``monitor watch|errors|health``, ``export``,
``report``, ``complete``, ``cancel``, ``sync``, the Python API's ``load_sweep``) resolves it
here, so "the latest sweep" is the same sweep everywhere: the one created last according to its
``sweep_metadata.yaml`` (not the directory touched last: completing an old sweep does not make it
the latest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hsm_core.errors import HsmError
from hsm_core.state import SweepDir

#: The word that stands for the most recently created sweep wherever a sweep id is expected.
LATEST = "latest"


def sweeps_by_creation(output_dir: Path) -> list[SweepDir]:
    """The sweeps under ``output_dir``, oldest first; damaged ones are skipped with one warning line.

    Ordered by the ``created`` time of their metadata (second precision); sweeps created in the
    same second by when their ``sweep_config.yaml`` was written (nanoseconds, written once when
    the sweep is made), then by id.
    """
    from hsm_core.monitor.snapshot import created_time, sweeps_with_metadata

    def written(sweep: SweepDir) -> int:
        try:
            return (sweep.path / "sweep_config.yaml").stat().st_mtime_ns
        except OSError:
            return 0

    found = sweeps_with_metadata(Path(output_dir))
    return [s for s, meta in sorted(found, key=lambda sm: (created_time(*sm), written(sm[0]), sm[0].path.name))]


def latest_sweep(output_dir: Path) -> SweepDir:
    """The sweep created last under ``output_dir``; a clear error when there is none."""
    sweeps = sweeps_by_creation(output_dir)
    if not sweeps:
        raise HsmError(f"no sweeps in {output_dir}", hint="start one with: hsm run --config sweeps/sweep_config.yaml")
    return sweeps[-1]


def resolve_sweep(project: Any, sweep_id: str | None) -> SweepDir:
    """The sweep ``sweep_id`` of ``project`` (a :class:`~hsm_core.config.ProjectConfig`).

    None or ``latest`` (when no sweep is literally named so) is the latest sweep of the project's
    output dir; any other id is looked up in the output dir, then under the workers' storage root
    (pull-based sweeps); an unknown id is a clear error listing recent ones.
    """
    if sweep_id is None:
        return latest_sweep(project.output_dir)
    if sweep_id == LATEST and not (Path(project.output_dir) / LATEST / "sweep_metadata.yaml").exists():
        return latest_sweep(project.output_dir)
    try:
        return SweepDir.locate(project.output_dir, sweep_id)
    except HsmError:
        # Not in the output dir: maybe a pull-based sweep (the workers' layout is imported only then).
        from hsm_core.workers.layout import find_sweep

        return find_sweep(project, sweep_id)


def sweep_ids(output_dir: Path) -> list[str]:
    """Ids of the sweeps under ``output_dir``, newest first, cheaply (for shell completion: no
    metadata is parsed; sweep ids sort by time when hsm chose them)."""
    out = Path(output_dir)
    if not out.is_dir():
        return []
    try:
        ids = [p.parent.name for p in out.glob("*/sweep_metadata.yaml")]
    except OSError:
        return []
    return sorted(ids, reverse=True)
