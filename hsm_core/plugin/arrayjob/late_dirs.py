"""Task dirs of a small array-job submission, made while the scheduler starts the job (part of the
array-job toolkit of :mod:`hsm_core.plugin`).

A submission of a few hundred tasks used to make every task dir (``params.yaml``, ``command.json``,
the fast path's ``command.sh``, a ``submitted`` status, ``results/``) before ``sbatch`` ran: about
0.2 s of a 200-task run before the scheduler heard of it, when Slurm itself takes 0.3-0.6 s more to
start the first element. Such a submission is now handed over like a large one (:mod:`.unmade`: the
specs carry what each dir is made from), and:

1. before the job is submitted, its chunk's task file (``<list>.tasks.jsonl``, for the Python
   runner) and the fast path's rows (:mod:`hsm_core.fastrun_rows`, for bash) are written: a few
   files, not hundreds, so that an element that starts at once finds its row, and never neither
   its dir nor its row;
2. right after the scheduler accepted the job, the controller makes each dir, in array order (the
   order in which elements start), whole in a temporary sibling renamed into place: the same files
   a dir made at submission had, the ``submitted`` status included. An element that started first
   made the dir itself from its row (its rename won; the controller's then fails and leaves that
   dir alone), and ran the task exactly once, recording what it records for a dir it finds.

The controller almost always wins (an element making its own dir costs it about 2.5 ms of CPU
more): ``hsm run --no-wait`` returns once every dir exists, as before.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from hsm_core.atomic import dump_yaml
from hsm_core.plugin.arrayjob.manifest import submitted_status
from hsm_core.plugin.arrayjob.unmade import UNMADE_FROM, unmade
from hsm_core.plugin.taskfiles import now_iso
from hsm_core.secrecy import holds_secret
from hsm_core.task_manifest import make_whole
from hsm_core.taskdir import COMMAND_FILE, COMMAND_SCRIPT, PARAMS_FILE, RESULTS_DIR, STATUS_FILE

__all__ = ["wanted", "ChunkTexts", "prepare_chunk", "make_dirs"]

#: Texts of each task of a chunk, in list order: (params.yaml, command.json, command.sh or None),
#: or None for a task whose dir exists (or that no text can be made for).
ChunkTexts = list


def wanted(files: Any, tasks: Sequence[Any]) -> bool:
    """Whether the controller makes these tasks' dirs right after their submission: a submission
    handed over without dirs (:mod:`.unmade`) that is small (below :data:`~.unmade.UNMADE_FROM`,
    where the elements make their own) and runs the shell fast path (whose rows let an element
    that starts first make its dir without the Python runner)."""
    return 0 < len(tasks) < UNMADE_FROM and files.fast_path() and any(unmade(s) for s in tasks)


def prepare_chunk(list_file: Path, chunk: Sequence[Any]) -> ChunkTexts:
    """Before the chunk is submitted: its tasks' texts, and the fast path's rows written from them
    (the chunk's task file, for the Python runner, is :mod:`.jobfiles`' own)."""
    # (imported here, as the other users of the fast path's files do: importing the plugin API
    # must not load the task runner it imports)
    from hsm_core.fastrun_rows import row_texts, write_rows

    made_from = [s.made_from if unmade(s) else None for s in chunk]
    texts: ChunkTexts = [row_texts(m) if m else None for m in made_from]
    write_rows(Path(list_file), made_from, texts)
    return texts


def make_dirs(chunk: Sequence[Any], texts: ChunkTexts, *, source: str, per_element: int, script: str,
              log: Any = None) -> int:
    """After the chunk was submitted: make each missing task dir, in array order, with the
    ``submitted`` status :func:`.manifest.write_submitted` gives a dir made at submission. Returns
    how many this call made (the others: made by their element first, or failed, which ``log``
    hears of: the element then makes the dir itself)."""
    stamp = now_iso()
    made = 0
    for i, (spec, text) in enumerate(zip(chunk, texts)):
        if text is None:
            continue
        status = submitted_status(spec, i, source=source, per_element=per_element, script=script, stamp=stamp)
        try:
            private = holds_secret((spec.made_from.get("command") or {}).get("env"))
            if _make_one(Path(spec.task_dir), text, dump_yaml(status), private):
                made += 1
        except OSError as exc:  # a full disk: the element makes it (or says why it cannot)
            if log is not None:
                log(f"{spec.name}: task dir not made after submission ({exc}); its element makes it")
    return made


def _make_one(task_dir: Path, texts: tuple[str, str, str | None], status_text: str, private: bool) -> bool:
    """Make the missing ``task_dir`` whole under a temporary name, then rename it into place, as
    :func:`hsm_core.task_manifest.materialize` does; False when it exists (its element's rename won)."""
    params_text, json_text, script = texts

    def fill(tmp: Path) -> None:
        _write(tmp / PARAMS_FILE, params_text)
        _write(tmp / COMMAND_FILE, json_text, private)
        if script is not None:  # (none: the Python runner runs it, as for a dir made at submission)
            _write(tmp / COMMAND_SCRIPT, script, private)
            (tmp / RESULTS_DIR).mkdir()
        _write(tmp / STATUS_FILE, status_text)

    return make_whole(task_dir, fill)  # (False: the element's own rename made it first)


def _write(path: Path, text: str, private: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600 if private else 0o666)
    with os.fdopen(fd, "wb") as fh:
        fh.write(text.encode("utf-8"))
