#!/usr/bin/env bash
# The README's second command: the whole test suite, from a fresh clone.
#
# Creates ./.venv, installs hsm-core and every plugin in this repository (editable) with the test
# dependencies, installs the real services the integration tests use (Slurm + munge, the Torque
# qsub front-end, sshd, rsync, GNU parallel, Chromium) when run as root, then runs pytest over the
# core, every plugin and the plugin template. The tests start Slurm and sshd themselves.
#
#   ./scripts/test.sh                 # everything
#   ./scripts/test.sh -k status -x    # extra arguments go to pytest
#   HSM_TEST_WORKERS=0 ./scripts/test.sh   # one process, no pytest-xdist
#
# The tests run on HSM_TEST_WORKERS pytest-xdist workers (default: the number of CPUs, at least 2:
# most tests wait on the processes they start, so a second worker uses what one leaves idle).
# Every test of the shared Slurm cluster runs in one worker, one after the other (conftest.py).
#
# Under CI=true a test whose service is missing fails instead of skipping.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${HSM_VENV:-$repo/.venv}
cd "$repo"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [[ $(id -u) -eq 0 ]]; then
    step "Installing test services (Debian packages)"
    bash scripts/install-test-services.sh
else
    echo "test.sh: not root: services that are not installed will be skipped (install them with: sudo scripts/install-test-services.sh)" >&2
fi

step "Installing hsm-core, the plugins and test dependencies into $venv"
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
editables=(-e "$repo[test]")  # [test]: hydra-core and pandas for the Hydra-app and Python API tests
for dir in "$repo"/hsm_plugin_*/ "$repo"/plugins/template/; do
    [[ -f "$dir/pyproject.toml" ]] && editables+=(-e "${dir%/}[test]")  # [test]: e.g. wandb for the wandb plugin
done
"$venv/bin/pip" install --quiet "${editables[@]}" pytest pytest-xdist hypothesis submitit

step "Running the test suite"
export PATH="$venv/bin:$PATH"
test_dirs=(tests)
for dir in hsm_plugin_*/tests plugins/template/tests; do
    [[ -d "$dir" ]] && test_dirs+=("$dir")
done
cpus=$(nproc 2>/dev/null || echo 2)
workers=${HSM_TEST_WORKERS:-$(( cpus > 2 ? cpus : 2 ))}
[[ "$workers" =~ ^[0-9]+$ ]] || { echo "test.sh: HSM_TEST_WORKERS must be a whole number, not $workers" >&2; exit 2; }
parallel=()
[[ "$workers" -gt 0 ]] && parallel=(-n "$workers" --dist loadgroup)
exec "$venv/bin/python" -m pytest -p no:cacheprovider "${parallel[@]}" "${test_dirs[@]}" "$@"
