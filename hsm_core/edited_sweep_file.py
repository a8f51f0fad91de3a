"""Whether the sweep file a sweep was started from was edited since, for ``hsm complete``.

``hsm complete`` without ``-c`` runs the sweep's own copy (``sweep_config.yaml``): the sweep is
what was started, whatever happened to the file since. A user who added values to the file and
ran ``hsm complete`` would otherwise see "0 task(s)" and believe the new values were run, or
could not be. This module finds that case and words the one line that says what to type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from hsm_core.errors import HsmError


def edited_file_note(sweep_path: Path, metadata: dict[str, Any], sweep_id: str, known_ids: Iterable[str],
                     registry: Any) -> str | None:
    """One line when the file named by the sweep's ``config_file`` differs from its copy and has
    combinations the sweep lacks (or no longer loads); None otherwise (no file, the same text, or
    an edit that adds no combination, such as a comment or a removed value)."""
    from hsm_core.config.lines import display_path

    name = metadata.get("config_file")
    copy = sweep_path / "sweep_config.yaml"
    if not name:
        return None
    source = Path(str(name))
    try:
        edited = source.read_text(encoding="utf-8")
        if edited == copy.read_text(encoding="utf-8"):
            return None
    except (OSError, UnicodeDecodeError):  # gone (a sweep given as a dict), or unreadable: nothing to compare
        return None
    shown = display_path(source)
    head = f"note: {shown} has changed since this sweep copied it"
    tail = "hsm complete runs the sweep's own copy (sweep_config.yaml)"
    try:
        new = _new_combinations(source, set(known_ids), registry)
    except (HsmError, ValueError, TypeError):
        return f"{head} (and does not load now); {tail}"
    if not new:
        return None
    what = "1 combination" if new == 1 else f"{new} combinations"
    return f"{head} ({what} not in the sweep); {tail}; to run the edited file: hsm complete {sweep_id} -c {shown}"


def _new_combinations(source: Path, known: set[str], registry: Any) -> int:
    from hsm_core.sweep import expand, load_spec, task_id_maker

    spec = load_spec(source, registry)
    task_id_of = task_id_maker(registry)
    return sum(1 for params in expand(spec, registry) if task_id_of(params) not in known)
