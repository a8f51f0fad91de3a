"""``hsm export`` built a column at a time: the same bytes as
:func:`hsm_core.monitor.export.to_csv` (and ``to_json``) of
:func:`~hsm_core.monitor.export.build_table`, in a fraction of the time at 100,000 tasks (issue 19).

The table of :mod:`hsm_core.monitor.export` is a dict per row and a formatting call per cell
(1,000,000 calls for 100,000 tasks of 10 columns). Here each column is one list, and a column whose
values are all of one plain type (all text, all whole numbers, all floats, whole numbers or
nothing) is turned into text by one ``map``; any other column goes cell by cell through the same
``_csv_cell`` as before, so every value prints exactly as it did. Rows are joined by ``","`` (csv
itself quotes the few cells that need it), and ``--sort``/``--desc``/``--top`` reorder the columns
by the one column sorted by.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from itertools import chain, compress, repeat
from operator import attrgetter, eq, itemgetter, methodcaller, not_
from typing import Any, Iterable, Mapping

from hsm_core.indexed_metrics import known as known_metrics
from hsm_core.monitor.export import FIXED_TAIL, _csv_cell, column_names, _json_safe, _metrics_of
from hsm_core.state import SweepDir, TaskRecord

_NONE = type(None)


def _cells(column: list[Any]) -> list[str]:
    """``column`` as CSV cells, exactly as ``_csv_cell`` writes each value."""
    kinds = set(map(type, column))
    if kinds <= {str}:
        return column
    few = _by_distinct_value(column, kinds, _csv_cell)
    if few is not None:
        return few
    if kinds <= {int}:
        return list(map(str, column))
    if kinds <= {float}:
        return list(map(repr, column))
    if kinds <= {int, _NONE}:
        return ["" if v is None else str(v) for v in column]
    if kinds <= {str, _NONE}:
        return ["" if v is None else v for v in column]
    if kinds <= {float, _NONE}:
        return ["" if v is None else repr(v) for v in column]
    if kinds <= {float, int, _NONE}:
        return ["" if v is None else repr(v) if type(v) is float else str(v) for v in column]
    return [_csv_cell(v) for v in column]


def _by_distinct_value(column: list[Any], kinds: set[type], text: Any) -> list[str] | None:
    """``column`` as ``text`` gives each value, each distinct value turned into text once and the
    cells looked up (in C) when the column holds few of them (a grid's parameters, durations in
    whole seconds, exit codes); None otherwise. Only for one plain type, with or without None:
    1, 1.0 and True are one dict key, and so are 0.0 and -0.0."""
    if len(column) < 64 or len(kinds - {_NONE}) != 1 or not kinds <= _SCALARS or bool in kinds:
        return None
    distinct = set(column)
    if len(distinct) * 4 > len(column) or (float in kinds and 0.0 in distinct):
        return None
    memo = dict(zip(distinct, map(text, distinct)))
    return list(map(memo.__getitem__, column))


@dataclass
class Columns:
    """The export of a sweep a column at a time: column names and one list of values per column
    (rows by task index, or as :func:`ordered` left them)."""

    names: list[str]
    values: list[list[Any]]
    param_columns: dict[str, str]  #: parameter name -> its column
    metric_columns: dict[str, str]  #: metric name -> its column


def export_columns(sweep: SweepDir, records: Iterable[TaskRecord],
                   links: Mapping[str, Mapping[str, Any]] | None = None, fresh: Any = None) -> Columns:
    """The export's columns, rows by task index: the same names and values as
    :func:`~hsm_core.monitor.export.build_table` (with ``add_link_columns``) gives. ``fresh``: a
    :class:`hsm_core.metrics_freshness.Check` started earlier (else one is made here)."""
    recs = sorted(records, key=attrgetter("index"))
    # Each column is one C-level map over the records (a comprehension per column was a Python
    # step per task: 0.1 s of a 100,000-task export).
    ids = list(map(attrgetter("task_id"), recs))
    states = list(map(attrgetter("state"), recs))
    params_of = list(map(attrgetter("params"), recs))
    found = _found_metrics(sweep, recs, ids, states, fresh)
    # Names in the order they first appear (as _ordered_union, in C).
    params = list(dict.fromkeys(chain.from_iterable(params_of)))
    metric_names = list(dict.fromkeys(chain.from_iterable(found)))
    # Column names as build_table gives them (a clash gets a param./metric. prefix).
    param_columns, metric_columns = column_names(params, metric_names)
    names: list[str] = ["task", "id"]
    if any(map(attrgetter("extra"), recs)):  # r.name: a dir name of its own is in extra
        dirs = [r.name for r in recs]
    else:
        dirs = list(map("task_{:03d}".format, map(attrgetter("index"), recs)))
    columns: list[list[Any]] = [dirs, ids]
    for p, col in param_columns.items():
        names.append(col)
        columns.append(list(map(methodcaller("get", p), params_of)))
    names += FIXED_TAIL
    columns += [states, list(map(attrgetter("source"), recs)), list(map(attrgetter("duration"), recs)),
                list(map(attrgetter("exit_code"), recs))]
    if links:
        from hsm_core.monitor.scheduler_link import link_columns

        link_names = link_columns(links)
        taken_now = set(names) | set(metric_columns.values())
        for key in link_names:
            names.append(key if key not in taken_now else f"scheduler.{key}")
            columns.append([(links.get(i) or {}).get(key) for i in ids])
    for m, col in metric_columns.items():
        names.append(col)
        columns.append(list(map(methodcaller("get", m), found)))
    return Columns(names, columns, param_columns, metric_columns)


_MISS = (None, None)


def _found_metrics(sweep: SweepDir, recs: list[TaskRecord], ids: list[str], states: list[str],
                   fresh: Any = None) -> list[Any]:
    """Each task's metrics, as :func:`~hsm_core.monitor.export._metrics_of` gives them: what the
    sweep kept for the task's current attempt unless its file changed since, else its file; {} for
    a pending task. The kept ones are matched in C; only the others (no line kept, another
    attempt, file changed, pending) are visited."""
    from hsm_core.monitor.export import without_changed

    kept = without_changed(known_metrics(sweep.path), sweep, fresh)
    hits = list(map(kept.get, ids, repeat(_MISS)))
    found: list[Any] = list(map(itemgetter(1), hits))
    current = map(eq, map(itemgetter(0), hits), map(attrgetter("attempt"), recs))
    tasks_dir = str(sweep.tasks_dir)
    for i in compress(range(len(recs)), map(not_, current)):
        found[i] = {} if states[i] == "pending" else _metrics_of(recs[i], tasks_dir, kept)
    for i in compress(range(len(recs)), map("pending".__eq__, states)):
        found[i] = {}
    return found


def ordered(table: Columns, sweep: SweepDir, *, sort: str | None, desc: bool, top: int | None) -> Columns:
    """``table``'s rows as :func:`~hsm_core.monitor.best.order_table` orders a row table (``hsm
    export --sort/--desc/--top``): the order is worked out on the one column sorted by, then every
    column is taken in that order (no row dicts)."""
    if sort is None and top is None and not desc:
        return table  # (the ranking module is not even imported)
    from hsm_core.monitor.best import ranked_rows, sort_column

    column = sort_column(table.names, table.param_columns, table.metric_columns, sweep, sort=sort, desc=desc, top=top)
    if column is None:
        return table
    name, descending = column
    rows = ranked_rows(table.values[table.names.index(name)], descending, top)
    return Columns(table.names, [list(map(col.__getitem__, rows)) for col in table.values], table.param_columns,
                   table.metric_columns)


#: What makes csv quote a cell (its delimiter, quote, line ends): a column with none of these in
#: any cell is written by ``",".join`` of each row, exactly as csv writes it.
_CSV_SPECIAL = re.compile('[,"\r\n]')


def _csv_ready(cells: list[str]) -> list[str]:
    """``cells`` as they stand in a CSV row: a cell csv would quote is quoted by csv itself."""
    if _CSV_SPECIAL.search("".join(cells)) is None:
        return cells
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")

    def quoted(cell: str) -> str:
        if _CSV_SPECIAL.search(cell) is None:
            return cell
        buf.seek(0)
        buf.truncate()
        writer.writerow((cell,))  # (a one-cell row is quoted exactly as that cell in any row)
        return buf.getvalue()[:-1]

    return list(map(quoted, cells))


def csv_text(table: Columns) -> str:
    """``table`` as CSV text: byte for byte what :func:`~hsm_core.monitor.export.to_csv` writes
    (header row first; empty cell for a missing value)."""
    lines = [",".join(_csv_ready(table.names))]
    if table.values and table.values[0]:
        lines += map(",".join, zip(*[_csv_ready(_cells(c)) for c in table.values]))
    return "\n".join(lines) + "\n"


def csv_export(sweep: SweepDir, records: Iterable[TaskRecord],
               links: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The CSV export of ``records``, byte for byte what ``export_text(..., "csv", links=links)``
    gives."""
    return csv_text(export_columns(sweep, records, links))


