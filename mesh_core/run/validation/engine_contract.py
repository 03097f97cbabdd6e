"""A product's Pandera contract, run where its data is: Arrow types for a stream, Pandera's polars
backend for a lazy frame.

Users keep writing one pandas `DataFrameModel` per product. For a product that returns Polars, SQL
or Arrow, Mesh casts its stream to the contract's Arrow types without changing a value (`conform`)
and, once the stream is staged as Parquet, runs the same contract on a `LazyFrame` over the files
with Pandera's polars backend, data-level checks on (`run_contract_polars`). The outcome reads as
`run_contract`'s does: same check name, same problems, same metadata. What of a contract the polars
backend cannot run is said at load (`engine_problems`), never skipped silently.

Memory: nothing here collects the frame. Pandera's polars backend collects what it checks, so it
gets one slice of rows at a time (`CHUNK_BYTES`; a slice of a Parquet scan reads only its row
groups, a slice of any other plan re-runs it: give a scan). Uniqueness is Mesh's, a DuckDB
group-by that spills under `MESH_ENGINE_MEMORY_LIMIT`, since Pandera's collects every column of
the frame for a multi-column key.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import dagster as dg
import pandas as pd

from mesh_core.declare.expectation import Severity
from mesh_core.declare.names import quote_column
from mesh_core.errors import ContractConversionError
from mesh_core.run.validation.contract import CHECK_NAME
from mesh_core.run.validation.failures import (
    FailureGroup,
    describe_failures,
    too_few_rows,
    unconvertible,
    value_set_checks,
)
from mesh_core.run.validation.outcome import MAX_FAILURE_ROWS, CheckOutcome, failure_table, shown_value

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

CHUNK_BYTES = 64 * 2**20  # a chunk of rows Pandera checks at once, as collected: bounds the audit's memory
_SAMPLE_ROWS = 4096  # rows read to size the chunks
_MIN_CHUNK_ROWS = 10_000
_WHOLE_COLUMN = {"unique_values_eq"}  # built-in checks of a column as a whole: never run per chunk
_ROW = "__mesh_row"  # a row's position, beside columns a contract may name anything
_CHECK_OUTPUT = "check_output"  # pandera.constants.CHECK_OUTPUT_KEY: the boolean a polars check returns per row
_FIX = "express it as a built-in Field check (ge, le, isin, str_length, ...), as an Expectation in the product's suite, or keep the product in pandas"


def engine_problems(contract) -> list[str]:
    """What of `contract` Pandera's polars backend cannot run, each naming the column or check and
    the fix. Reads the declaration only (no data): cheap enough for a code location's load."""
    from pandera.backends.polars import builtin_checks

    schema = contract.to_schema()
    name = contract.__name__
    problems = []
    if schema.parsers:
        problems.append(f"{name}: dataframe parser(s) {[str(p) for p in schema.parsers]} run on pandas only; "
                        "do the transformation in the product, or keep the product in pandas")
    if schema.index is not None:
        problems.append(f"{name}: declares an index, which Polars, DuckDB and Arrow do not have; "
                        "make it a column, or keep the product in pandas")
    for check in schema.checks:
        if not _is_builtin(check, builtin_checks):
            problems.append(f"{name}: dataframe check '{check.name}' is written for pandas; {_FIX}")
    for column_name, column in schema.columns.items():
        where = f"{name}.{column_name}"
        if column.regex:
            problems.append(f"{where}: a regex column (matched by pattern) cannot be cast or checked in an engine; "
                            "name each column, or keep the product in pandas")
        if column.parsers:
            problems.append(f"{where}: parser(s) run on pandas only; do the transformation in the product, "
                            "or keep the product in pandas")
        if arrow_type(column.dtype) is None:
            problems.append(f"{where}: type {column.dtype} has no Arrow/Polars equivalent; declare str, int, "
                            "float, bool, a pandas nullable integer or a timestamp, or keep the product in pandas")
        for check in column.checks:
            if not _is_builtin(check, builtin_checks):
                problems.append(f"{where}: check '{check.name}' is written for pandas; {_FIX}")
    return problems


def arrow_schema(contract) -> "pa.Schema":
    """The contract's columns as Arrow types, in contract order: what a stream is cast to."""
    import pyarrow as pa

    fields = []
    for name, column in contract.to_schema().columns.items():
        kind = arrow_type(column.dtype)
        if kind is None:
            raise ValueError(f"{contract.__name__}.{name}: type {column.dtype} has no Arrow equivalent "
                             "(engine_problems says so at load)")
        fields.append(pa.field(name, kind, nullable=bool(column.nullable)))
    return pa.schema(fields)


