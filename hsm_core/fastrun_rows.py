"""What the shell fast path makes a task dir from, when the controller left the dir to the element.

A large array-job submission writes no task dirs (:mod:`hsm_core.plugin.arrayjob.unmade`): each
element makes its own from the chunk's task file (``<list>.tasks.jsonl``), which only Python reads.
Without this module such an element started the Python task runner (about 70 ms of CPU) just to
make its dir. Beside that file the controller now writes the same rows for bash, once the job is
submitted (they cost about 0.1 ms a task, which the submission need not wait for): pages of
:data:`PAGE` lines (``<list stem>.rows.<page>``; line ``i % PAGE`` of page ``i // PAGE`` is element
``i``'s), each line one bash assignment of the dir's ``params.yaml``, ``command.json`` and
``command.sh`` exactly as :func:`hsm_core.task_manifest.materialize` and
:func:`hsm_core.fastrun.write_for_task` write them. The fast path (``_hsm_make_dir`` in
:mod:`hsm_core.fastrun`) makes the dir from its line in a temporary sibling renamed into place, as
``materialize`` does, and runs the task only when its own rename made the dir. Pages keep the bytes
an element reads small (a 10,000-task chunk in one file would have the last element read all of
it); an empty line (the task's dir exists, or bash cannot run its command, or its environment holds
a token and its files must be the owner's only) leaves the element to the Python runner.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from hsm_core.atomic import atomic_write_text, dump_yaml
from hsm_core.fastrun import ROWS_INFIX, command_script
from hsm_core.fastrun import ROWS_PAGE as PAGE
from hsm_core.secrecy import holds_secret

__all__ = ["PAGE", "ROWS_INFIX", "bash_word", "row", "rows_path", "write_rows"]


def rows_path(list_file: Path, page: int) -> Path:
    """Page ``page`` of the rows of the chunk whose list file is ``list_file``."""
    list_file = Path(list_file)
    return list_file.with_name(f"{list_file.stem}{ROWS_INFIX}{page}")


#: Control characters other than newline and tab (escaped one by one: rare in commands).
_OTHER_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


def bash_word(text: str) -> str:
    """``text`` as one bash word on one line (``$'...'``: backslash escapes, nothing expanded)."""
    text = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\t", "\\t")
    if _OTHER_CONTROLS.search(text):
        text = _OTHER_CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return "$'" + text + "'"


def row(made_from: Mapping[str, Any] | None) -> str:
    """The line of one task (``made_from``: ``{"params": {task_id, index, params}, "command":
    {...}}``, what its dir is made from); empty when the fast path must leave it to Python."""
    if not made_from:
        return ""
    params, command = made_from.get("params"), made_from.get("command")
    if not isinstance(params, dict) or not isinstance(command, dict) or holds_secret(command.get("env")):
        return ""
    # As materialize writes them: write_params_once's document, write_command's text.
    params_text = dump_yaml({"task_id": str(params.get("task_id")), "index": int(params.get("index") or 0),
                             "params": dict(params.get("params") or {})})
    json_text = json.dumps(dict(command), indent=1)
    script = command_script(command, json_text)
    if script is None or "\0" in params_text:
        return ""
    return (f"_hsm_mk_params={bash_word(params_text)} _hsm_mk_json={bash_word(json_text)} "
            f"_hsm_mk_sh={bash_word(script)}")


def write_rows(list_file: Path, made_from: Sequence[Mapping[str, Any] | None]) -> list[Path]:
    """Write the pages of a chunk (``made_from``: per element in list order, None for a task whose
    dir exists) that hold any task to make; returns the pages written."""
    written = []
    for start in range(0, len(made_from), PAGE):
        page = made_from[start:start + PAGE]
        if not any(page):
            continue
        path = rows_path(list_file, start // PAGE)
        atomic_write_text(path, "".join(row(m) + "\n" for m in page), fsync=False)
        written.append(path)
    return written
