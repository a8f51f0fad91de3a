"""Running a sync: per target, connect once, plan, transfer in parallel, report.

Items are packed into chunks (one rsync each) so that many small runs do not pay an rsync start
each, while ``parallel_transfers`` chunks run at once. A chunk that succeeds has its finished items
recorded on the target (empty files ``<root>/.hsm-sync/<fingerprint>``), which is what
``check_remote_first`` lists the next time. A failed chunk is reported and the others go on.
"""

from __future__ import annotations

import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from hsm_core.plugin import HsmError, SweepLocation, SyncItem, SyncTransportRecord
from hsm_core.sync.config import MARKER_DIR, SyncTarget, effective_options
from hsm_core.sync.planner import SWEEP_KIND, TargetPlan, check_remote, plan_target

#: A chunk holds at most this many bytes unless one item is bigger (then it is alone).
CHUNK_BYTES = 256 * 1024 * 1024


@dataclass
class SyncFlags:
    """The command-line flags of ``hsm sync run``."""

    dry_run: bool = False
    sweep_only: bool = False
    wandb_only: bool = False
    all_versions: bool = False


@dataclass
class TargetReport:
    """What happened for one target."""

    target: str
    where: str
    dry_run: bool = False
    sent: list[SyncItem] = field(default_factory=list)
    skipped: list[tuple[SyncItem, str]] = field(default_factory=list)
    failed: list[tuple[SyncItem, str]] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    changed: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        """Counts per kind, for the summary and ``--json``."""
        out: dict[str, Any] = {}
        for label, pairs in (("sent", [(i, "") for i in self.sent]), ("skipped", self.skipped), ("failed", self.failed)):
            for item, reason in pairs:
                kind = out.setdefault(item.kind, {"sent": 0, "skipped": {}, "failed": 0, "unfinished_sent": 0})
                if label == "sent":
                    kind["sent"] += 1
                    if item.fingerprint is None and item.kind != SWEEP_KIND:
                        kind["unfinished_sent"] += 1
                elif label == "skipped":
                    kind["skipped"][reason] = kind["skipped"].get(reason, 0) + 1
                else:
                    kind["failed"] += 1
        return out

    def details(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for item in self.sent:
            for k, v in item.details.items():
                total[k] = total.get(k, 0) + v
        return total

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "where": self.where,
            "dry_run": self.dry_run,
            "files": self.files,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "kinds": self.counts(),
            "details": self.details(),
            "sent": [i.label for i in self.sent],
            "skipped": [[i.label, r] for i, r in self.skipped],
            "failed": [[i.label, r] for i, r in self.failed],
            "notes": self.notes,
            "error": self.error,
            "changed": self.changed,
        }


def make_transport(target: SyncTarget, registry: Any) -> Any:
    """The target's transport (``rsync`` unless it says otherwise), not yet opened."""
    rec = registry.get(SyncTransportRecord.kind, target.transport)
    return rec.load()(target.name, target.settings())


def make_chunks(items: Sequence[SyncItem], parallel: int) -> list[list[SyncItem]]:
    """Pack items into rsync invocations.

    Items with the same destination and filters share an rsync; each group is spread over the
    ``parallel`` slots by size (largest first, into the lightest slot) so the slots finish together,
    and a slot's share is cut into chunks of at most :data:`CHUNK_BYTES` (an rsync start costs a
    round trip, so fewer and fuller is faster; the progress bar still moves file by file).
    """
    groups: dict[tuple[Any, ...], list[SyncItem]] = {}
    for item in items:
        groups.setdefault((item.dest_root, item.excludes, item.prune_empty_dirs), []).append(item)
    chunks: list[list[SyncItem]] = []
    for group in groups.values():
        slots: list[list[SyncItem]] = [[] for _ in range(max(1, min(parallel, len(group))))]
        loads = [0] * len(slots)
        for item in sorted(group, key=lambda i: -i.size):
            k = loads.index(min(loads))
            slots[k].append(item)
            loads[k] += item.size
        for slot in slots:
            current: list[SyncItem] = []
            size = 0
            for item in slot:
                if current and size + item.size > CHUNK_BYTES:
                    chunks.append(current)
                    current, size = [], 0
                current.append(item)
                size += item.size
            if current:
                chunks.append(current)
    chunks.sort(key=lambda c: -sum(i.size for i in c))
    return chunks


