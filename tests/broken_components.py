"""Deliberately broken components, each with one defect the contract suites must catch.

tests/test_contract_suite.py runs the contract suites against each of them and asserts that the
suite fails, naming the check that catches the defect. The compute sources are the template
plugin's source (plugins/template, which passes the whole suite) with one thing wrong; the
expanders are a small ``ranges`` expander with one thing wrong.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from typing import Any, Iterable, Iterator, Mapping, Sequence

from hsm_core.plugin import (
    ComputeSource,
    ConfigError,
    Expander,
    ExpanderRecord,
    TaskSpec,
    TaskState,
    TaskUpdate,
    hookimpl,
    processes,
    read_status,
    write_status,
)
from hsm_plugin_example.source import ExampleSource, _Task

#: Loaded as a plugin (through a test-made entry point) for the expander contract runs.
HSM_PLUGIN_API = "1.0"


# -- compute sources -------------------------------------------------------------------------------
class NoSubmittedSource(ExampleSource):
    """A queue: the task starts some time after launch() returned, and nothing on disk says it was
    launched until the runner writes ``running``.

    How long the queue holds a task must not decide what the suite sees (a slow machine would
    let the first copy write ``running`` before a new controller looks): each launch of a task
    leaves a mark, and a queued copy starts once a second launch of its task marked it too, or
    after 8 s when nothing launches it again."""

    def launch(self, tasks: Sequence[TaskSpec]) -> None:
        queued = ("import os, sys, time\n"
                  "marks = sys.argv[1]\n"
                  "os.makedirs(marks, exist_ok=True)\n"
                  "open(os.path.join(marks, str(os.getpid())), 'w').close()\n"
                  "deadline = time.monotonic() + 8\n"
                  "while len(os.listdir(marks)) < 2 and time.monotonic() < deadline:\n"
                  "    time.sleep(0.05)\n"
                  "os.execv(sys.executable, [sys.executable, '-m', 'hsm_core.runner', *sys.argv[2:]])\n")
        for spec in tasks:
            marks = spec.task_dir.parent / f".{spec.task_dir.name}.launches"
            proc = subprocess.Popen([sys.executable, "-c", queued, str(marks), "--source", self.name, str(spec.task_dir)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
            self._tasks[spec.task_id] = _Task(spec, processes.identity(proc.pid), proc)


class ForgetsSourceDataSource(ExampleSource):
    """Writes its ``submitted`` record afresh, dropping what other sources keep in ``status.yaml``
    (``source_data``) instead of carrying it over."""

    def launch(self, tasks: Sequence[TaskSpec]) -> None:
        for spec in tasks:
            status = read_status(spec.task_dir)
            if status is not None:
                write_status(spec.task_dir, {k: v for k, v in status.items() if k != "source_data"})
        super().launch(tasks)


class NoAttachSource(ExampleSource):
    """Cannot follow tasks another controller launched."""

    attach = ComputeSource.attach


class CancelDoesNothingSource(ExampleSource):
    """``cancel`` returns without stopping anything."""

    def cancel(self, task_ids: Iterable[str], reason: TaskState = TaskState.CANCELLED) -> None:
        return None


class SilentPollSource(ExampleSource):
    """``poll`` never reports anything."""

    def poll(self) -> list[TaskUpdate]:
        super().poll()
        return []


class InterruptLeavesProcessesSource(ExampleSource):
    """``interrupt`` records every task interrupted, and leaves the processes running."""

    def interrupt(self) -> None:
        for task_id, task in list(self._tasks.items()):
            status = read_status(task.spec.task_dir) or {}
            write_status(task.spec.task_dir, {**status, "state": TaskState.INTERRUPTED.value})
            self._stopped.append(TaskUpdate(task_id, TaskState.INTERRUPTED))
            del self._tasks[task_id]


class FalseDetachSource(ExampleSource):
    """Says its tasks outlive the controller, but ``close`` kills them (as a source whose tasks
    hang on the controller's SSH connection would)."""

    def close(self) -> None:
        for task in self._tasks.values():
            leader = task.leader()
            pid = task.runner_pid()
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if leader:
                try:
                    os.killpg(leader, signal.SIGKILL)
                except ProcessLookupError:
                    pass


# -- expanders -------------------------------------------------------------------------------------
class RangesExpander(Expander):
    """``ranges: {param: [start, stop]}``: every combination of ``range(start, stop)`` values."""

    def validate(self, section: Any, where: str) -> None:
        if not isinstance(section, Mapping) or not section:
            raise ConfigError("'ranges' must map parameters to [start, stop]", key=where)
        for name, bounds in section.items():
            if not (isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, int) for b in bounds)):
                raise ConfigError(f"{name}: give [start, stop], two integers", key=where)
            if bounds[0] >= bounds[1]:
                raise ConfigError(f"{name}: start must be below stop", key=where)

    def count(self, section: Any) -> int:
        total = 1
        for start, stop in section.values():
            total *= stop - start
        return total

    def expand(self, section: Any) -> Iterator[dict[str, Any]]:
        names = list(section)
        for combo in itertools.product(*(range(*section[n]) for n in names)):
            yield dict(zip(names, combo))


class SetOrderExpander(RangesExpander):
    """Yields its sets in the order of a Python set of strings: another process (another hash
    seed) gives another order, so tasks get other indices on ``hsm complete``."""

    def expand(self, section: Any) -> Iterator[dict[str, Any]]:
        sets = {repr(sorted(p.items())) for p in super().expand(section)}
        for text in sets:
            yield dict(eval(text))  # noqa: S307 - our own repr of ints and names


class MiscountingExpander(RangesExpander):
    """``count`` forgets the last parameter."""

    def count(self, section: Any) -> int:
        return super().count(dict(list(section.items())[:-1]))


class ExpandingCountExpander(RangesExpander):
    """``count`` expands everything (``--count-only`` of 10**9 sets never ends)."""

    def count(self, section: Any) -> int:
        if super().count(section) > 10**6:
            return len(list(range(10**7))) * 100  # allocates as an expansion would, then gives up
        return sum(1 for _ in self.expand(section))


RECORDS = {
    "ranges": RangesExpander,
    "setorder": SetOrderExpander,
    "miscounting": MiscountingExpander,
    "expandingcount": ExpandingCountExpander,
}


@hookimpl
def hsm_register_expanders() -> list[ExpanderRecord]:
    return [ExpanderRecord(name, f"test expander ({cls.__doc__.splitlines()[0]})",
                           f"{__name__}:{cls.__name__}", section=name,
                           config_schema={"type": "object"})
            for name, cls in RECORDS.items()]
