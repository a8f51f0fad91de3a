#!/usr/bin/env bash
# The README's first command: install hsm-core into ./.venv and run the demo sweep end to end on
# local processes (18 short "training" runs of examples/demo_project), then show what hsm leaves:
# status, the task directory, an export and the completion report.
#
#   ./scripts/demo.sh            # everything, from a fresh clone
#   HSM_DEMO_DIR=/tmp/x ./scripts/demo.sh   # where the demo project copy goes (default: ./demo-output)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${HSM_VENV:-$repo/.venv}
demo=${HSM_DEMO_DIR:-$repo/demo-output}

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [[ ! -x "$venv/bin/hsm" ]]; then
    step "Installing hsm-core into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet -e "$repo"
fi
export PATH="$venv/bin:$PATH"

step "Copying the demo project to $demo"
mkdir -p "$demo"
cp -r "$repo/examples/demo_project/." "$demo/"
cd "$demo"

step "hsm run --config sweeps/sweep_config.yaml --dry-run"
hsm run --config sweeps/sweep_config.yaml --dry-run

step "hsm run --config sweeps/sweep_config.yaml --sources local:4"
hsm run --config sweeps/sweep_config.yaml --sources local:4
sweep_id=$(ls -t sweeps/outputs | head -n 1)

step "hsm status $sweep_id"
hsm status "$sweep_id"

step "One task directory: sweeps/outputs/$sweep_id/tasks/task_001"
ls "sweeps/outputs/$sweep_id/tasks/task_001"
cat "sweeps/outputs/$sweep_id/tasks/task_001/metrics.json"; echo

if hsm export --help >/dev/null 2>&1; then
    step "hsm export $sweep_id --format csv"
    hsm export "$sweep_id" --format csv | head -n 5
fi
if hsm report --help >/dev/null 2>&1; then
    step "hsm report $sweep_id"
    hsm report "$sweep_id"
fi

step "Done. The sweep is in $demo/sweeps/outputs/$sweep_id"
