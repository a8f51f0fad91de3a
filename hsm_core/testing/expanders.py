"""The expander contract: behaviour every sweep-section expander must show.

Task identity rests on it: a task's id is the hash of its parameter set, so an expander that
yields its sets in another order, or with other types (``1`` or ``1.0``), in another process
makes ``hsm complete`` run finished work again. Subclass it, name the expander and give example
sections (pytest collects the inherited tests; name your subclass ``Test...``)::

    from hsm_core.testing import ExpanderContract

    class TestRandomExpander(ExpanderContract):
        expander = "random"                      # the name it is registered under

        def valid_sections(self):
            return [{"lr": {"log_uniform": [1e-5, 1e-1]}, "samples": 8, "seed": 1}]

        def invalid_sections(self):               # (section, words of the expected error)
            return [({"samples": 0}, "samples")]

        def huge_section(self):                   # 10**9 sets or more, for --count-only
            return {"lr": {"uniform": [0, 1]}, "samples": 10**9, "seed": 1}

The expander must be installed (built in, or through its plugin's entry point): the checks run
the real ``hsm`` command and a second Python process, as users and a later ``hsm complete`` do.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any, Mapping

import pytest
import yaml

from hsm_core.plugin import Expander, ExpanderRecord
from hsm_core.testing.helpers import fresh_registry, skip_if_not_applicable

# Run in a second process with another hash seed: expands each section it reads on stdin.
_EXPAND_ELSEWHERE = r"""
import json, sys
from hsm_core.plugin import load_object
expander = load_object(sys.argv[1])()
sections = json.load(sys.stdin)
print(json.dumps([list(expander.expand(s)) for s in sections], sort_keys=False))
"""


def _canonical(params: Any) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


class ExpanderContract:
    """Tests every :class:`~hsm_core.plugin.Expander` must pass (see the module's docstring)."""

    #: The name the expander is registered under (``grid``, ``paired``, ...).
    expander: str = ""
    #: Bytes :meth:`Expander.count` may allocate to count :meth:`huge_section`.
    count_memory_limit: int = 1_000_000
    #: Checks (test names without ``test_``) that cannot apply to this expander, with the reason.
    not_applicable: Mapping[str, str] = {}

    # -- what a subclass provides -----------------------------------------------------------------
    def valid_sections(self) -> list[Any]:
        """Example sections (as in a sweep file), each with a few distinct parameter sets."""
        raise NotImplementedError

    def invalid_sections(self) -> list[tuple[Any, str]]:
        """Malformed sections, each with words its error message must contain."""
        raise NotImplementedError

    def huge_section(self) -> Any:
        """A section of 10**9 parameter sets or more (``--count-only`` must not expand it)."""
        return None

    # -- the harness --------------------------------------------------------------------------------
    @pytest.fixture(autouse=True)
    def _contract_check_applies(self, request: Any) -> None:
        skip_if_not_applicable(self, request)

    def _record(self) -> ExpanderRecord:
        assert self.expander, f"{type(self).__name__}.expander: name the expander under test"
        return fresh_registry(entry_points=True).get(ExpanderRecord.kind, self.expander)

    def _make(self) -> Expander:
        return self._record().load()()

    def _factory(self) -> str:
        factory = self._record().factory
        if isinstance(factory, str):
            return factory
        return f"{factory.__module__}:{factory.__qualname__}"

    def _section_key(self) -> str:
        record = self._record()
        return record.section or record.name

    def _hsm(self, tmp_path: Path, section: Any, *args: str) -> subprocess.CompletedProcess:
        """The real ``hsm run --config sweep.yaml ARGS`` on a sweep file holding ``section``.

        Two lines come before the section, so that a line number in an error can be told apart
        from "line 1"."""
        sweep = tmp_path / "sweep.yaml"
        body = yaml.safe_dump({self._section_key(): section}, sort_keys=False, default_flow_style=False)
        sweep.write_text("metadata:\n  description: expander contract\n" + body)
        return subprocess.run([sys.executable, "-m", "hsm_core", "run", "--config", str(sweep), *args],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)

    # -- the contract ---------------------------------------------------------------------------------
    def test_not_applicable_names_checks_of_the_contract(self) -> None:
        checks = {name[5:] for name in dir(ExpanderContract) if name.startswith("test_")}
        unknown = sorted(set(self.not_applicable) - checks)
        assert not unknown, f"not_applicable names no check of the contract: {unknown} (checks: {sorted(checks)})"

    def test_examples_are_valid(self) -> None:
        expander = self._make()
        sections = self.valid_sections()
        assert sections, "valid_sections() gives no example"
        for i, section in enumerate(sections):
            expander.validate(section, f"example {i}")

    def test_count_agrees_with_the_expansion(self) -> None:
        expander = self._make()
        for section in self.valid_sections():
            sets = list(expander.expand(section))
            assert sets, f"{section!r} expands to nothing"
            assert expander.count(section) == len(sets), f"count() says {expander.count(section)}, expand() yields {len(sets)}"

    def test_expansion_is_the_same_every_time_and_in_every_process(self) -> None:
        """The same section gives the same parameter sets, in the same order and with the same
        types, here, again, and in other processes (other hash seeds): task ids depend on it."""
        expander = self._make()
        sections = self.valid_sections()
        here = [[_canonical(p) for p in expander.expand(s)] for s in sections]
        again = [[_canonical(p) for p in self._make().expand(s)] for s in sections]
        assert here == again, "a second expansion in this process differs from the first"
        for seed in ("1", "2"):
            env = dict(os.environ, PYTHONHASHSEED=seed)
            env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
            proc = subprocess.run([sys.executable, "-c", _EXPAND_ELSEWHERE, self._factory()], input=json.dumps(sections),
                                  capture_output=True, text=True, env=env, timeout=120)
            assert proc.returncode == 0, proc.stderr
            there = [[_canonical(p) for p in sets] for sets in json.loads(proc.stdout)]
            assert there == here, f"another process (PYTHONHASHSEED={seed}) expands the examples differently"

    def test_task_ids_are_distinct(self) -> None:
        """Two different tasks of one section never share an id (their parameter sets differ)."""
        from hsm_core.sweep import default_task_id

        expander = self._make()
        for section in self.valid_sections():
            ids = [default_task_id(p) for p in expander.expand(section)]
            assert len(set(ids)) == len(ids), f"{section!r} yields the same parameter set twice"

    def test_describe_names_the_parameters(self) -> None:
        """An expander with ``describe(section)`` (the ``--dry-run`` rows, also how core finds a
        parameter set by two sections) names exactly the parameters its sets hold; rows whose
        name is in parentheses are notes."""
        expander = self._make()
        describe = getattr(expander, "describe", None)
        if describe is None or all(describe(section) is None for section in self.valid_sections()):
            pytest.skip("the expander has no describe(); --dry-run shows one row for its section")
        for section in self.valid_sections():
            rows = describe(section)
            assert rows is not None, f"describe() describes some examples but not {section!r}"
            named = [str(row[0]) for row in rows if not str(row[0]).startswith("(")]
            held = sorted({key for params in expander.expand(section) for key in params})
            assert sorted(named) == held, f"describe() names {sorted(named)}, the sets hold {held}"
            assert all(isinstance(row[1], str) for row in describe(section))

    def test_bad_input_is_one_line_with_file_and_line(self, tmp_path: Path) -> None:
        """``hsm run`` on a sweep file with a malformed section: exit 2, one line naming the file
        and a line of the section, with the expected words; no traceback."""
        bad = self.invalid_sections()
        assert bad, "invalid_sections() gives no example"
        for i, (section, words) in enumerate(bad):
            case = tmp_path / f"bad{i}"
            case.mkdir()
            proc = self._hsm(case, section, "--dry-run")
            err = proc.stderr.strip()
            assert proc.returncode == 2, f"{section!r}: exit {proc.returncode}, expected 2\n{proc.stdout}{proc.stderr}"
            assert "Traceback" not in err, f"{section!r}: a traceback instead of an error:\n{err}"
            lines = [ln for ln in err.splitlines() if ln.startswith("Error:")]
            assert len(lines) == 1, f"{section!r}: expected one 'Error:' line, got:\n{err}"
            found = re.search(r"sweep\.yaml:(\d+)", lines[0])
            assert found and int(found.group(1)) >= 3, f"{section!r}: the error names no line of the section (sweep.yaml:N, N >= 3): {lines[0]}"
            assert words.lower() in lines[0].lower(), f"{section!r}: the error does not say {words!r}: {lines[0]}"

    def test_count_needs_no_memory(self, tmp_path: Path) -> None:
        """``--count-only`` of 10**9 parameter sets: ``count()`` allocates next to nothing, and the
        real ``hsm run --count-only`` prints the number."""
        section = self.huge_section()
        assert section is not None, ("huge_section() gives no section of 10**9 sets; an expander that cannot count "
                                     "without expanding names this check in not_applicable, with the reason")
        expander = self._make()
        tracemalloc.start()
        try:
            total = expander.count(section)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert total >= 10**9, f"huge_section() counts {total} sets, not 10**9 or more"
        assert peak <= self.count_memory_limit, f"count() allocated {peak:,} bytes for {total:,} sets"
        proc = self._hsm(tmp_path, section, "--count-only")
        assert proc.returncode == 0, proc.stderr
        assert str(total) in proc.stdout.replace(",", ""), proc.stdout


__all__ = ["ExpanderContract"]
