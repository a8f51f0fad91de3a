#!/usr/bin/env bash
# The chaos suite in its full form (tests/chaos/, docs/reliability.md): every fault repeated
# ROUNDS times with random timing, then a summary table of what was injected and what held.
#
#   ./scripts/chaos.sh             # 20 rounds per fault (make chaos)
#   ./scripts/chaos.sh 5           # 5 rounds
#   HSM_CHAOS_SEED=123 ./scripts/chaos.sh 20 -k controller   # replay a seed; extra args go to pytest
#
# The normal test suite (scripts/test.sh) runs the same tests with HSM_CHAOS_ROUNDS=2.
# Needs the test venv (created by scripts/test.sh) and, for the Slurm, sshd and disk-full faults,
# root (their services; under CI=true a missing one fails instead of skipping).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${HSM_VENV:-$repo/.venv}
cd "$repo"

rounds=${1:-20}
[[ $# -gt 0 ]] && shift
if [[ ! -x "$venv/bin/python" ]]; then
    echo "chaos.sh: no test venv at $venv; creating it with scripts/test.sh (collect only)" >&2
    ./scripts/test.sh --collect-only -q >/dev/null
fi
report=${HSM_CHAOS_REPORT:-$(mktemp -t hsm-chaos-XXXXXX.jsonl)}
: >"$report"
export PATH="$venv/bin:$PATH" HSM_CHAOS_ROUNDS="$rounds" HSM_CHAOS_REPORT="$report" HSM_CHAOS_ALL=1
status=0
"$venv/bin/python" -m pytest -p no:cacheprovider tests/chaos -v "$@" || status=$?
echo
echo "Chaos summary ($rounds rounds per fault; report: $report)"
"$venv/bin/python" tests/support/chaos_report.py "$report"
exit "$status"