_SCALARS = frozenset({str, int, float, bool, _NONE})


def _json_scalar(value: Any) -> str:
    """One plain value as json writes it (a non-finite float is null, as _json_safe makes it)."""
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        return float.__repr__(value) if math.isfinite(value) else "null"
    return "true" if value else "false"  # (bool)


def _json_values(column: list[Any]) -> list[str]:
    """``column`` as the text ``json.dumps(..., indent=1)`` gives each value inside a row (after
    :func:`~hsm_core.monitor.export._json_safe`): one C-level map for a column of plain values."""
    kinds = set(map(type, column))
    few = _by_distinct_value(column, kinds, _json_scalar)
    if few is not None:
        return few
    if kinds <= {str}:
        return list(map(encode_basestring_ascii, column))
    if kinds <= {int}:
        return list(map(int.__repr__, column))
    if kinds <= {float} and all(map(math.isfinite, column)):
        return list(map(float.__repr__, column))
    # A metric some tasks lack: one comprehension, not a call per value (filter(None, ...) drops the
    # Nones, and zeros, which are finite anyway).
    if kinds <= {float, _NONE} and all(map(math.isfinite, filter(None, column))):
        return ["null" if v is None else float.__repr__(v) for v in column]
    if kinds <= {int, _NONE}:
        return ["null" if v is None else int.__repr__(v) for v in column]
    if kinds <= _SCALARS:
        return list(map(_json_scalar, column))
    # Anything else as json itself writes it, nested lines indented to the row's depth.
    return [json.dumps(_json_safe(v), indent=1, default=str, allow_nan=False).replace("\n", "\n  ") for v in column]


def json_text(table: Columns) -> str:
    """``table`` as JSON, byte for byte what :func:`~hsm_core.monitor.export.to_json` writes
    (json's indented encoder is pure Python: here each row is one ``%`` of a template)."""
    if not table.values[0]:
        return "[]\n"
    keys = [encode_basestring_ascii(n).replace("%", "%%") for n in table.names]
    template = "{\n" + ",\n".join(f"  {k}: %s" for k in keys) + "\n }"
    rows = map(template.__mod__, zip(*[_json_values(c) for c in table.values]))
    return "[\n " + ",\n ".join(rows) + "\n]\n"


def json_export(sweep: SweepDir, records: Iterable[TaskRecord],
                links: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The JSON export of ``records``, byte for byte what ``export_text(..., "json", links=links)``
    gives."""
    return json_text(export_columns(sweep, records, links))
