"""Stand-in batch client commands for ``--dry-run`` tests: ``qsub``/``sbatch`` record any call
(so "nothing submitted" is checked, not assumed) and fail; the query commands answer nothing."""

from __future__ import annotations

import os
from pathlib import Path

from hsm_core.testing.project import Project, make_project


def fake_clients(tmp_path: Path) -> Path:
    """A ``bin`` dir under ``tmp_path``; a submission leaves ``tmp_path/SUBMITTED``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("qsub", "sbatch"):
        (bin_dir / name).write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'SUBMITTED'}\nexit 1\n")
    for name in ("qstat", "qdel", "squeue", "scancel", "pbsnodes"):
        (bin_dir / name).write_text("#!/bin/sh\nexit 0\n")
    for p in bin_dir.iterdir():
        p.chmod(0o755)
    return bin_dir


def project_with_fake_clients(tmp_path: Path, hpc: str = "") -> Project:
    """A project at ``tmp_path/proj`` whose scheduler commands are :func:`fake_clients`; ``hpc`` is
    more of the ``hpc:`` section (indented lines)."""
    path = f"{fake_clients(tmp_path)}:{os.environ['PATH']}"
    return make_project(tmp_path / "proj", config_extra=f'hpc:\n  env: {{PATH: "{path}"}}\n{hpc}', env={"PATH": path})