class _Progress:
    """A rich progress bar (runs and bytes) on stderr, or nothing when it is not a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._lock = threading.Lock()

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[items]}"),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def add(self, description: str, total_bytes: int, total_items: int) -> Any:
        if self._progress is None:
            return None
        return self._progress.add_task(description, total=max(total_bytes, 1), items=f"0/{total_items} items")

    def advance(self, task: Any, nbytes: int) -> None:
        if self._progress is not None and task is not None and nbytes:
            with self._lock:
                self._progress.update(task, advance=nbytes)

    def items(self, task: Any, done: int, total: int) -> None:
        if self._progress is not None and task is not None:
            with self._lock:
                self._progress.update(task, items=f"{done}/{total} items")

    def finish(self, task: Any) -> None:
        if self._progress is not None and task is not None:
            with self._lock:
                t = self._progress.tasks[[x.id for x in self._progress.tasks].index(task)]
                self._progress.update(task, completed=t.total)


def write_markers(transport: Any, plan: TargetPlan, items: Sequence[SyncItem]) -> None:
    """Record finished items on the target (what ``check_remote_first`` lists next time)."""
    by_root: dict[str, list[str]] = {}
    for item in items:
        if item.fingerprint:
            by_root.setdefault(plan.roots[item.dest_root], []).append(item.fingerprint)
    if not by_root:
        return
    if hasattr(transport, "write_markers"):
        for root, fps in by_root.items():
            transport.write_markers(f"{root.rstrip('/')}/{MARKER_DIR}", fps)
        return
    with tempfile.TemporaryDirectory(prefix="hsm-markers-") as tmp:
        empty = Path(tmp, "marker")
        empty.write_bytes(b"")
        for root, fps in by_root.items():
            transport.send([(empty, f"{MARKER_DIR}/{fp}") for fp in fps], root)


def sync_target(
    loc: SweepLocation,
    target: SyncTarget,
    flags: SyncFlags,
    registry: Any,
    progress: _Progress,
    *,
    transport: Any = None,
) -> TargetReport:
    """Sync one sweep to one target (the transport is opened and closed here unless given).

    What can overlap does: the SSH connection is made while this machine's side is planned, and
    items that are always sent (the sweep directory, unfinished runs) start while the target is
    asked which finished runs it has.
    """
    started = time.monotonic()
    options = effective_options(target, sweep_only=flags.sweep_only, wandb_only=flags.wandb_only,
                                all_versions=flags.all_versions)
    own = transport is None
    if own:
        transport = make_transport(target, registry)
    report = TargetReport(target.name, target.describe(), dry_run=flags.dry_run)
    opener = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hsm-connect") if own else None
    try:
        roots = _roots_needed(target, options)

        def connect() -> None:
            transport.open()
            if hasattr(transport, "prepare"):
                # One round trip, while this machine plans: make the destinations, and list what
                # check_remote_first will ask for.
                listing = [f"{r.rstrip('/')}/{MARKER_DIR}" for r in roots] if options.get("check_remote_first", True) else []
                transport.prepare(make=[] if flags.dry_run else roots, listing=listing)

        opening = opener.submit(connect) if opener is not None else None
        try:
            plan = plan_target(loc, target, options, registry)
        finally:
            if opening is not None:
                opening.result()  # a connection error wins over a planning one: it says more
        report.skipped = list(plan.skipped)
        report.notes = list(plan.notes)
        _Transfer(plan, transport, flags, progress, report).run()
    finally:
        if opener is not None:
            opener.shutdown(wait=True)
        if own:
            transport.close()
        report.seconds = time.monotonic() - started
    return report


def _roots_needed(target: SyncTarget, options: dict[str, Any]) -> list[str]:
    keys = []
    if options.get("sync_sweep_metadata", True):
        keys.append("sweeps" if target.paths.get("sweeps") else "project_root")
    if options.get("sync_wandb_runs", True):
        keys.append("wandb")
    return [target.paths[k] for k in keys if target.paths.get(k)]


class _Transfer:
    """The transfers of one target: chunks on ``parallel_transfers`` threads, then the markers."""

    def __init__(self, plan: TargetPlan, transport: Any, flags: SyncFlags, progress: _Progress,
                 report: TargetReport) -> None:
        self.plan, self.transport, self.flags, self.progress, self.report = plan, transport, flags, progress, report
        self.parallel = int(plan.options.get("parallel_transfers") or 1)
        self.lock = threading.Lock()
        self.succeeded: list[SyncItem] = []
        self.total_items = len(plan.items)
        self.done_items = 0
        self.task = progress.add(f"to {plan.target.name}", plan.size, self.total_items)

    def _send(self, chunk: list[SyncItem]) -> Any:
        seen = [0]

        def on_file(path: str, size: int) -> None:
            seen[0] += size
            self.progress.advance(self.task, size)

        first = chunk[0]
        try:
            return self.transport.send(
                [e for item in chunk for e in item.entries],
                self.plan.roots[first.dest_root],
                dry_run=self.flags.dry_run,
                excludes=first.excludes,
                on_file=on_file,
                prune_empty_dirs=first.prune_empty_dirs,
            )
        finally:
            # Files already on the target count as done for the bar.
            self.progress.advance(self.task, max(0, sum(i.size for i in chunk) - seen[0]))

    def _collect(self, chunk: list[SyncItem], fut: Future[Any]) -> None:
        try:
            result = fut.result()
        except HsmError as exc:
            with self.lock:
                self.report.failed += [(i, str(exc)) for i in chunk]
            return
        with self.lock:
            self.report.sent += chunk
            self.succeeded.extend(chunk)
            self.report.files += result.files
            self.report.bytes += result.bytes
            self.report.changed += result.changed
            self.report.notes += [f"{self.plan.target.name}: {m}" for m in result.messages]
            self.done_items += len(chunk)
        self.progress.items(self.task, self.done_items, self.total_items)

    def run(self) -> None:
        plan = self.plan
        always = [i for i in plan.items if i.fingerprint is None]
        maybe = [i for i in plan.items if i.fingerprint is not None]
        pool = ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="hsm-sync")
        futures: dict[Future[Any], list[SyncItem]] = {}
        try:
            for chunk in make_chunks(always, self.parallel):
                futures[pool.submit(self._send, chunk)] = chunk
            # Meanwhile: which finished items does the target have already? (one listing)
            wanted = check_remote(plan, self.transport, maybe)
            kept = {id(i) for i in wanted}
            skipped = [i for i in maybe if id(i) not in kept]
            gone = {id(i) for i in skipped}
            self.report.skipped += [(i, r) for i, r in plan.skipped if id(i) in gone]
            if skipped:
                self.total_items -= len(skipped)
                self.progress.advance(self.task, sum(i.size for i in skipped))
                self.progress.items(self.task, self.done_items, self.total_items)
            for chunk in make_chunks(wanted, self.parallel):
                futures[pool.submit(self._send, chunk)] = chunk
            for item in always + wanted:
                self.report.notes += item.notes
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in finished:
                    self._collect(futures[fut], fut)
        except KeyboardInterrupt:
            if hasattr(self.transport, "interrupt"):
                self.transport.interrupt()
            pool.shutdown(wait=True, cancel_futures=True)
            if not self.flags.dry_run:
                _safe_markers(self.transport, plan, self.succeeded, self.report)
            raise
        pool.shutdown(wait=True)
        self.progress.finish(self.task)
        if not self.flags.dry_run:
            _safe_markers(self.transport, plan, self.succeeded, self.report)


def _safe_markers(transport: Any, plan: TargetPlan, items: Sequence[SyncItem], report: TargetReport) -> None:
    try:
        write_markers(transport, plan, items)
    except HsmError as exc:  # the data is there; only the next check_remote_first is slower
        report.notes.append(f"could not record synced runs on {plan.target.name}: {exc}")


def run_sync(
    loc: SweepLocation,
    targets: Sequence[SyncTarget],
    flags: SyncFlags,
    registry: Any,
    *,
    show_progress: bool = True,
    transports: dict[str, Any] | None = None,
) -> list[TargetReport]:
    """Sync ``loc`` to every target in turn; a target that cannot be reached does not stop the others."""
    reports: list[TargetReport] = []
    with _Progress(show_progress) as progress:
        for target in targets:
            try:
                reports.append(sync_target(loc, target, flags, registry, progress,
                                           transport=(transports or {}).get(target.name)))
            except HsmError as exc:
                if len(targets) == 1:
                    raise
                reports.append(TargetReport(target.name, target.describe(), dry_run=flags.dry_run, error=str(exc)))
    return reports


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------

KIND_NAMES = {SWEEP_KIND: "sweep metadata", "wandb_run": "W&B runs"}


def human_bytes(n: float) -> str:
    """``1.2 MB`` style (powers of 1000, as rich's progress bar)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def summary_lines(report: TargetReport) -> list[str]:
    """The end-of-sync summary of one target, as plain lines."""
    verb = "would send" if report.dry_run else "sent"
    head = f"{'Dry run' if report.dry_run else 'Synced'} to {report.target} ({report.where})"
    if report.error:
        return [f"{report.target} ({report.where}): FAILED: {report.error}"]
    lines = [f"{head} in {report.seconds:.1f}s"]
    for kind, c in sorted(report.counts().items(), key=lambda kv: (kv[0] != SWEEP_KIND, kv[0])):
        name = KIND_NAMES.get(kind, kind)
        if kind == SWEEP_KIND:
            state = verb if c["sent"] else "skipped"
            lines.append(f"  {name}: {state}")
            continue
        parts = [f"{c['sent']} {verb}"]
        if c["unfinished_sent"]:
            parts[-1] += f" ({c['unfinished_sent']} unfinished, sent again)"
        for reason, n in sorted(c["skipped"].items()):
            parts.append(f"{n} skipped: {reason}")
        if c["failed"]:
            parts.append(f"{c['failed']} FAILED")
        lines.append(f"  {name}: " + ", ".join(parts))
    for key, n in sorted(report.details().items()):
        lines.append(f"  {key}: {n}")
    lines.append(f"  files {verb}: {report.files}, {human_bytes(report.bytes)}")
    for item, reason in report.failed[:5]:
        lines.append(f"  failed: {item.label}: {reason}")
    if len(report.failed) > 5:
        lines.append(f"  ... and {len(report.failed) - 5} more failures")
    for note in dict.fromkeys(report.notes):  # unique, in order
        lines.append(f"  note: {note}")
    return lines


# --------------------------------------------------------------------------------------------
# --continuous
# --------------------------------------------------------------------------------------------


def sweep_done(sweep_dir: Path) -> tuple[bool, int]:
    """(no task will change any more, number of tasks in a final state) from the sweep's index."""
    from hsm_core.plugin import TaskState
    from hsm_core.state import SweepDir

    sweep = SweepDir(sweep_dir)
    records = sweep.records()
    states = [TaskState(r.state) for r in records.values()]
    final = sum(1 for s in states if s.finished)
    active = any(s.active for s in states)
    status = sweep.read_metadata().get("status")
    if active:
        return False, final
    # Nothing runs: done when every task is final, or when the controller says it stopped.
    return (final == len(states) or status not in ("running", "submitted")), final


def run_continuous(
    loc: SweepLocation,
    targets: Sequence[SyncTarget],
    flags: SyncFlags,
    registry: Any,
    *,
    interval: float,
    poll: float = 1.0,
    show_progress: bool = True,
    on_round: Callable[[int, list[TargetReport]], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[list[TargetReport]]:
    """Sync again whenever a task finishes (or every ``interval`` s while tasks run), until the
    sweep is done; then one last sync. Connections stay open between rounds."""
    transports: dict[str, Any] = {}
    rounds: list[list[TargetReport]] = []
    try:
        for target in targets:
            t = make_transport(target, registry)
            t.open()
            transports[target.name] = t
        n = 0
        while True:
            done, final_before = sweep_done(loc.sweep_dir)
            n += 1
            reports = run_sync(loc, targets, flags, registry, show_progress=show_progress, transports=transports)
            rounds.append(reports)
            if on_round is not None:
                on_round(n, reports)
            if done:
                return rounds
            waited = 0.0
            while waited < interval:
                sleep(poll)
                waited += poll
                now_done, final_now = sweep_done(loc.sweep_dir)
                if now_done or final_now != final_before:
                    break
    finally:
        for t in transports.values():
            t.close()
