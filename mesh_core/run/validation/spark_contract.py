"""A product's Pandera contract, run on Spark with Pandera's pyspark backend.

The same pandas `DataFrameModel` a product declares is translated into a `pandera.pyspark` schema
(types from the contract's Arrow types, nullable, required, the built-in checks themselves) and
run on a Spark DataFrame over the staged output. The outcome reads as `run_contract_polars`'s:
same check name, problems, metadata keys and wording.

Pandera's pyspark backend does not raise and says only which checks failed (one `limit(1)` job
each), not how often: Mesh counts every rule's failing rows itself in one Spark aggregation, and
reads a bounded sample of failing values per failed rule. A rule Pandera failed that Mesh counts
no rows for, or the reverse, still fails the contract: never a silent pass. Strictness, types (Pandera
does not tell a timestamp with a time zone from one without) and uniqueness (a Spark group-by)
are Mesh's. Nothing collects the frame: counts are Spark jobs, samples are `limit`s.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING


from mesh_core.run.validation.engine_contract import (Failures, arrow_type, contract_outcome, failure_case,
                                                      failures_outcome)
from mesh_core.run.validation.failures import FailureGroup
from mesh_core.run.validation.outcome import MAX_FAILURE_ROWS, shown_value

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame

_FIX = "express it as a built-in Field check (ge, le, isin, str_length, ...), as an Expectation in the product's suite, or keep the product in pandas"
_NUMBER = ("bigint", "int", "smallint", "tinyint", "double", "float", "decimal")
_ORDERED = (*_NUMBER, "date", "timestamp")
# The built-in checks of pandera.backends.pyspark.builtin_checks and the Spark types each accepts
# (its register_input_datatypes): kept here so that reading a declaration never imports pyspark.
_SPARK_CHECKS = {
    **dict.fromkeys(["equal_to", "not_equal_to"], (*_ORDERED, "string", "binary", "boolean")),
    **dict.fromkeys(["greater_than", "greater_than_or_equal_to", "less_than", "less_than_or_equal_to", "in_range"], _ORDERED),
    **dict.fromkeys(["isin", "notin", "unique_values_eq"], (*_ORDERED, "string", "binary")),
    **dict.fromkeys(["str_matches", "str_contains", "str_startswith", "str_endswith", "str_length"], ("string",)),
}
_WHOLE_COLUMN = {"unique_values_eq"}  # decided on a column's set of values, not row by row
_ROWS = "__mesh_rows"


def engine_problems_spark(contract) -> list[str]:
    """What of `contract` Pandera's pyspark backend cannot run, each naming the column or check and
    the fix. Reads the declaration only (no Spark, no pyspark import): cheap enough for a load."""
    schema = contract.to_schema()
    name = contract.__name__
    problems = []
    if schema.parsers:
        problems.append(f"{name}: dataframe parser(s) {[str(p) for p in schema.parsers]} run on pandas only; "
                        "do the transformation in the product, or keep the product in pandas")
    if schema.index is not None:
        problems.append(f"{name}: declares an index, which a Spark DataFrame does not have; "
                        "make it a column, or keep the product in pandas")
    for check in schema.checks:  # Pandera's pyspark backend runs a frame-wide check only as Python on the frame
        problems.append(f"{name}: dataframe check '{check.name}' cannot run in Spark; {_FIX}")
    for column_name, column in schema.columns.items():
        where = f"{name}.{column_name}"
        if column.regex:
            problems.append(f"{where}: a regex column (matched by pattern) cannot be cast or checked in Spark; "
                            "name each column, or keep the product in pandas")
        if column.parsers:
            problems.append(f"{where}: parser(s) run on pandas only; do the transformation in the product, "
                            "or keep the product in pandas")
        spark = spark_type_name(column.dtype)
        if spark is None:
            problems.append(f"{where}: type {column.dtype} has no Spark equivalent; declare str, int, float, bool, "
                            "a pandas nullable integer, a date or a timestamp, or keep the product in pandas")
        for check in column.checks:
            if not _is_spark_builtin(check):
                problems.append(f"{where}: check '{check.name}' is written for pandas; {_FIX}")
            elif spark is not None and spark.split("(")[0] not in _SPARK_CHECKS[check.name]:  # decimal(p,s) is decimal
                fix = ("declare the column with a time zone (pd.DatetimeTZDtype('ns', 'UTC'))" if spark == "timestamp_ntz"
                       else "declare a type it accepts")
                problems.append(f"{where}: check '{check.error}' does not run on Spark type {spark} in Pandera's pyspark "
                                f"backend (it takes {', '.join(_SPARK_CHECKS[check.name])}); {fix}, or write it as an "
                                "Expectation in the product's suite")
    return problems


def spark_type_name(dtype) -> str | None:
    """A Pandera (pandas) dtype as Spark's name for a type (`DataType.simpleString()`), by way of its
    Arrow type (one source for every engine). None where Spark has no such type (unsigned integers,
    durations, object)."""
    import pyarrow as pa

    kind: pa.DataType | None = arrow_type(dtype)
    if kind is None:
        return None
    names = {pa.int64(): "bigint", pa.int32(): "int", pa.int16(): "smallint", pa.int8(): "tinyint",
             pa.float64(): "double", pa.float32(): "float", pa.string(): "string", pa.large_string(): "string",
             pa.bool_(): "boolean", pa.date32(): "date", pa.binary(): "binary", pa.large_binary(): "binary"}
    if kind in names:
        return names[kind]
    if pa.types.is_timestamp(kind):  # Spark keeps microseconds; a zone means an instant (TimestampType)
        return "timestamp" if kind.tz else "timestamp_ntz"
    if pa.types.is_decimal128(kind):
        return f"decimal({kind.precision},{kind.scale})"
    return None


def run_contract_spark(contract, df: "DataFrame", *, min_rows: int):
    """Validate the Spark DataFrame `df` (Spark Connect or classic) with Pandera's pyspark backend,
    every failure collected. Same outcome as `run_contract_polars` on the same rows (check name,
    problems, metadata keys); counts are exact, failure cases are samples (without a row position:
    a Spark frame has no order)."""
    name = contract.__name__
    schema = contract.to_schema()
    rows = df.count()
    metadata: dict = {"dagster/row_count": rows, "contract": name}
    unsupported = engine_problems_spark(contract)
    if unsupported:  # fail closed: a check that cannot run must not pass by being skipped
        return contract_outcome(name, unsupported, metadata)

    failures = Failures([name, *schema.columns])
    extras = [c for c in df.columns if c not in schema.columns]
    if schema.strict is True:
        for column in extras:
            failures.add(FailureGroup(name, "column_in_schema", 1, [column]),
                         [failure_case("DataFrameSchema", name, "column_in_schema", column)])
    elif schema.strict == "filter" and extras:
        df = df.drop(*extras)
    df, typed = _cast(df, schema, failures)
    rules = _rules(schema, typed)
    counts = _count(df, rules) if rules else {}
    verdicts = _run_pandera(contract, df, typed, failures)
    for key, rule in rules.items():
        failed = key in verdicts
        if counts[key] == 0 and not failed:
            continue
        if counts[key] == 0:  # Pandera failed a rule that no row breaks: say so, never pass it
            failures.note(f"{key[0]}: {key[1]} failed in Pandera's pyspark backend, yet no row breaks it "
                          f"({verdicts[key]}); nothing is published until the two agree")
            continue
        column, check, number = key[0], key[1], rule[1]
        values = [row[0] for row in df.filter(rule[0]).select(_col(column)).limit(MAX_FAILURE_ROWS).collect()]
        failures.add(FailureGroup(column, check, counts[key], values),
                     [failure_case("Column", column, check, v, None, number) for v in values])
    for key, message in verdicts.items():
        if key not in rules:  # what Pandera decided that Mesh does not count row by row
            failures.add(FailureGroup(key[0], key[1], 1, [message]),
                         [failure_case("Column", key[0], key[1], message)])
    _check_uniqueness(df, schema, failures)
    return failures_outcome(name, schema, failures, metadata, rows, min_rows,
                            lambda group: _with_value_counts(df, schema, group))


def _is_spark_builtin(check) -> bool:
    from pandera.api.function_dispatch import Dispatcher

    # a built-in's function is a dispatcher (by data type), found again by name for the pyspark column object
    return isinstance(check._check_fn, Dispatcher) and check.name in _SPARK_CHECKS and check.groupby is None


def _col(name: str) -> "Column":
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")  # a name as it is: dots and spaces are not paths


def _cast(df: "DataFrame", schema, failures: Failures) -> tuple["DataFrame", set[str]]:
    """Each contract column in its Spark type: cast where the contract coerces, never changing a
    value (the lossless rule of `conform`: a value the cast drops or changes fails coerce_dtype),
    else a wrong type fails dtype. Returns the frame and the columns now of their contract's type."""
    from pyspark.sql import functions as F

    present = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    typed, lost, converted = set(), {}, {}
    for name, column in schema.columns.items():
        target = spark_type_name(column.dtype)
        if name not in present:
            continue
        source = present[name]
        if source == target:
            typed.add(name)
            continue
        if not (schema.coerce or column.coerce):
            failures.add(FailureGroup(name, f"dtype('{target}')", 1, [source]),
                         [failure_case("Column", name, f"dtype('{target}')", source)])
            continue
        col = _col(name)
        if source == "timestamp" and target == "timestamp_ntz":  # dropping a zone changes what instant a value means
            new, changed = col.try_cast(target), F.lit(True)
        elif source == "timestamp_ntz" and target == "timestamp":  # wall-clock times read as UTC
            zone = df.sparkSession.conf.get("spark.sql.session.timeZone")
            new = F.convert_timezone(F.lit("UTC"), F.lit(zone), col).try_cast(target)
            changed = F.lit(False)
        else:
            new = col.try_cast(target)
            changed = ~new.try_cast(source).eqNullSafe(col)
        converted[name] = new
        lost[name] = col.isNotNull() & (new.isNull() | changed)
        typed.add(name)
    if not lost:
        return df, typed
    counted = df.agg(*[F.count_if(expr).alias(f"c{i}") for i, expr in enumerate(lost.values())]).first()
    for i, (name, expr) in enumerate(lost.items()):
        if counted[i]:
            check = f"coerce_dtype('{schema.columns[name].dtype}')"
            values = [r[0] for r in df.filter(expr).select(_col(name)).limit(MAX_FAILURE_ROWS).collect()]
            failures.add(FailureGroup(name, check, counted[i], values),
                         [failure_case("Column", name, check, v) for v in values])
    return df.withColumns(converted), typed


