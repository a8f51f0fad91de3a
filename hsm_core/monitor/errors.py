"""Failed tasks grouped by error pattern.

A failed task's pattern comes from its final state, its exit code and the last lines of its
``stderr.log`` (only the last attempt's: the runner appends a banner per attempt), normalised so
that the same error in two tasks gives the same pattern: numbers, paths and hex addresses become
``<n>``, ``<path>`` and ``<hex>``. In order of precedence:

=================  =================================================================================
timeout            state ``timeout`` or a scheduler's time-limit message
preempted / lost   state ``preempted`` / ``lost``
out_of_memory      CUDA OOM, ``MemoryError``, the OOM killer, a lone ``Killed`` line or exit 137
node_failure       the node failed under the task (Slurm's ``DUE TO NODE FAILURE``, an ECC error ...)
nccl_error         NCCL communication errors and collective timeouts (not NCCL's "invalid usage")
cuda_error         ``CUDA error: ...``, cuDNN / cuBLAS errors
hydra_config       a Hydra app refused its overrides or config (the line saying what went wrong,
                   not Hydra's "Set the environment variable HYDRA_FULL_ERROR=1" footer)
python_exception   the last ``XxxError: message`` line of a traceback
killed             killed by another signal (exit code 128+N or -N)
exit_code          anything else: ``exit code N``
=================  =================================================================================

:func:`analyze` reads only the index plus the files of failed tasks; :func:`write_error_files`
writes ``logs/errors/failed_tasks.yaml`` and ``logs/errors/error_patterns.yaml`` atomically.
"""

from __future__ import annotations

import re
import signal as _signal
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from hsm_core.atomic import atomic_write_yaml
from hsm_core.taskdir import STDERR_LOG, stderr_path
from hsm_core.taskstate import FAILED_STATES  # (not from monitor.snapshot: 5 ms of every hsm monitor errors)
from hsm_core.state import SweepDir, TaskRecord, now_iso, read_status

CATEGORY_TITLES = {
    "out_of_memory": "Out of memory",
    "node_failure": "Node failure",
    "nccl_error": "NCCL error",
    "cuda_error": "CUDA error",
    "timeout": "Timeout",
    "hydra_config": "Hydra configuration error",
    "python_exception": "Python exception",
    "killed": "Killed by signal",
    "preempted": "Preempted",
    "lost": "Lost",
    "exit_code": "Exit code",
}

TAIL_BYTES = 32 * 1024
TAIL_LINES = 40
_ATTEMPT_BANNER = re.compile(r"^==== hsm: attempt \d+ ")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

_TIMEOUT = re.compile(r"DUE TO TIME LIMIT|job killed: walltime|walltime .{0,30}exceeded|time limit exceeded", re.I)
_KILLED = re.compile(r"(?:^|\s)Killed(?:\s|$)")
_OOM_CUDA = re.compile(r"CUDA out of memory|CUDA error: out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED|cudaErrorMemoryAllocation", re.I)
_OOM_HOST = re.compile(r"(?:^|[\s.:])(?:MemoryError|_ArrayMemoryError)\b|Cannot allocate memory|std::bad_alloc|Unable to allocate \S+ (?:[KMGT]i?B|bytes)")
_OOM_KILLER = re.compile(r"oom[-_ ]kill|Out of memory: Kill|Exceeded job memory limit|exceeded memory limit|job killed: mem|OUT_OF_MEMORY", re.I)
_CUDA = re.compile(r"CUDA error|CUDA_ERROR_\w+|cudaError\w*|CUDNN_STATUS_\w+|cuDNN error|NCCL error|CUBLAS_STATUS_\w+|no CUDA-capable device", re.I)
_NODE_FAILURE = re.compile(r"DUE TO NODE FAIL|NODE_FAIL|\bnode failure|uncorrectable ECC error|Socket timed out on send/recv|"
                           r"Transport endpoint is not connected|Stale file handle", re.I)
_NCCL = re.compile(r"NCCL error|NCCL (?:WARN|timeout)|nccl(?:System|Remote|Internal|UnhandledCuda)Error|"
                   r"NCCL communicator was aborted|Watchdog caught collective operation timeout", re.I)
