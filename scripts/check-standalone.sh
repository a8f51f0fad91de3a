#!/usr/bin/env bash
# Check that a distribution installs and works alone with hsm-core, in a fresh venv (no site
# packages, no other plugin):
#   scripts/check-standalone.sh               hsm-core alone: hsm --help, hsm plugins, a local sweep
#   scripts/check-standalone.sh PLUGIN_DIR    hsm-core + that one plugin: also listed as loaded and
#                                             providing something, no other plugin, no conflict
#
# Fast on purpose: hsm-core's dependencies, and setuptools + wheel to build the wheels, come from a wheelhouse
# ($HSM_WHEELHOUSE, default /tmp/hsm-wheelhouse) filled once from pip's cache or the package
# index; later runs need no network. Wheels are built from a copy of the sources, so no build/
# directory is left in the repository.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
plugin=${1:-}
python=${PYTHON:-python3}
wheelhouse=${HSM_WHEELHOUSE:-/tmp/hsm-wheelhouse}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say() { printf 'check-standalone: %s\n' "$*"; }
# pip, minus its warnings about index locations this machine does not have.
quiet_pip() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

plugin_dir=""
if [[ -n "$plugin" ]]; then
    for cand in "$plugin" "$repo/$plugin"; do
        if [[ -f "$cand/pyproject.toml" ]]; then plugin_dir=$(cd "$cand" && pwd); break; fi
    done
    [[ -n "$plugin_dir" ]] || { say "no pyproject.toml in $plugin"; exit 2; }
fi

# hsm-core's runtime dependencies and the build requirements of both distributions, read from
# their pyproject.toml files (with tomllib: the Python under test if it has it (3.11+), else python3).
toml_python=python3
"$python" -c 'import tomllib' 2>/dev/null && toml_python=$python
read_toml() {
    "$toml_python" - "$@" <<'PY'
import sys, tomllib
key, *paths = sys.argv[1:]
for path in paths:
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    for part in key.split("."):
        data = data[part]
    print("\n".join(data))
PY
}
mapfile -t deps < <(read_toml project.dependencies "$repo/pyproject.toml")
mapfile -t build < <(read_toml build-system.requires "$repo/pyproject.toml" ${plugin_dir:+"$plugin_dir/pyproject.toml"} | sort -u)
build+=("wheel")
mkdir -p "$wheelhouse"
if ! "$python" -m pip download --quiet --no-index --find-links "$wheelhouse" -d "$work/probe" "${deps[@]}" "${build[@]}" >/dev/null 2>&1; then
    say "filling the wheelhouse $wheelhouse (once)"
    quiet_pip "$python" -m pip wheel --quiet --disable-pip-version-check -w "$wheelhouse" "${deps[@]}" "${build[@]}" >&2
fi

# Copies of the sources: building in place would leave build/ and *.egg-info behind.
copy() { mkdir -p "$2" && tar -C "$1" --exclude=build --exclude=dist --exclude='*.egg-info' --exclude=__pycache__ \
    --exclude=tests --exclude=.pytest_cache -cf - "${@:3}" | tar -C "$2" -xf -; }
copy "$repo" "$work/src/core" pyproject.toml README.md LICENSE hsm_core hsm
srcs=("$work/src/core")
if [[ -n "$plugin_dir" ]]; then
    copy "$plugin_dir" "$work/src/plugin" .
    srcs+=("$work/src/plugin")
fi
PIP_NO_INDEX=1 PIP_FIND_LINKS="$wheelhouse" quiet_pip "$python" -m pip wheel --quiet --disable-pip-version-check \
    --no-deps -w "$work/dist" "${srcs[@]}" >&2