def conform(reader: "pa.RecordBatchReader", contract, ref) -> "pa.RecordBatchReader":
    """`reader`, lazily cast batch by batch to the contract's Arrow types, columns in contract order.
    A cast never changes a value: a value that does not convert, or would change (39.81 to an
    integer, a time zone dropped), raises ContractConversionError naming the column. Columns the
    contract does not know are kept for the contract to report (strict=True), or dropped
    (strict="filter"); a missing column is left for the contract to report too."""
    import pyarrow as pa

    schema = contract.to_schema()
    target = arrow_schema(contract)
    names = reader.schema.names
    fields = [target.field(n) for n in target.names if n in names]
    extras = [] if schema.strict == "filter" else [reader.schema.field(n) for n in names if n not in target.names]
    casts = {f.name: f.type for f in fields
             if (schema.coerce or schema.columns[f.name].coerce) and reader.schema.field(f.name).type != f.type}
    # nullable throughout: a null where the contract forbids one is the contract's to report, with its count
    out = pa.schema([f.with_type(casts.get(f.name, reader.schema.field(f.name).type)).with_nullable(True)
                     for f in fields] + extras)
    declared = {n: str(c.dtype) for n, c in schema.columns.items()}

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            arrays = []
            for field in out:
                array = batch.column(field.name)
                if field.name in casts:
                    array = _cast(array, field.type, str(ref), field.name, declared[field.name])
                arrays.append(array)
            yield pa.RecordBatch.from_arrays(arrays, schema=out)

    return pa.RecordBatchReader.from_batches(out, batches())


def run_contract_polars(contract, source: "pl.LazyFrame | Sequence[str]", *, min_rows: int,
                        chunk_bytes: int = CHUNK_BYTES) -> CheckOutcome:
    """Validate `source` (a LazyFrame, or the paths of Parquet files: a staged output) with Pandera's
    polars backend, data-level checks on, every failure collected. Same outcome as `run_contract`
    on the same rows (check name, problems, metadata keys), in memory bounded whatever the size:
    the types once on the plan, the row checks a chunk of about `chunk_bytes` at a time, uniqueness
    counted in DuckDB (which spills). Counts are exact, failure cases are samples."""
    import polars as pl

    files = None if isinstance(source, pl.LazyFrame) else list(source)
    frame = source if files is None else pl.scan_parquet(files)
    name = contract.__name__
    schema = contract.to_schema()
    rows = frame.select(pl.len()).collect(engine="streaming").item()
    metadata: dict = {"dagster/row_count": rows, "contract": name}
    unsupported = engine_problems(contract)
    if unsupported:  # fail closed: a check that cannot run must not pass by being skipped
        return contract_outcome(name, unsupported, metadata)

    failures = Failures([name, *schema.columns])
    present = frame.collect_schema()
    extras = [c for c in present.names() if c not in schema.columns]
    if schema.strict is True:
        for column in extras:
            failures.add(FailureGroup(name, "column_in_schema", 1, [column]),
                         [failure_case("DataFrameSchema", name, "column_in_schema", column)])
    elif schema.strict == "filter":
        frame = frame.drop(extras)
    cast = _cast_lazily(frame, schema, _polars_schema(contract), present, failures)
    files = files if cast is frame else None  # DuckDB reads the files themselves only if no value needs a cast
    frame = cast
    _run_pandera(contract, frame, rows, chunk_bytes, failures)
    _check_uniqueness(frame, schema, name, failures, files)
    return failures_outcome(name, schema, failures, metadata, rows, min_rows,
                            lambda group: _with_value_counts(frame, schema, group))


def failures_outcome(name: str, schema, failures: "Failures", metadata: dict, rows: int, min_rows: int,
                     with_value_counts) -> CheckOutcome:
    """The contract's outcome from what an engine found: problems in run_contract's words, failure counts,
    offending values (`with_value_counts(group)` adds a value-set check's counts) and cases, and too few rows."""
    groups = failures.groups()
    value_sets = value_set_checks(schema)
    groups = [with_value_counts(g) if (g.column, g.check) in value_sets else g for g in groups]
    problems, offending = describe_failures(groups)
    problems += failures.notes
    if offending:
        metadata["offending_values"] = dg.MetadataValue.json(offending)
    if groups:
        metadata["failure_count"] = sum(g.count for g in groups)
    if failures.cases:
        metadata["failure_cases"] = failure_table(pd.DataFrame(failures.cases))
    if few := too_few_rows(rows, min_rows):
        problems.append(few)
    return contract_outcome(name, problems, metadata)