#: NCCL errors that a bug in the program causes: run again, they fail again.
_NCCL_MISUSE = re.compile(r"invalid usage|invalid argument|ncclInvalid", re.I)
_TRACEBACK = "Traceback (most recent call last):"
_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::\s?(.*))?$")
_EXC_ANYWHERE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit|Warning)): (.*)$")
_SEGFAULT = re.compile(r"Segmentation fault|SIGSEGV", re.I)
_HYDRA_FOOTER = re.compile(r"HYDRA_FULL_ERROR=1 for a complete stack trace")
#: How Hydra's own messages begin (hydra.errors, OmegaConf, the override parser).
_HYDRA_HEADLINE = re.compile(
    r"^(?:Could not (?:override|append|delete|load|find)|Error (?:merging|parsing|in)|Cannot find primary config|"
    r"Primary config (?:module|directory)|In '[^']*': |Missing mandatory value|Ambiguous value|Multiple values for|"
    r"Interpolation |Key '[^']*' (?:is )?not in|Value '.*' (?:of type .* )?could not be converted|"
    r"(?:no viable alternative|mismatched input|extraneous input|token recognition error|missing '))"
)
#: Lines of Hydra's messages that advise rather than say what went wrong.
_HYDRA_ADVICE = re.compile(r"^(?:To append to your config|Either remove|Or add a second|See https?://|Config search path|"
                           r"Available options|provider=|full_key:|object_type=|reference_type=|Set the environment)")

_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b|\b[0-9a-fA-F]{12,}\b")
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:~|\.{1,2})?(?:/[^\s/:'\",()\[\]{}<>]+){2,}/?|(?<![\w.])/[^\s/:'\",()\[\]{}<>]+/?")
_NUMBER = re.compile(r"(?<![\w.<])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w<])")
_SPACES = re.compile(r"\s+")
MAX_PATTERN = 160


def normalize(text: str) -> str:
    """The message with hex ids, paths and numbers replaced, so similar errors compare equal."""
    out = _HEX.sub("<hex>", text)
    out = _PATH.sub("<path>", out)
    out = _NUMBER.sub("<n>", out)
    out = _SPACES.sub(" ", out).strip()
    if len(out) > MAX_PATTERN:
        out = out[: MAX_PATTERN - 1].rstrip() + "…"
    return out


def read_stderr_tail(task_dir: Path, max_lines: int = TAIL_LINES) -> list[str]:
    """The last lines of the task's last attempt in ``stderr.log`` (ANSI colours removed)."""
    path = stderr_path(task_dir)
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - TAIL_BYTES))
            data = fh.read()
    except OSError:
        return []
    lines = []
    for raw in data.decode("utf-8", "replace").split("\n"):
        # Progress bars rewrite a line with \r: keep what was shown last.
        line = _ANSI.sub("", raw.rsplit("\r", 1)[-1]).rstrip()
        if _ATTEMPT_BANNER.match(line):
            lines = []
            continue
        if line.strip():
            lines.append(line)
    return lines[-max_lines:]


@dataclass
class Diagnosis:
    """Why one task failed."""

    category: str  #: a key of CATEGORY_TITLES
    pattern: str  #: normalised: the grouping key
    message: str  #: the line it came from, as written


def _signal_name(exit_code: int | None) -> str | None:
    if not isinstance(exit_code, int) or 0 <= exit_code <= 128:
        return None
    signum = -exit_code if exit_code < 0 else exit_code - 128
    try:
        return _signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _python_exception(lines: list[str]) -> tuple[str, str] | None:
    """``(type, message)`` of the last exception a Python traceback in ``lines`` ended with."""
    start = None
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].strip() == _TRACEBACK:
            start = i
            break
    if start is not None:
        for line in lines[start + 1 :]:
            if line[:1].isspace():
                continue
            m = _EXC_LINE.match(line.strip())
            if m and not line.startswith(("During handling", "The above exception")):
                return m.group(1), (m.group(2) or "").strip()
    for line in reversed(lines):
        m = _EXC_ANYWHERE.match(line.strip())
        if m:
            return m.group(1), m.group(2).strip()
    return None


