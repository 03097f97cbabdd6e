"""The data diff of one product between two Delta versions of its port, computed in DuckDB.

Rows are matched by the product's key (the contract's `Config.unique`, else its unique column):
added = keys only after, removed = keys only before, changed = keys in both whose other values
differ (NULL-safe). Without a usable key (none declared, a key column missing on one side, or
duplicated keys) rows are compared as a multiset of row hashes: added and removed, changed 0.
Per column: null share, distinct count, min/max/mean for numbers, min/max for dates and times,
the top values for text; only columns whose stats changed are kept. Stats and row comparisons use
the columns both versions have; the schema change says what was added, removed or retyped.

Both versions are read as pyarrow datasets (every data file's checksum verified first, streaming)
and scanned by one in-memory DuckDB connection per diff with a memory limit and a spill folder:
nothing is loaded whole. Column names come from data, so they never reach SQL text: each side is
a view whose columns DuckDB renames by position (`c0`, `c1`, ...).
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Sequence

import pyarrow as pa

from mesh_core.declare.contract import contract_key
from mesh_core.errors import IntegrityError, StorageError, VersionNotFoundError
from mesh_core.storage.port import data_file_checksum

__all__ = ["ColumnChange", "ColumnStats", "PortSide", "ProductDiff", "SchemaChange", "contract_key", "diff_versions"]

SAMPLES = 5  # sample keys (or rows) kept of each of added / removed / changed
TOP_VALUES = 5
MEMORY_LIMIT = "1GB"  # DuckDB spills past it (joins, aggregates) instead of growing
_REL_TOL = 1e-9  # float noise: a mean summed in another order is the same mean
_TEXT_CUT = 80  # sample and top values longer than this are cut (a report, not an export)
_HASH_CHUNK = 8 << 20


@dataclass(frozen=True)
class PortSide:
    """One published version of a port: its Delta table URI and version."""

    uri: str
    version: int


@dataclass(frozen=True)
class SchemaChange:
    added: tuple[tuple[str, str], ...] = ()  # (column, type)
    removed: tuple[tuple[str, str], ...] = ()
    retyped: tuple[tuple[str, str, str], ...] = ()  # (column, type before, type after)

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.retyped)

    def as_dict(self) -> dict:
        return {"added": [{"column": n, "type": t} for n, t in self.added],
                "removed": [{"column": n, "type": t} for n, t in self.removed],
                "retyped": [{"column": n, "before": b, "after": a} for n, b, a in self.retyped]}


@dataclass(frozen=True)
class ColumnStats:
    """One column's profile in one version. `min`/`max` for numbers, dates and times; `mean` for
    numbers; `top` (value, count) for text and booleans, most frequent first, NULL left out."""

    null_share: float
    distinct: int
    min: Any = None
    max: Any = None
    mean: float | None = None
    top: tuple[tuple[Any, int], ...] = ()

    def as_dict(self) -> dict:
        return {"null_share": self.null_share, "distinct": self.distinct, "min": self.min, "max": self.max,
                "mean": self.mean, "top": [{"value": v, "count": n} for v, n in self.top]}


@dataclass(frozen=True)
class ColumnChange:
    """A column present in both versions whose stats (or, by key, values) changed."""

    name: str
    before: ColumnStats
    after: ColumnStats
    changed_values: int | None = None  # rows (matched by key) whose value in this column differs; None: no key

    @property
    def changes(self) -> tuple[str, ...]:
        """Which stats differ, beyond float noise: 'values', 'null_share', 'distinct', 'min', 'max', 'mean', 'top'."""
        b, a = self.before, self.after
        found = ["values"] if self.changed_values else []
        found += [name for name in ("null_share", "distinct", "min", "max", "mean")
                  if not _same(getattr(b, name), getattr(a, name))]
        if b.top != a.top:
            found.append("top")
        return tuple(found)

    @property
    def magnitude(self) -> float:
        """How big the change is, 0..1, to show the biggest first."""
        b, a = self.before, self.after
        parts = [abs(a.null_share - b.null_share), _relative(b.distinct, a.distinct)]
        if b.mean is not None and a.mean is not None:
            parts.append(_relative(b.mean, a.mean))
        if b.top != a.top:
            before, after = dict(b.top), dict(a.top)
            parts.append(len(set(before) ^ set(after)) / max(len(before) + len(after), 1) or 0.01)
        if self.changed_values:
            parts.append(1.0)  # rows whose value changed outrank any drift in the stats
        if any(name in self.changes for name in ("min", "max")):
            parts.append(0.05)
        return min(max(parts), 1.0)

    def as_dict(self) -> dict:
        return {"column": self.name, "changes": list(self.changes), "changed_values": self.changed_values,
                "before": self.before.as_dict(), "after": self.after.as_dict()}


@dataclass(frozen=True)
class ProductDiff:
    """What changed between two versions of a product's data. `before` None: a new product."""

    rows_before: int
    rows_after: int
    added: int
    removed: int
    changed: int
    key: tuple[str, ...] | None  # the key rows were matched by; None: a row-hash multiset diff
    schema: SchemaChange = field(default_factory=SchemaChange)
    columns: tuple[ColumnChange, ...] = ()  # biggest first
    sample_added: tuple[dict, ...] = ()  # key values (or, without a key, whole rows), at most SAMPLES
    sample_removed: tuple[dict, ...] = ()
    sample_changed: tuple[dict, ...] = ()
    note: str = ""  # why the diff fell back to row hashes, if it did

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.columns) and self.schema.is_empty

    def as_dict(self) -> dict:
        return {"rows_before": self.rows_before, "rows_after": self.rows_after, "added": self.added,
                "removed": self.removed, "changed": self.changed, "key": list(self.key) if self.key else None,
                "schema": self.schema.as_dict(), "columns": [c.as_dict() for c in self.columns],
                "samples": {"added": list(self.sample_added), "removed": list(self.sample_removed),
                            "changed": list(self.sample_changed)},
                "note": self.note, "is_empty": self.is_empty}


