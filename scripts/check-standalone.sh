#!/usr/bin/env bash
# Check that a distribution installs and works alone with hsm-core, in a fresh venv:
#   scripts/check-standalone.sh               hsm-core alone: hsm --help, hsm plugins, a local sweep
#   scripts/check-standalone.sh PLUGIN_DIR    hsm-core + that one plugin: also listed as loaded, no other plugin
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
plugin=${1:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say() { printf 'check-standalone: %s\n' "$*"; }

python3 -m venv "$work/venv"
pip=("$work/venv/bin/pip" install --quiet --disable-pip-version-check)
"${pip[@]}" "$repo"
if [[ -n "$plugin" ]]; then
    "${pip[@]}" "$repo/$plugin"
fi
hsm="$work/venv/bin/hsm"

"$hsm" --help >/dev/null
"$hsm" plugins --json >"$work/plugins.json"
"$work/venv/bin/python" - "$work/plugins.json" "$plugin" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
external = [p for p in data["plugins"] if not p["builtin"]]
failed = [p for p in data["plugins"] if p["status"] == "failed"]
assert not failed, f"plugins failed to load: {failed}"
if sys.argv[2]:
    assert len(external) >= 1, "the plugin is not listed by hsm plugins"
    assert all(p["status"] == "loaded" for p in external), external
    print("check-standalone: loaded", ", ".join(f"{p['name']} ({p['distribution']} {p['version']}) provides {p['provides']}" for p in external))
else:
    assert not external, f"unexpected plugins: {external}"
PY

# A local sweep must work with whatever is installed.
cp -r "$repo/examples/demo_project" "$work/demo"
(cd "$work/demo" && "$hsm" run --config sweeps/sweep_config.yaml --max-runs 3 --sources local:2 >/dev/null)
(cd "$work/demo" && "$hsm" status --json | "$work/venv/bin/python" -c 'import json,sys; d=json.load(sys.stdin); assert d["counts"]["completed"] == 3, d')
say "ok: hsm-core${plugin:+ + $plugin} installs and runs a local sweep alone"