class Failures:
    """Failure groups gathered over the chunks of a frame, one per (column, check): counts from a
    check's output per row add up; a failure without one (a check that raised, a missing column)
    is the same in every chunk and counts once. Failure cases are capped per group, and listed by
    column in `order` (the frame's own failures first), whichever chunk found them first."""

    def __init__(self, order: list[str]):
        self._order = {name: i for i, name in enumerate(order)}
        self._groups: dict[tuple[str, str], FailureGroup] = {}
        self._per_row: dict[tuple[str, str], bool] = {}
        self._cases: dict[tuple[str, str], list[dict]] = {}
        self.notes: list[str] = []  # problems that are not a count of failed rows

    def note(self, problem: str) -> None:
        self.notes.append(problem)

    def add(self, group: FailureGroup, cases: list[dict], *, per_row: bool = False) -> None:
        key = (group.column, group.check)
        seen = self._groups.get(key)
        if seen is None:
            self._groups[key], self._per_row[key], self._cases[key] = group, per_row, []
        elif per_row and self._per_row[key]:
            values = [*seen.values, *group.values][:MAX_FAILURE_ROWS]
            self._groups[key] = FailureGroup(seen.column, seen.check, seen.count + group.count, values)
        else:
            return
        shown = self._cases[key]
        shown.extend(cases[:MAX_FAILURE_ROWS - len(shown)])

    def groups(self) -> list[FailureGroup]:
        return list(self._groups.values())

    @property
    def cases(self) -> list[dict]:
        keys = sorted(self._cases, key=lambda key: self._order.get(key[0], len(self._order)))
        return [case for key in keys for case in self._cases[key]]


def _run_pandera(contract, frame: "pl.LazyFrame", rows: int, chunk_bytes: int, failures: Failures) -> None:
    """Pandera's polars backend: column presence and types once, on the plan (no data read); the
    row-wise checks (nulls, ranges, sets, patterns) on one collected chunk at a time; a check over
    a whole column (unique_values_eq) on the frame."""
    from pandera.config import ValidationDepth, config_context

    name = contract.__name__
    with config_context(validation_depth=ValidationDepth.SCHEMA_ONLY):
        _validate(_pandera_schema(contract), frame, name, failures)
    whole = _pandera_schema(contract, row_wise=False)
    if whole is not None:
        with config_context(validation_depth=ValidationDepth.DATA_ONLY):
            _validate(whole, frame, name, failures)
    by_row = _pandera_schema(contract, row_wise=True)
    sample = frame.head(_SAMPLE_ROWS).collect(engine="streaming")
    # rows per chunk from the width of the first rows: a wide table is checked in fewer rows at a time
    chunk_rows = max(_MIN_CHUNK_ROWS, int(chunk_bytes / max(1.0, sample.estimated_size() / max(1, sample.height))))
    with config_context(validation_depth=ValidationDepth.DATA_ONLY):
        for offset in range(0, rows, chunk_rows):
            # a slice of a Parquet scan reads only its row groups (leaner than Polars' collect_batches)
            chunk = sample if rows <= sample.height else frame.slice(offset, chunk_rows).collect(engine="streaming")
            _validate(by_row, chunk.lazy(), name, failures, offset)


def _validate(pandera_schema, frame, name: str, failures: Failures, offset: int = 0) -> None:
    from pandera.errors import SchemaError, SchemaErrors

    try:
        pandera_schema.validate(frame, lazy=True)
    except SchemaErrors as exc:
        for error in exc.schema_errors:
            _read_error(error, name, failures, offset)
    except SchemaError as exc:  # raised before lazy collection
        _read_error(exc, name, failures, offset)


def contract_outcome(name: str, problems: list[str], metadata: dict) -> CheckOutcome:
    if problems:
        metadata["problems"] = "\n".join(problems)
        return CheckOutcome(CHECK_NAME, False, Severity.ERROR,
                            f"Contract {name} failed: " + "; ".join(problems[:5]), metadata)
    return CheckOutcome(CHECK_NAME, True, Severity.ERROR, f"Contract {name} passed.", metadata)