def _hydra_error(lines: list[str]) -> str | None:
    """The line of a Hydra app's error message that says what went wrong, when its output ends
    with Hydra's footer and no traceback (a traceback is the script's own exception)."""
    end = None
    for i in range(len(lines) - 1, -1, -1):
        if _HYDRA_FOOTER.search(lines[i]):
            end = i
            break
    if end is None or any(line.strip() == _TRACEBACK for line in lines[:end]):
        return None
    message = lines[max(0, end - 15):end]
    for line in message:  # Hydra's headline comes first in its message
        if _HYDRA_HEADLINE.match(line.strip()):
            return line.strip()
    for line in reversed(message):
        if line[:1].isspace() or _HYDRA_ADVICE.match(line.strip()):
            continue
        return line.strip()
    return None


def _find(pattern: re.Pattern[str], lines: list[str]) -> str | None:
    for line in reversed(lines):
        if pattern.search(line):
            return line.strip()
    return None


def classify(state: str, exit_code: int | None, lines: list[str], error: str | None = None) -> Diagnosis:
    """The :class:`Diagnosis` of a task from its state, exit code and last stderr lines."""
    last = lines[-1].strip() if lines else ""
    if state == "timeout" or _find(_TIMEOUT, lines[-5:]):
        return Diagnosis("timeout", "timeout: time limit exceeded", _find(_TIMEOUT, lines) or last or "state timeout")
    if state == "preempted":
        return Diagnosis("preempted", "preempted (stopped by the scheduler or a signal)", last or "state preempted")
    if state == "lost":
        return Diagnosis("lost", "lost (the source lost track of it: host down, node failure)", error or last or "state lost")
    if hit := _find(_OOM_CUDA, lines):
        return Diagnosis("out_of_memory", "out of memory (CUDA)", hit)
    if hit := _find(_OOM_KILLER, lines):
        return Diagnosis("out_of_memory", "out of memory (killed by the OOM killer)", hit)
    if hit := _find(_OOM_HOST, lines):
        return Diagnosis("out_of_memory", "out of memory (MemoryError)", hit)
    if _KILLED.search(last) or exit_code in (137, -9):
        return Diagnosis("out_of_memory", "out of memory? (killed with SIGKILL, exit code 137)", last or f"exit code {exit_code}")
    if hit := _find(_NODE_FAILURE, lines):
        return Diagnosis("node_failure", "node failure", hit)
    if (hit := _find(_NCCL, lines)) and not _NCCL_MISUSE.search(hit):
        m = _NCCL.search(hit)
        return Diagnosis("nccl_error", normalize(hit[m.start():] if m else hit), hit)
    if hit := _find(_CUDA, lines):
        m = _CUDA.search(hit)
        return Diagnosis("cuda_error", normalize(hit[m.start():] if m else hit), hit)
    if hit := _hydra_error(lines):
        return Diagnosis("hydra_config", normalize(hit), hit)
    exc = _python_exception(lines)
    if exc is not None:
        etype, msg = exc
        text = f"{etype}: {msg}" if msg else etype
        return Diagnosis("python_exception", normalize(text), text)
    sig = _signal_name(exit_code)
    if sig or _find(_SEGFAULT, lines):
        sig = sig or "SIGSEGV"
        return Diagnosis("killed", f"killed by signal {sig}", last or f"exit code {exit_code}")
    if error:
        # What hsm recorded of the attempt (a setup command that failed, so the task never ran
        # and left no stderr): it says more than its exit code.
        return Diagnosis("exit_code", normalize(error), error)
    return Diagnosis("exit_code", f"exit code {exit_code if exit_code is not None else '?'}", last)


@dataclass
class FailedTask:
    """A failed task with its diagnosis."""

    record: TaskRecord
    diagnosis: Diagnosis
    tail: list[str]
    signal: str | None = None
    error: str | None = None


@dataclass
class ErrorGroup:
    """Failed tasks sharing a pattern."""

    pattern: str
    category: str
    tasks: list[FailedTask] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.tasks)

    @property
    def example(self) -> str:
        return self.tasks[0].diagnosis.message if self.tasks else ""