def _rules(schema, typed: set[str]) -> dict[tuple[str, str], tuple["Column", int | None]]:
    """(column, check) -> where a row breaks it, and the check's number in its column: nulls in a
    non-nullable column and every built-in check decided row by row, on the columns of their type."""
    rules = {}
    for name, column in schema.columns.items():
        if name not in typed:
            continue
        col = _col(name)
        if not column.nullable:
            rules[(name, "not_nullable")] = (col.isNull(), None)
        for number, check in enumerate(column.checks):
            if check.name not in _WHOLE_COLUMN:
                rules[(name, str(check.error))] = (col.isNotNull() & ~_holds(check, col), number)
    return rules


def _holds(check, col: "Column") -> "Column":
    """Where a value passes the built-in `check`, as Pandera's pyspark backend decides it."""
    from pyspark.sql import functions as F

    s = dict(check._check_kwargs)
    kind = check.name
    if kind == "equal_to":
        return col == s["value"]
    if kind == "not_equal_to":
        return col != s["value"]
    if kind == "greater_than":
        return col > s["min_value"]
    if kind == "greater_than_or_equal_to":
        return col >= s["min_value"]
    if kind == "less_than":
        return col < s["max_value"]
    if kind == "less_than_or_equal_to":
        return col <= s["max_value"]
    if kind == "in_range":
        low = col >= s["min_value"] if s.get("include_min", True) else col > s["min_value"]
        high = col <= s["max_value"] if s.get("include_max", True) else col < s["max_value"]
        return low & high
    if kind == "isin":
        return col.isin(list(s["allowed_values"]))
    if kind == "notin":
        return ~col.isin(list(s["forbidden_values"]))
    if kind == "str_matches":
        pattern = s["pattern"] if isinstance(s["pattern"], str) else s["pattern"].pattern
        return col.rlike(pattern if pattern.startswith("^") else f"^{pattern}")
    if kind == "str_contains":
        return col.rlike(s["pattern"] if isinstance(s["pattern"], str) else s["pattern"].pattern)
    if kind == "str_startswith":
        return col.startswith(s["string"])
    if kind == "str_endswith":
        return col.endswith(s["string"])
    if kind == "str_length":
        length = F.length(col)
        if s.get("exact_value") is not None:
            return length == s["exact_value"]
        low = length >= s["min_value"] if s.get("min_value") is not None else F.lit(True)
        high = length <= s["max_value"] if s.get("max_value") is not None else F.lit(True)
        return low & high
    raise ValueError(f"no Spark rule for the built-in check {kind}")  # _SPARK_CHECKS and this list are one