def diff_versions(before: PortSide | None, after: PortSide, *, key: Sequence[str] | None,
                  memory_limit: str = MEMORY_LIMIT) -> ProductDiff:
    """Diff two versions of a port (`before` None: the product was never published, every row is added)."""
    import duckdb

    datasets = {"after": _dataset(after)}
    if before is not None:
        datasets["before"] = _dataset(before)
    with tempfile.TemporaryDirectory(prefix="mesh-diff-") as spill:
        con = duckdb.connect(":memory:", config={"memory_limit": memory_limit, "temp_directory": spill})
        try:
            for name, dataset in datasets.items():
                con.register(f"{name}_src", dataset)
                aliases = ", ".join(f"c{i}" for i in range(len(dataset.schema)))
                side = "a" if name == "after" else "b"
                con.execute(f"CREATE VIEW {side} AS SELECT * FROM {name}_src AS s({aliases})")
            if before is None:
                return _new_product(con, datasets["after"].schema, key)
            return _Diff(con, datasets["before"].schema, datasets["after"].schema, key).run()
        finally:
            con.close()


# -- the two sides ---------------------------------------------------------------------


def _dataset(side: PortSide):
    """The version's data files as a pyarrow dataset, each file's SHA-256 (in its name) checked first."""
    from deltalake import DeltaTable

    try:
        dataset = DeltaTable(side.uri, version=side.version).to_pyarrow_dataset()
    except Exception as exc:
        text = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        if "version" in text.lower() or "not a delta table" in text.lower() or "no files in log" in text.lower():
            raise VersionNotFoundError(f"Cannot diff version {side.version} of the port at {side.uri}: {text}. "
                                       "`mesh history PRODUCT` lists the versions it has.") from None
        raise StorageError(f"Cannot read version {side.version} of the port at {side.uri}: {text}") from None
    for path in dataset.files:
        _verify(dataset.filesystem, path, side)
    return dataset


