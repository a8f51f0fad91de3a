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
"$venv/bin/pip" install --quiet "${editables[@]}" pytest hypothesis submitit

step "Running the test suite"
export PATH="$venv/bin:$PATH"
test_dirs=(tests)
for dir in hsm_plugin_*/tests plugins/template/tests; do
    [[ -d "$dir" ]] && test_dirs+=("$dir")
done
exec "$venv/bin/python" -m pytest -p no:cacheprovider "${test_dirs[@]}" "$@"