def _count(df: "DataFrame", rules: dict) -> dict[tuple[str, str], int]:
    """Rows breaking each rule, every rule in one Spark job."""
    from pyspark.sql import functions as F

    row = df.agg(*[F.count_if(where).alias(f"r{i}") for i, (where, _) in enumerate(rules.values())]).first()
    # a comparison that is null (a NaN, a null bound) is no failure, as in Pandera's filter(~cond)
    return {key: int(row[i] or 0) for i, key in enumerate(rules)}


def _pandera_schema(contract, typed: set[str]):
    """The pandas model as a `pandera.pyspark` DataFrameSchema: each column's Spark type, nullable,
    required and built-in checks (the same Check objects: Pandera dispatches them by engine). A
    column of the wrong type keeps only nullable and required: its failure is already its type."""
    import pandera.pyspark as psp

    schema = contract.to_schema()
    columns = {
        name: psp.Column(_spark_type(spark_type_name(column.dtype)) if name in typed else None,
                         checks=list(column.checks) if name in typed else [], nullable=column.nullable,
                         required=column.required, name=name)
        for name, column in schema.columns.items()
    }
    return psp.DataFrameSchema(columns, name=contract.__name__)


def _run_pandera(contract, df: "DataFrame", typed: set[str], failures: Failures) -> dict[tuple[str, str], str]:
    """Pandera's pyspark backend on `df`, schema and data: its failures as {(column, check): message}.
    A missing column is recorded here; the rest is for the caller to count."""
    from pandera.config import ValidationDepth, config_context

    name = contract.__name__
    try:
        with config_context(validation_depth=ValidationDepth.SCHEMA_AND_DATA):
            errors = _pandera_schema(contract, typed).validate(df, lazy=True).pandera.errors
    except Exception as exc:  # noqa: BLE001 - fail closed, naming what Pandera raised
        failures.note(f"{name}: Pandera's pyspark backend could not run the contract: {type(exc).__name__}: {exc}")
        return {}
    verdicts: dict[tuple[str, str], str] = {}
    for reasons in errors.values():
        for reason, found in reasons.items():
            for error in found:
                column, check = str(error["column"]), str(error["check"])
                if reason == "COLUMN_NOT_IN_DATAFRAME":
                    failures.add(FailureGroup(name, "column_in_dataframe", 1, [column]),
                                 [failure_case("DataFrameSchema", name, "column_in_dataframe", column)], per_row=True)
                else:
                    verdicts[(column, check)] = error["error"]
    return verdicts


