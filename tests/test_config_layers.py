"""Configuration layers, as a site deploys them: the install's ``{sys.prefix}/etc/hsm``, the user's
config dir, ``HSM_CONFIG``, then the project's file, merged key by key (hsm_core.config.layers)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
import yaml

from hsm_project import Project


def _site_install(tmp_path: Path) -> Path:
    """A second Python environment (its own ``sys.prefix``) that sees this one's packages: what a
    cluster's admins install hsm into. Returns its python."""
    prefix = tmp_path / "site-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True, timeout=120)
    python = prefix / "bin" / "python"
    inner = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    # addsitedir also runs this environment's .pth files: the editable installs of hsm and its plugins.
    outer = sysconfig.get_paths()["purelib"]
    Path(inner, "outer.pth").write_text(f"import site; site.addsitedir({outer!r})\n")
    return python


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_site_user_env_and_project_layers_merge_key_by_key(project: Project, tmp_path: Path) -> None:
    python = _site_install(tmp_path)
    prefix = python.parent.parent
    site = _write(prefix / "etc" / "hsm" / "hsm_config.yaml", """\
        # what the cluster's admins ship once
        hpc:
          default_partition: gpu
          account: site-acct
          setup_commands: ["module load cuda"]
        workers:
          storage_root: /scratch/shared
        """)
    user = _write(tmp_path / "xdg" / "hsm" / "hsm_config.yaml", """\
        hpc:
          account: my-acct
        compute:
          health_check_interval: 30
        """)
    job = _write(tmp_path / "job.yaml", "hpc:\n  qos: high\n")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HSM_CONFIG": str(job), "HSM_DISABLE_PLUGINS": "all"}

    def hsm(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(python), "-m", "hsm_core", *args], cwd=project.root, capture_output=True, text=True,
                              env={**os.environ, **env, **extra}, timeout=120)

    show = hsm("config", "show")
    assert show.returncode == 0, show.stderr
    shown = yaml.safe_load(show.stdout)
    assert shown["hpc"] == {"default_partition": "gpu", "account": "my-acct", "setup_commands": ["module load cuda"],
                            "qos": "high"}
    assert shown["workers"]["storage_root"] == "/scratch/shared"
    assert shown["compute"]["health_check_interval"] == 30 and shown["compute"]["local"]["max_parallel_jobs"] == 2
    lines = show.stdout.splitlines()
    assert f"# layer site: {site}" in lines and f"# layer user: {user}" in lines and f"# layer HSM_CONFIG: {job}" in lines
    assert "  default_partition: gpu  # site" in lines and "  account: my-acct  # user" in lines
    assert "  qos: high  # HSM_CONFIG" in lines and "    max_parallel_jobs: 2  # project" in lines
    assert "  output_dir: sweeps/outputs  # default" in lines

    # The project wins over every layer; the layers still fill in what it does not say.
    (project.root / "hsm_config.yaml").write_text((project.root / "hsm_config.yaml").read_text() + "hpc:\n  account: proj\n")
    shown = yaml.safe_load(hsm("config", "show").stdout)
    assert shown["hpc"]["account"] == "proj" and shown["hpc"]["default_partition"] == "gpu"

    # An error names the file and line of the layer the value came from.
    _write(user, "hpc:\n  account: my-acct\ncompute:\n  health_check_interval: -5\n")
    bad = hsm("config", "validate")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == f"Error: {user}:4: compute.health_check_interval: must be greater than 0, got -5 (an integer)"
    _write(user, "hpc:\n  default_partiton: cpu\n")
    bad = hsm("status")
    assert bad.stderr.strip() == f"Error: {user}:2: hpc.default_partiton: unknown key 'default_partiton', did you mean 'default_partition'?"
    bad = hsm("config", "show", HSM_CONFIG=str(tmp_path / "missing.yaml"))
    assert bad.returncode == 2 and f"HSM_CONFIG={tmp_path / 'missing.yaml'}: no such file" in bad.stderr

    # Without the site install, its file is not read (another sys.prefix, another site).
    _write(user, "hpc:\n  account: my-acct\n")
    other = subprocess.run([sys.executable, "-m", "hsm_core", "config", "show"], cwd=project.root, capture_output=True,
                           text=True, env={**os.environ, **env}, timeout=120)
    assert "default_partition" not in other.stdout and "account: proj  # project" in other.stdout


def test_site_defaults_reach_the_job_scripts(project: Project, tmp_path: Path) -> None:
    pytest.importorskip("hsm_plugin_slurm")
    layer = _write(tmp_path / "cluster.yaml", "hpc:\n  default_partition: gpu\n  account: site-acct\n")
    cfg = project.write_sweep({"name": "w", "grid": {"x": [1]}}, "w.yaml")
    proc = project.hsm("worker", "submit", "--sweep", str(cfg), "--workers", "2", "--sources", "slurm", "--dry-run",
                       env={"HSM_CONFIG": str(layer), "HSM_LOAD_PLUGINS": "slurm"})
    assert proc.returncode == 0, proc.stderr
    assert "#SBATCH --partition=gpu" in proc.stdout and "#SBATCH --account=site-acct" in proc.stdout