def _verify(fs, path: str, side: PortSide) -> None:
    name = path.rsplit("/", 1)[-1]
    expected = data_file_checksum(name)
    if expected is None:
        raise IntegrityError(f"Version {side.version} of {side.uri} references {name}, which has no checksum in its "
                             "name: it was not written by Mesh. Republish the product with Mesh.")
    digest = hashlib.sha256()
    try:
        with fs.open_input_stream(path) as stream:
            while chunk := stream.read(_HASH_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        raise VersionNotFoundError(f"Version {side.version} of {side.uri} is no longer stored: its file {name} is "
                                   "missing (removed by retention, or outside Mesh).") from None
    if digest.hexdigest() != expected:
        raise IntegrityError(f"Data file {name} of version {side.version} at {side.uri} is corrupt: its SHA-256 does "
                             "not match the checksum in its name. Nothing was diffed.")


# -- the diff ----------------------------------------------------------------------------


def _new_product(con, schema: pa.Schema, key: Sequence[str] | None) -> ProductDiff:
    rows = con.execute("SELECT count(*) FROM a").fetchone()[0]
    names = list(schema.names)
    used = tuple(key) if key and all(k in names for k in key) else None
    shown = [names.index(k) for k in used] if used else list(range(min(len(names), 8)))
    order = ", ".join(f"c{i}" for i in shown)
    sample = con.execute(f"SELECT {order} FROM a ORDER BY {order} LIMIT {SAMPLES}").fetchall() if shown else []
    return ProductDiff(
        rows_before=0, rows_after=rows, added=rows, removed=0, changed=0, key=used,
        schema=SchemaChange(added=tuple((f.name, str(f.type)) for f in schema)),
        sample_added=tuple(_row([names[i] for i in shown], values) for values in sample),
    )


class _Diff:
    def __init__(self, con, before: pa.Schema, after: pa.Schema, key: Sequence[str] | None):
        self.con = con
        self.before, self.after = before, after
        b_names, a_names = list(before.names), list(after.names)
        self.common = [name for name in a_names if name in b_names]
        # per common column: (alias before, alias after, comparable expression before, after)
        self.columns: dict[str, tuple[str, str, str, str]] = {}
        for name in self.common:
            bi, ai = b_names.index(name), a_names.index(name)
            b_type, a_type = before.field(bi).type, after.field(ai).type
            cast = "" if b_type == a_type else ("DOUBLE" if _is_number(b_type) and _is_number(a_type) else "VARCHAR")
            wrap = (lambda ref: f"CAST({ref} AS {cast})") if cast else (lambda ref: ref)
            self.columns[name] = (f"c{bi}", f"c{ai}", wrap(f"b.c{bi}"), wrap(f"a.c{ai}"))
        self.schema = SchemaChange(
            added=tuple((n, str(after.field(n).type)) for n in a_names if n not in b_names),
            removed=tuple((n, str(before.field(n).type)) for n in b_names if n not in a_names),
            retyped=tuple((n, str(before.field(n).type), str(after.field(n).type))
                          for n in self.common if before.field(n).type != after.field(n).type),
        )
        self.wanted = tuple(key) if key else None
        self.key: tuple[str, ...] | None = None
        self.note = ""

    def run(self) -> ProductDiff:
        rows_b, stats_b = self._stats("b")
        rows_a, stats_a = self._stats("a")
        self.key, self.note = self._usable_key(self.wanted, (rows_b, stats_b), (rows_a, stats_a))
        if self.key:
            added, removed, changed, per_column, samples = self._by_key()
        else:
            added, removed, samples = self._by_hash(rows_b, rows_a)
            changed, per_column = 0, {}
        columns = [ColumnChange(name, stats_b[name], stats_a[name], per_column.get(name)) for name in self.common]
        columns = sorted((c for c in columns if c.changes), key=lambda c: -c.magnitude)
        return ProductDiff(rows_b, rows_a, added, removed, changed, self.key, self.schema, tuple(columns),
                           *samples, note=self.note)

    def _usable_key(self, key, *sides) -> tuple[tuple[str, ...] | None, str]:
        """The key if both versions have its columns and it is unique in both, else None and why."""
        if not key:
            return None, ""
        missing = [k for k in key if k not in self.columns]
        if missing:
            return None, f"key column(s) {', '.join(map(repr, missing))} not in both versions: rows compared by hash"
        duplicated = []
        for where, (view, (rows, stats)) in zip(("before", "after"), zip("ba", sides)):
            if len(key) == 1:  # the column's stats already say: distinct values, and NULL counts as one
                column = stats[key[0]]
                unique = column.distinct + (column.null_share > 0) == rows
            else:
                groups = ", ".join(self.columns[k][0 if view == "b" else 1] for k in key)
                unique = not self.con.execute(
                    f"SELECT count(*) FROM (SELECT 1 FROM {view} GROUP BY {groups} HAVING count(*) > 1)").fetchone()[0]
            if not unique:
                duplicated.append(where)
        if duplicated:
            return None, f"key ({', '.join(key)}) is not unique {' and '.join(duplicated)}: rows compared by hash"
        return key, ""

    # rows by key: one full join, the rows that differ kept (spilled past the memory limit)

    def _by_key(self):
        key = self.key
        on = " AND ".join(f"{self.columns[k][2]} IS NOT DISTINCT FROM {self.columns[k][3]}" for k in key)
        keys = ", ".join(f"CASE WHEN a.m IS NULL THEN b.{self.columns[k][0]} ELSE a.{self.columns[k][1]} END AS k{i}"
                         for i, k in enumerate(key))
        values = [name for name in self.common if name not in key]
        differs = [self._differs(name) for name in values]
        flags = "".join(f", {d} AS d{i}" for i, d in enumerate(differs))
        self.con.execute(
            f"CREATE TEMP TABLE row_diff AS SELECT "
            f"CASE WHEN b.m IS NULL THEN 'added' WHEN a.m IS NULL THEN 'removed' ELSE 'changed' END AS kind, {keys}{flags} "
            f"FROM (SELECT *, TRUE AS m FROM b) AS b FULL JOIN (SELECT *, TRUE AS m FROM a) AS a ON {on} "
            f"WHERE b.m IS NULL OR a.m IS NULL OR {' OR '.join(differs) or 'FALSE'}")
        sums = "".join(f", count_if(d{i})" for i in range(len(differs)))
        counts = {row[0]: row[1:] for row in self.con.execute(f"SELECT kind, count(*){sums} FROM row_diff GROUP BY kind").fetchall()}
        total = {kind: (counts[kind][0] if kind in counts else 0) for kind in ("added", "removed", "changed")}
        per_column = {name: int(n or 0) for name, n in zip(values, counts.get("changed", (0,) + (0,) * len(values))[1:])}
        order = ", ".join(f"k{i}" for i in range(len(key)))
        samples = tuple(
            tuple(_row(key, row) for row in self.con.execute(
                f"SELECT {order} FROM row_diff WHERE kind = ? ORDER BY {order} LIMIT {SAMPLES}", [kind]).fetchall())
            for kind in ("added", "removed", "changed"))
        return total["added"], total["removed"], total["changed"], per_column, samples

    def _differs(self, name: str) -> str:
        """SQL: the column's value differs between the matched rows (NULL-safe; floats beyond noise)."""
        _, _, before, after = self.columns[name]
        if not (pa.types.is_floating(self.before.field(name).type) or pa.types.is_floating(self.after.field(name).type)):
            return f"({before} IS DISTINCT FROM {after})"
        close = f"abs({before} - {after}) <= {_REL_TOL} * greatest(abs({before}), abs({after}))"
        return f"({before} IS DISTINCT FROM {after} AND NOT coalesce({close}, FALSE))"

    # rows by hash (a multiset: a row twice after and once before is one row added)

    def _by_hash(self, rows_b: int, rows_a: int):
        if not self.common:  # nothing in common: every row is new
            return rows_a, rows_b, ((), (), ())
        hash_b = "hash(" + ", ".join(self.columns[n][2] for n in self.common) + ")"
        hash_a = "hash(" + ", ".join(self.columns[n][3] for n in self.common) + ")"
        self.con.execute(
            f"CREATE TEMP TABLE hash_diff AS "
            f"WITH hb AS (SELECT {hash_b} AS h, count(*) AS n FROM b GROUP BY ALL), "
            f"ha AS (SELECT {hash_a} AS h, count(*) AS n FROM a GROUP BY ALL) "
            f"SELECT coalesce(ha.h, hb.h) AS h, coalesce(ha.n, 0) - coalesce(hb.n, 0) AS delta "
            f"FROM ha FULL JOIN hb ON ha.h = hb.h WHERE ha.n IS DISTINCT FROM hb.n")
        added, removed = self.con.execute(
            "SELECT coalesce(sum(greatest(delta, 0)), 0), coalesce(sum(greatest(-delta, 0)), 0) FROM hash_diff").fetchone()
        shown = self.common[:8]
        samples = []
        for side, digest, sign in (("a", hash_a, ">"), ("b", hash_b, "<")):
            values = ", ".join(self.columns[n][2 if side == "b" else 3] for n in shown)
            rows = self.con.execute(  # the rows of the first few differing hashes: a semi join on a handful
                f"SELECT {values} FROM {side} WHERE {digest} IN "
                f"(SELECT h FROM hash_diff WHERE delta {sign} 0 ORDER BY h LIMIT {SAMPLES}) "
                f"ORDER BY {digest}, {values} LIMIT {SAMPLES}").fetchall()
            samples.append(tuple(_row(shown, row) for row in rows))
        return int(added), int(removed), (samples[0], samples[1], ())

    # column stats

    def _stats(self, side: str) -> tuple[int, dict[str, ColumnStats]]:
        """The side's row count and the profile of each common column, in one scan (text's top values aside)."""
        schema = self.before if side == "b" else self.after
        alias = {name: self.columns[name][0 if side == "b" else 1] for name in self.common}
        parts, layout = ["count(*)"], []
        for name in self.common:
            kind = schema.field(name).type
            col = alias[name]
            fields = [f"count_if({col} IS NULL)", f"count(DISTINCT {col})"]
            if _is_number(kind):
                fields += [f"min({col})", f"max({col})", f"avg(CAST({col} AS DOUBLE))"]
            elif _is_temporal(kind):
                fields += [f"min({col})", f"max({col})"]
            parts += fields
            layout.append((name, len(fields)))
        found = self.con.execute(f"SELECT {', '.join(parts)} FROM {side}").fetchone()
        rows, stats, at = int(found[0]), {}, 1
        for name, width in layout:
            nulls, distinct, low, high, mean = list(found[at:at + width]) + [None] * (5 - width)
            at += width
            top = self._top(side, alias[name]) if _is_text(schema.field(name).type) else ()
            stats[name] = ColumnStats(null_share=(nulls / rows) if rows else 0.0, distinct=int(distinct or 0),
                                      min=_plain(low), max=_plain(high), mean=_plain(mean), top=top)
        return rows, stats

    def _top(self, side: str, alias: str) -> tuple[tuple[Any, int], ...]:
        rows = self.con.execute(
            f"SELECT {alias}, count(*) AS n FROM {side} WHERE {alias} IS NOT NULL "
            f"GROUP BY {alias} ORDER BY n DESC, {alias} LIMIT {TOP_VALUES}").fetchall()
        return tuple((_plain(value), int(n)) for value, n in rows)


# -- helpers -----------------------------------------------------------------------------


def _is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)


def _is_temporal(kind: pa.DataType) -> bool:
    return pa.types.is_temporal(kind) and not pa.types.is_duration(kind)


def _is_text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_boolean(kind)


def _plain(value: Any) -> Any:
    """A value as JSON holds it: numbers, text, booleans and None as they are; the rest as text."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, str):
        return value if len(value) <= _TEXT_CUT else value[:_TEXT_CUT - 1] + "…"
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return _plain(str(value))


def _row(names: Sequence[str], values: Sequence[Any]) -> dict:
    return {name: _plain(value) for name, value in zip(names, values)}


def _same(before: Any, after: Any) -> bool:
    if isinstance(before, float) and isinstance(after, float):
        return math.isclose(before, after, rel_tol=_REL_TOL, abs_tol=1e-12)
    if isinstance(before, (int, float)) and isinstance(after, (int, float)) and not isinstance(before, bool):
        return math.isclose(before, after, rel_tol=_REL_TOL, abs_tol=1e-12)
    return before == after


def _relative(before: float, after: float) -> float:
    if _same(before, after):
        return 0.0
    return min(abs(after - before) / max(abs(before), abs(after), 1e-12), 1.0)