def _spark_type(name: str):
    import pyspark.sql.types as T

    simple = {"bigint": T.LongType, "int": T.IntegerType, "smallint": T.ShortType, "tinyint": T.ByteType,
              "double": T.DoubleType, "float": T.FloatType, "string": T.StringType, "boolean": T.BooleanType,
              "date": T.DateType, "timestamp": T.TimestampType, "timestamp_ntz": T.TimestampNTZType, "binary": T.BinaryType}
    if name in simple:
        return simple[name]()
    precision, scale = re.fullmatch(r"decimal\((\d+),(\d+)\)", name).groups()
    return T.DecimalType(int(precision), int(scale))


def _check_uniqueness(df: "DataFrame", schema, failures: Failures) -> None:
    """Unique columns and the contract's key (Config.unique), as Pandera reports them (every row of a
    repeated value, a key's once per key column it has a value in): a Spark group-by, which spills
    as Spark does; only the first repeated keys reach Python, for the sample."""
    from pyspark.sql import functions as F

    present = set(df.columns)
    rules = [([column], "field_uniqueness", "Column") for column, spec in schema.columns.items()
             if spec.unique and column in present]
    if schema.unique:
        keys = [schema.unique] if isinstance(schema.unique, str) else list(schema.unique)
        keys = [k for k in keys if k in present]
        if keys:
            rules.append((keys, "multiple_fields_uniqueness", "DataFrameSchema"))
    for keys, check, context in rules:
        renamed = [_col(k).alias(f"k{i}") for i, k in enumerate(keys)]
        repeated = df.select(*renamed).groupBy(*[f"k{i}" for i in range(len(keys))]).agg(F.count("*").alias(_ROWS)) \
            .filter(F.col(_ROWS) > 1)
        sums = repeated.agg(*[F.sum(F.when(F.col(f"k{i}").isNotNull(), F.col(_ROWS)).otherwise(0)).alias(f"s{i}")
                              for i in range(len(keys))]).first()
        counts = {key: int(sums[i] or 0) for i, key in enumerate(keys)}
        if not any(counts.values()):
            continue
        shown = repeated.limit(MAX_FAILURE_ROWS).collect()  # bounded: a row per repeated key
        for i, key in enumerate(keys):
            if counts[key]:
                values = [r[i] for r in shown if r[i] is not None for _ in range(r[_ROWS])][:MAX_FAILURE_ROWS]
                failures.add(FailureGroup(key, check, counts[key], values),
                             [failure_case(context, key, check, v) for v in values])


def _with_value_counts(df: "DataFrame", schema, group: FailureGroup) -> FailureGroup:
    """A failed check against a set of values, with every offending value and how often, counted
    by Spark (the failure cases are only a sample)."""
    from pyspark.sql import functions as F

    check = next(c for c in schema.columns[group.column].checks if str(c.error) == group.check)
    col = _col(group.column)
    bad = col.isNotNull() & ~_holds(check, col)
    counted = (df.filter(bad).groupBy(col.alias("value")).agg(F.count("*").alias(_ROWS))
               .orderBy(F.col(_ROWS).desc(), F.col("value").asc()).collect())
    counts = {shown_value(r["value"]): int(r[_ROWS]) for r in counted}
    return FailureGroup(group.column, group.check, group.count, group.values, counts)
