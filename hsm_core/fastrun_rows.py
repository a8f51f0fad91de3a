"""What the shell fast path makes a task dir from, when the controller left the dir to the element.

A large array-job submission writes no task dirs (:mod:`hsm_core.plugin.arrayjob.unmade`): each
element makes its own from the chunk's task file (``<list>.tasks.jsonl``), which only Python reads.
Without this module such an element started the Python task runner (about 70 ms of CPU) just to
make its dir. Beside that file the controller now writes the same rows for bash, once the job is
submitted, from a process of their own (:func:`start_writer`: they cost about 0.1 ms a task, 1 s
for 10,000, which the submission need not wait for: ``hsm run --no-wait`` returns meanwhile), from
the chunk's task file, which holds the same rows: pages of
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
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from hsm_core.atomic import atomic_write_text, dump_yaml
from hsm_core.fastrun import ROWS_INFIX, command_script
from hsm_core.fastrun import ROWS_PAGE as PAGE
from hsm_core.secrecy import holds_secret
from hsm_core.task_manifest import read_chunk_tasks

__all__ = ["PAGE", "ROWS_INFIX", "bash_word", "row", "row_texts", "rows_path", "write_rows", "write_rows_from_task_file",
           "start_writer"]


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


def row_texts(made_from: Mapping[str, Any] | None) -> tuple[str, str, str | None] | None:
    """``params.yaml``, ``command.json`` and ``command.sh`` (None: the fast path cannot run the
    command) of one task exactly as :func:`hsm_core.task_manifest.materialize` and
    :func:`hsm_core.fastrun.write_for_task` write them; None when ``made_from`` is not a task's."""
    if not made_from:
        return None
    params, command = made_from.get("params"), made_from.get("command")
    if not isinstance(params, dict) or not isinstance(command, dict):
        return None
    # As materialize writes them: write_params_once's document, write_command's text.
    params_text = dump_yaml({"task_id": str(params.get("task_id")), "index": int(params.get("index") or 0),
                             "params": dict(params.get("params") or {})})
    json_text = json.dumps(dict(command), indent=1)
    return params_text, json_text, command_script(command, json_text)


def row(made_from: Mapping[str, Any] | None, texts: tuple[str, str, str | None] | None = None) -> str:
    """The line of one task (``made_from``: ``{"params": {task_id, index, params}, "command":
    {...}}``, what its dir is made from; ``texts``: its :func:`row_texts`, when the caller made
    them already); empty when the fast path must leave it to Python."""
    texts = texts if texts is not None else row_texts(made_from)
    if texts is None or holds_secret(made_from["command"].get("env")):  # (row_texts: a dict)
        return ""
    params_text, json_text, script = texts
    if script is None or "\0" in params_text:
        return ""
    return (f"_hsm_mk_params={bash_word(params_text)} _hsm_mk_json={bash_word(json_text)} "
            f"_hsm_mk_sh={bash_word(script)}")


def write_rows(list_file: Path, made_from: Sequence[Mapping[str, Any] | None],
               texts: Sequence[tuple[str, str, str | None] | None] | None = None) -> list[Path]:
    """Write the pages of a chunk (``made_from``: per element in list order, None for a task whose
    dir exists) that hold any task to make; returns the pages written. ``texts``: each task's
    :func:`row_texts`, when the caller made them already."""
    written = []
    for start in range(0, len(made_from), PAGE):
        page = made_from[start:start + PAGE]
        if not any(page):
            continue
        path = rows_path(list_file, start // PAGE)
        page_texts = texts[start:start + PAGE] if texts is not None else [None] * len(page)
        atomic_write_text(path, "".join(row(m, t) + "\n" for m, t in zip(page, page_texts)), fsync=False)
        written.append(path)
    return written


def write_rows_from_task_file(list_file: Path) -> list[Path]:
    """Write the pages of the chunk whose list file is ``list_file`` from its task file
    (``<list>.tasks.jsonl``: an empty object for a task whose dir exists). The rows are those of
    the same decoded lines the Python runner makes a dir from, so both make the same files."""
    # (An empty object: the task had its dir.)
    return write_rows(Path(list_file), [row or None for row in read_chunk_tasks(list_file)])


def start_writer(list_files: Sequence[Path], log: Path) -> None:
    """Write the pages of these chunks (whose task files are written) from a process of its own,
    in its own session (a Ctrl-C of the controller does not cut it short; it ends by itself once
    the pages are written), its errors appended to ``log``. If no process can be started, the
    pages are written here and now."""
    if not list_files:
        return
    # This Python, as the task runner is started (jobfiles: ``sys.executable -m hsm_core.runner``).
    argv = [sys.executable, "-m", "hsm_core.fastrun_rows", *(str(Path(p)) for p in list_files)]
    try:
        with open(log, "ab") as err:
            subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                             start_new_session=True, close_fds=True)
    except OSError:
        for list_file in list_files:
            write_rows_from_task_file(Path(list_file))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hsm_core.fastrun_rows LIST_FILE...``: what :func:`start_writer` starts."""
    failed = 0
    for list_file in (sys.argv[1:] if argv is None else argv):
        try:
            write_rows_from_task_file(Path(list_file))
        except OSError as exc:  # the sweep removed meanwhile, a full disk: the Python runner serves
            print(f"hsm: fast path rows of {list_file} not written: {exc}", file=sys.stderr)
            failed = 1
    return failed


if __name__ == "__main__":
    sys.exit(main())