"$python" -m venv "$work/venv"
vpy="$work/venv/bin/python"
pip=(quiet_pip "$vpy" -m pip install --quiet --disable-pip-version-check --no-index)
"${pip[@]}" --find-links "$wheelhouse" --find-links "$work/dist" hsm-core >&2
if [[ -n "$plugin_dir" ]]; then
    # The plugin's own dependencies (paramiko, wandb ...) come from the package index: "works
    # alone" means with exactly what its pyproject.toml asks for, and `pip check` proves it.
    plugin_wheel=$(ls "$work"/dist/*.whl | grep -v '/hsm_core-')
    quiet_pip "$vpy" -m pip install --quiet --disable-pip-version-check --find-links "$wheelhouse" "$plugin_wheel" >&2
fi
quiet_pip "$vpy" -m pip check >&2
hsm="$work/venv/bin/hsm"

# What a packager checks in each wheel: the license file and SPDX expression, the py.typed marker,
# one version (the metadata's is the package's __version__), and no pytest plugin forced on every
# pytest session of the environment (the test kit is opt-in).
"$vpy" - "$work"/dist/*.whl <<'PY'
import sys, zipfile
from email.parser import Parser
for wheel in sys.argv[1:]:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = Parser().parsestr(zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode())
        eps = next((zf.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt")), "")
        name = meta["Name"]
        init = zf.read(f"{name.replace('-', '_')}/__init__.py").decode()  # each package is named after its distribution
    assert meta["License-Expression"] == "MIT", (name, meta["License-Expression"])
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), f"{name}: no LICENSE in the wheel"
    assert any(n.endswith("/py.typed") for n in names), f"{name}: no py.typed in the wheel"
    assert "[pytest11]" not in eps, f"{name} registers a pytest plugin for every session"
    assert f'__version__ = "{meta["Version"]}"' in init, f"{name}: metadata version {meta['Version']} is not __version__"
PY

cd "$work"  # nothing from the repository is importable from here
"$hsm" --help >/dev/null
"$hsm" --version | grep -q "plugin API"
"$hsm" plugins --check >/dev/null || { "$hsm" plugins --check; say "hsm plugins --check failed"; exit 1; }
"$hsm" plugins --json >"$work/plugins.json"
"$vpy" - "$work/plugins.json" "$plugin" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
external = [p for p in data["plugins"] if not p["builtin"]]
failed = [p for p in data["plugins"] if p["status"] == "failed"]
assert not failed, f"plugins failed to load: {failed}"
assert not data["conflicts"], data["conflicts"]
if sys.argv[2]:
    assert len(external) == 1, f"expected one plugin, got {[p['distribution'] for p in external]}"
    p = external[0]
    assert p["status"] == "loaded" and p["provides"], p
    print(f"check-standalone: loaded {p['name']} ({p['distribution']} {p['version']}) provides {p['provides']}")
else:
    assert not external, f"unexpected plugins: {external}"
PY

# A local sweep must work with whatever is installed.
cp -r "$repo/examples/demo_project" "$work/demo"
(cd "$work/demo" && "$hsm" run --config sweeps/sweep_config.yaml --max-runs 3 --sources local:2 >/dev/null)
(cd "$work/demo" && "$hsm" status --json | "$vpy" -c 'import json,sys; d=json.load(sys.stdin); assert d["counts"]["completed"] == 3, d')
# ... and the Python API (docs/python-api.md) reads it.
(cd "$work/demo" && "$vpy" -c 'import hsm; sw = hsm.load_sweep(); assert sw.counts == {"completed": 3} and len(sw.rows()) == 3, sw')
if [[ -z "$plugin" ]]; then
    # A plugin that is not installed: one line naming what installs it (no package index has it).
    if (cd "$work/demo" && "$hsm" run --config sweeps/sweep_config.yaml --sources slurm >/dev/null 2>"$work/hint"); then
        say "hsm run --sources slurm worked without the Slurm plugin"; exit 1
    fi
    grep -q "install hsm-plugin-slurm with: pip install ./hsm_plugin_slurm in a checkout of hsm's repository" "$work/hint" \
        || { cat "$work/hint"; say "the install hint does not name the plugin's directory"; exit 1; }
fi
say "ok: hsm-core${plugin:+ + $plugin} installs and runs a local sweep alone"