@dataclass
class ErrorReport:
    """Every failed task of a sweep, and the groups they fall into (largest first)."""

    sweep_id: str
    failed: list[FailedTask]
    groups: list[ErrorGroup]

    def by_category(self) -> dict[str, int]:
        """Failed tasks per category, largest first."""
        counts = Counter(f.diagnosis.category for f in self.failed)
        return dict(counts.most_common())


def diagnose(sweep: SweepDir, rec: TaskRecord) -> FailedTask:
    """Diagnose one failed task (reads its ``stderr.log`` tail and ``status.yaml``)."""
    d = sweep.record_dir(rec)
    tail = read_stderr_tail(d)
    status = read_status(d) or {}
    exit_code = rec.exit_code if rec.exit_code is not None else status.get("exit_code")
    error = status.get("error")
    diag = classify(rec.state, exit_code if isinstance(exit_code, int) else None, tail, str(error) if error else None)
    return FailedTask(rec, diag, tail, status.get("signal") or _signal_name(exit_code if isinstance(exit_code, int) else None), error)


def analyze(sweep: SweepDir, records: Iterable[TaskRecord]) -> ErrorReport:
    """Group the failed tasks (states failed/timeout/lost/preempted) of ``records`` by pattern."""
    failed = [diagnose(sweep, r) for r in sorted(records, key=lambda r: r.index) if r.state in FAILED_STATES]
    groups: dict[str, ErrorGroup] = {}
    for f in failed:
        key = f.diagnosis.pattern
        groups.setdefault(key, ErrorGroup(key, f.diagnosis.category)).tasks.append(f)
    ordered = sorted(groups.values(), key=lambda g: (-g.count, g.tasks[0].record.index))
    return ErrorReport(sweep.sweep_id, failed, ordered)


def write_error_files(sweep: SweepDir, report: ErrorReport) -> list[Path]:
    """Write ``logs/errors/failed_tasks.yaml`` and ``logs/errors/error_patterns.yaml``."""
    failed_doc, patterns_doc = error_documents(report)
    out = sweep.logs_dir / "errors"
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "failed_tasks.yaml", out / "error_patterns.yaml"]
    # Made again from the task dirs by every hsm monitor errors: whole (atomic), not fsynced (two
    # fsyncs were a tenth of the command's time on a busy disk).
    atomic_write_yaml(paths[0], failed_doc, fsync=False)
    atomic_write_yaml(paths[1], patterns_doc, fsync=False)
    return paths


def error_documents(report: ErrorReport) -> tuple[dict[str, Any], dict[str, Any]]:
    """The contents of ``failed_tasks.yaml`` and ``error_patterns.yaml`` (what
    :func:`write_error_files` writes; a read-only sweep gets them without the files)."""
    generated = now_iso()
    tasks: dict[str, Any] = {}
    for f in report.failed:
        r = f.record
        entry: dict[str, Any] = {
            "task_id": r.task_id,
            "state": r.state,
            "exit_code": r.exit_code,
        }
        if f.signal:
            entry["signal"] = f.signal
        entry.update(
            source=r.source,
            host=r.host,
            attempt=r.attempt,
            duration=r.duration,
            params=r.params,
            category=f.diagnosis.category,
            pattern=f.diagnosis.pattern,
            message=f.diagnosis.message,
            stderr_tail=f.tail[-10:],
            stderr=f"tasks/{r.name}/{STDERR_LOG}",
        )
        if f.error:
            entry["error"] = f.error
        tasks[r.name] = entry
    failed_doc = {"sweep_id": report.sweep_id, "generated": generated, "total_failed": len(report.failed), "tasks": tasks}
    patterns_doc = {
        "sweep_id": report.sweep_id,
        "generated": generated,
        "total_failed": len(report.failed),
        "by_category": report.by_category(),
        "patterns": [
            {
                "pattern": g.pattern,
                "category": g.category,
                "count": g.count,
                "tasks": [f.record.name for f in g.tasks],
                "example": g.example,
                "sources": dict(Counter(f.record.source or "unknown" for f in g.tasks).most_common()),
                "exit_codes": sorted({f.record.exit_code for f in g.tasks if f.record.exit_code is not None}),
            }
            for g in report.groups
        ],
    }
    return failed_doc, patterns_doc