def arrow_type(dtype) -> "pa.DataType | None":
    """The Arrow type of a Pandera (pandas) dtype: text as string, the rest as pyarrow reads an
    empty pandas column of it. None where there is no such type (object, no dtype)."""
    import pyarrow as pa

    if dtype is None:
        return None
    if str(dtype) in ("str", "string"):
        return pa.string()
    try:
        kind = pa.array(pd.Series([], dtype=dtype.type)).type
    except (TypeError, ValueError, pa.ArrowException):
        return None
    return None if pa.types.is_null(kind) else kind


def _is_builtin(check, builtin_checks) -> bool:
    """A Pandera built-in check (Field(ge=...), Check.isin(...)) with a polars implementation; a
    custom check's function is the user's, written for pandas."""
    from pandera.api.function_dispatch import Dispatcher

    # a built-in's function is a dispatcher (by data type); a schema holds copies, so compare by kind and name
    return isinstance(check._check_fn, Dispatcher) and hasattr(builtin_checks, check.name) and check.groupby is None


def _cast(array: "pa.Array", target: "pa.DataType", product: str, column: str, declared: str) -> "pa.Array":
    """`array` as `target`, or ContractConversionError with the values that do not convert."""
    import pyarrow as pa
    import pyarrow.compute as pc

    source = array.type
    if pa.types.is_timestamp(source) and source.tz and pa.types.is_timestamp(target) and not target.tz:
        lost = pc.is_valid(array)  # dropping a time zone changes what instant a value means
    else:
        try:
            return array.cast(target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            lost = _lost(array, target)
    count = pc.sum(lost).as_py() or 0
    values = array.filter(lost).slice(0, MAX_FAILURE_ROWS).to_pylist()
    raise ContractConversionError(product, column, declared, unconvertible(column, count, declared, values))


def _lost(array: "pa.Array", target: "pa.DataType") -> "pa.Array":
    """Where a value does not survive the cast to `target` and back (only after a safe cast failed)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        cast = array.cast(target, safe=False)
        back = cast.cast(array.type, safe=False)
        lost = pc.and_(pc.is_valid(array), pc.or_kleene(pc.is_null(cast), pc.invert(pc.equal(back, array))))
        if pc.any(lost).as_py():
            return lost
        # nothing lost on the round trip, yet the safe cast failed: an integer that wrapped around
        # (uint64 past int64 and back) survives it. Only on this error path: one value at a time.
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # a value that does not even parse: one at a time
        pass
    return pa.array([_fails(v, array.type, target) for v in array.to_pylist()], pa.bool_())


def _fails(value, source: "pa.DataType", target: "pa.DataType") -> bool:
    import pyarrow as pa

    if value is None:
        return False
    try:
        pa.array([value], source).cast(target, safe=True)
        return False
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return True


def _polars_schema(contract) -> dict:
    """The contract's columns as Polars types (from its Arrow types: one source for both)."""
    import polars as pl

    return dict(pl.from_arrow(arrow_schema(contract).empty_table()).schema)


def _pandera_schema(contract, row_wise: bool | None = None):
    """The pandas model as a polars DataFrameSchema: its columns (types, nullable, required) and
    built-in checks, failure cases capped (the counts come from each check's boolean output).
    Types are already cast and strictness and uniqueness are Mesh's (see run_contract_polars).
    `row_wise`: True keeps the checks decided row by row, False only those of a whole column
    (None where there are none), None keeps every check."""
    import pandera.polars as pap

    schema = contract.to_schema()
    types = _polars_schema(contract)

    def kept(checks) -> list:
        return [_capped(c) for c in checks if row_wise is None or (c.name not in _WHOLE_COLUMN) == row_wise]

    columns = {
        name: pap.Column(types[name], nullable=column.nullable or row_wise is False, required=column.required,
                         coerce=False, checks=kept(column.checks), name=name)
        for name, column in schema.columns.items()
    }
    if row_wise is False and not any(c.checks for c in columns.values()) and not kept(schema.checks):
        return None
    return pap.DataFrameSchema(columns, checks=kept(schema.checks), name=contract.__name__)


def _capped(check):
    check = copy.copy(check)
    check.n_failure_cases = MAX_FAILURE_ROWS
    return check


def _cast_lazily(frame, schema, types: dict, present, failures: "Failures"):
    """Cast each contract column to its type, counting (in one streaming pass) the values the cast
    would not keep: the lossless rule of `conform`, for a frame that was not conformed."""
    import polars as pl

    lost: dict[str, pl.Expr] = {}
    converted: dict[str, pl.Expr] = {}
    for name, column in schema.columns.items():
        if name not in present or present[name] == types[name] or not (schema.coerce or column.coerce):
            continue
        source, target, col = present[name], types[name], pl.col(name)
        if isinstance(source, pl.Datetime) and isinstance(target, pl.Datetime):
            if source.time_zone and not target.time_zone:
                converted[name], lost[name] = col.cast(target, strict=False), col.is_not_null()  # zone dropped
                continue
            if not source.time_zone and target.time_zone:
                col = col.dt.replace_time_zone(target.time_zone)  # wall-clock times read as in the target zone
            new = col.cast(target, strict=False)
            changed = new.dt.epoch("ns") != pl.col(name).dt.epoch("ns")
        else:
            new = col.cast(target, strict=False)
            changed = new.cast(source, strict=False) != pl.col(name)
        converted[name] = new
        lost[name] = pl.col(name).is_not_null() & (new.is_null() | changed.fill_null(True))
    if not lost:
        return frame
    counts = frame.select([expr.sum().alias(name) for name, expr in lost.items()]).collect(engine="streaming").row(0, named=True)
    for name, count in counts.items():
        if count:
            check = f"coerce_dtype('{schema.columns[name].dtype}')"
            sample = frame.with_row_index("_index").filter(lost[name]).select("_index", name).head(MAX_FAILURE_ROWS)
            sample = sample.collect(engine="streaming")
            failures.add(FailureGroup(name, check, count, sample[name].to_list()),
                         [failure_case("Column", name, check, v, i) for i, v in sample.iter_rows()])
    return frame.with_columns([expr.alias(name) for name, expr in converted.items()])


def _read_error(error, name: str, failures: Failures, offset: int = 0) -> None:
    """One Pandera SchemaError as a FailureGroup (exact count from the check's boolean output) and
    its sampled failure cases, their rows `offset` past the chunk's start."""
    import polars as pl

    check = error.check
    check_id = check if isinstance(check, str) else (check.error or check.name or str(check)) if check else None
    frame_level = type(error.schema).__name__ == "DataFrameSchema"
    column = name if frame_level else error.schema.name
    failure = error.failure_cases
    output = error.check_output
    if isinstance(failure, pl.DataFrame):
        values = failure.head(MAX_FAILURE_ROWS).to_series(0).to_list() if failure.width else []
        if isinstance(output, pl.DataFrame) and _CHECK_OUTPUT in output.columns:
            failed = output.with_row_index("_index").filter(~pl.col(_CHECK_OUTPUT))
            count, index = failed.height, [offset + i for i in failed["_index"].head(len(values)).to_list()]
        else:
            count, index = failure.height, [None] * len(values)
    else:
        values, count, index = [failure], 1, [None]
    number = getattr(error, "check_index", None)
    context = "DataFrameSchema" if frame_level else "Column"
    failures.add(FailureGroup(column, str(check_id), count, values),
                 [failure_case(context, column, str(check_id), v, i, number) for v, i in zip(values, index)],
                 per_row=isinstance(failure, pl.DataFrame))


def _check_uniqueness(frame, schema, name: str, failures: Failures, files: list[str] | None = None) -> None:
    """Unique columns and the contract's key (Config.unique), as Pandera reports them (every row of
    a duplicated value; a key's failures once per key column). A DuckDB group-by over the key
    columns, which spills past its memory limit: never the frame, nor every key, in memory. It reads
    `files` itself when given (leaner and faster than a stream from Polars), else `frame` streamed."""
    import duckdb
    import polars as pl

    from mesh_core.run.engines import polars_stream
    from mesh_core.storage.duckdb_memory import MEMORY_LIMIT_ENV, bounded_connection, memory_limit

    present = frame.collect_schema().names()
    rules = [([column], "field_uniqueness", "Column") for column, spec in schema.columns.items()
             if spec.unique and column in present]
    if schema.unique:
        keys = [schema.unique] if isinstance(schema.unique, str) else list(schema.unique)
        keys = [k for k in keys if k in present]
        if keys:
            rules.append((keys, "multiple_fields_uniqueness", "DataFrameSchema"))
    for keys, check, context in rules:
        with bounded_connection(f"The contract {name}") as con:
            if files is not None:  # a row's place: its file's in the list, then its own in the file (< 2^40 rows)
                rows, position = "read_parquet($files, file_row_number = true)", "file_index::BIGINT * 1099511627776 + file_row_number"
                parameters = {"files": files}
            else:  # a stream is read once: each query below registers it afresh
                rows, position, parameters = "mesh_keys", _ROW, {}
            listed = ", ".join(f'"{i}"' for i in range(len(keys)))
            renamed = ", ".join(f"{quote_column(k)} AS \"{i}\"" for i, k in enumerate(keys))
            repeated = (f"SELECT {listed}, count(*) AS rows{{first}} FROM (SELECT {renamed}, {position} AS place FROM {rows}) "
                        "GROUP BY ALL HAVING count(*) > 1")
            # Pandera (pandas) drops a null from the failure cases: a repeated row counts for each key column it has a value in
            counted = ", ".join(f'coalesce(sum(rows) FILTER (WHERE "{i}" IS NOT NULL), 0)' for i in range(len(keys)))

            def query(sql: str):
                if files is None:
                    con.register("mesh_keys", polars_stream(frame.select(keys).with_row_index(_ROW), f"The contract {name}"))
                return con.sql(sql, params=parameters)

            try:
                counts = dict(zip(keys, query(f"SELECT {counted} FROM ({repeated.format(first='')})").fetchall()[0]))
                if not any(counts.values()):
                    continue
                # the repeated keys that occur first (a top-N: bounded), for a sample of their rows
                shown_keys = query(f"SELECT {listed} FROM ({repeated.format(first=', min(place) AS first')}) "
                                   f"ORDER BY first LIMIT {MAX_FAILURE_ROWS}").to_arrow_table()
            except duckdb.OutOfMemoryException:  # fail closed, saying what to change
                failures.note(f"{', '.join(keys)}: {check} could not be counted within DuckDB's memory limit "
                              f"{memory_limit()} (${MEMORY_LIMIT_ENV}): too many repeated keys to hold. Nothing is "
                              f"published; raise it, e.g. {MEMORY_LIMIT_ENV}=4GB")
                continue
        shown_keys = pl.from_arrow(shown_keys).rename({str(i): k for i, k in enumerate(keys)})
        sample = (frame.select(keys).with_row_index(_ROW)
                  .join(shown_keys.lazy().cast(dict(frame.select(keys).collect_schema())), on=keys, how="semi",
                        nulls_equal=True)
                  .head(MAX_FAILURE_ROWS).collect(engine="streaming"))
        for key in keys:
            if counts[key]:
                shown = sample.select(_ROW, key).filter(pl.col(key).is_not_null())
                failures.add(FailureGroup(key, check, int(counts[key]), shown[key].to_list()),
                             [failure_case(context, key, check, v, i) for i, v in shown.iter_rows()])


def _with_value_counts(frame, schema, group: FailureGroup) -> FailureGroup:
    """A failed check against a set of values, with every offending value and how often, counted
    in the engine (the failure cases are only a sample)."""
    import polars as pl

    check = next(c for c in schema.columns[group.column].checks if str(c.error) == group.check)
    stats = check.statistics or {}
    col = pl.col(group.column)
    if "allowed_values" in stats:
        bad = ~col.is_in(list(stats["allowed_values"]))
    elif "forbidden_values" in stats:
        bad = col.is_in(list(stats["forbidden_values"]))
    else:  # a set-valued check without a polars rule for its values: name the sampled ones
        counts = pd.Series([shown_value(v) for v in group.values]).value_counts()
        return FailureGroup(group.column, group.check, group.count, group.values, {str(k): int(v) for k, v in counts.items()})
    counted = (frame.filter(col.is_not_null() & bad).group_by(group.column).agg(pl.len().alias("_rows"))
               .sort(["_rows", group.column], descending=[True, False]).collect(engine="streaming"))
    counts = {shown_value(value): int(n) for value, n in counted.iter_rows()}
    return FailureGroup(group.column, group.check, group.count, group.values, counts)


def failure_case(context: str, column: str, check: str, value, index=None, number=None) -> dict:
    """One failure case in the shape of Pandera's failure-case table."""
    return {"schema_context": context, "column": column, "check": check, "check_number": number,
            "failure_case": value, "index": index}
