"""Run a product's expectation suite in DuckDB, on Parquet files, through GX 1.x's SQL engine.

The files are never loaded into Python: each run points a DuckDB view at them (`read_parquet`)
and GX computes its metrics as SQL queries over the view, through SQLAlchemy and duckdb-engine.
Results become CheckOutcomes exactly as `suite.run_suite` makes them (`suite.suite_outcomes`).
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Sequence

from mesh_core.declare.expectation import Expectation
from mesh_core.declare.names import quote_column
from mesh_core.errors import StorageError
from mesh_core.run.validation.outcome import CheckOutcome
from mesh_core.run.validation.suite import SUITES, result_format, suite_outcomes

_SOURCE = "mesh_duckdb"
_NO_SQL_METRIC = "GX 1.24 computes it in pandas only (its metric has no SQL implementation)"
_ENGINE_TYPES = ("it names a type as one engine spells it (pandas 'int64', DuckDB 'BIGINT')",
                 "declare the column's type in the contract instead, which every engine checks")
_NO_DUCKDB_REGEX = "GX 1.24 knows no regular-expression operator for DuckDB ('Regex is not supported for dialect duckdb')"
_REGEX_IN_CONTRACT = "check the pattern in the contract instead (pa.Field(str_matches=...) runs in Polars)"
_NO_DUCKDB_LIKE = ("GX 1.24 knows no LIKE operator for DuckDB ('Like patterns are not supported for dialect duckdb'), "
                   "and evaluates LIKE patterns in no other engine Mesh uses")
_KEEP_PANDAS = "express the rule as a contract check, or keep the product's output in pandas"
# Expectation types GX 1.24's SQL engine cannot run over DuckDB: (why, how to fix). tests/.../test_suite_sql.py
# checks this against GX: every type listed fails on DuckDB, and every type whose metric is pandas-only is listed.
NOT_ON_SQL = {
    "ExpectColumnValuesToBeDateutilParseable": (_NO_SQL_METRIC, _KEEP_PANDAS),
    "ExpectColumnValuesToBeJsonParseable": (_NO_SQL_METRIC, _KEEP_PANDAS),
    "ExpectColumnValuesToMatchJsonSchema": (_NO_SQL_METRIC, _KEEP_PANDAS),
    "ExpectColumnValuesToMatchStrftimeFormat": (_NO_SQL_METRIC, "declare the column as a timestamp in the contract, or "
                                                + _KEEP_PANDAS),
    "ExpectColumnValuesToBeIncreasing": (_NO_SQL_METRIC, _KEEP_PANDAS),
    "ExpectColumnValuesToBeDecreasing": (_NO_SQL_METRIC, _KEEP_PANDAS),
    "ExpectColumnValuesToBeOfType": (f"{_NO_SQL_METRIC}, and {_ENGINE_TYPES[0]}", _ENGINE_TYPES[1]),
    "ExpectColumnValuesToBeInTypeList": (f"{_NO_SQL_METRIC}, and {_ENGINE_TYPES[0]}", _ENGINE_TYPES[1]),
    "ExpectColumnTypeToBe": _ENGINE_TYPES,
    "ExpectColumnValuesToMatchRegex": (_NO_DUCKDB_REGEX, _REGEX_IN_CONTRACT),
    "ExpectColumnValuesToNotMatchRegex": (_NO_DUCKDB_REGEX, _REGEX_IN_CONTRACT),
    "ExpectColumnValuesToMatchRegexList": (_NO_DUCKDB_REGEX, _REGEX_IN_CONTRACT),
    "ExpectColumnValuesToNotMatchRegexList": (_NO_DUCKDB_REGEX, _REGEX_IN_CONTRACT),
    "ExpectColumnValuesToMatchLikePattern": (_NO_DUCKDB_LIKE, _REGEX_IN_CONTRACT),
    "ExpectColumnValuesToNotMatchLikePattern": (_NO_DUCKDB_LIKE, _REGEX_IN_CONTRACT),
    "ExpectColumnValuesToMatchLikePatternList": (_NO_DUCKDB_LIKE, _REGEX_IN_CONTRACT),
    "ExpectColumnValuesToNotMatchLikePatternList": (_NO_DUCKDB_LIKE, _REGEX_IN_CONTRACT),
    "ExpectColumnValuesToNotBeOutliers": ("GX 1.24 implements its IQR statistics for a few SQL dialects, not DuckDB",
                                          "bound the values with ExpectColumnValuesToBeBetween or "
                                          "ExpectColumnValueZScoresToBeLessThan, which run in DuckDB"),
}

_PASS_THROUGH_PARSERS = ("pandas", "spark")  # GX hands these conditions to that engine's own query language


def sql_problems(expectations: Sequence[Expectation]) -> list[str]:
    """What of a suite cannot run in GX's SQL engine over DuckDB: each expectation by its check name
    and type, why, and how to fix it. Cheap: no GX import, no data; run at load."""
    problems = []
    for item in expectations:
        if item.type in NOT_ON_SQL:
            problems.append(f"{item.name} ({item.type}): {NOT_ON_SQL[item.type][0]}; {NOT_ON_SQL[item.type][1]}")
        parser = item.params.get("condition_parser")
        if item.params.get("row_condition") and parser in _PASS_THROUGH_PARSERS:
            problems.append(
                f"{item.name} ({item.type}): its row_condition {item.params['row_condition']!r} is {parser} syntax "
                f"(condition_parser={parser!r}), which GX 1.24 evaluates in {parser} only; write it in GX's own syntax, "
                "which runs in every engine: condition_parser='great_expectations', row_condition='col(\"status\") != \"cancelled\"'")
    return problems


def run_suite_duckdb(suite_name: str, expectations: Sequence[Expectation], paths: Sequence[str],
                     keys: Sequence[str] = ()) -> list[CheckOutcome]:
    """Validate the Parquet files at `paths` (one table, as staged for a publish) against the suite,
    in DuckDB: one outcome per expectation, as `run_suite` gives for a DataFrame."""
    if not paths:
        raise ValueError(f"Suite {suite_name}: no Parquet file to validate; pass the staged files' paths.")
    remote = [str(path) for path in paths if "://" in str(path)]
    if remote:  # DuckDB would fetch its httpfs extension from the network to read them
        raise ValueError(
            f"Suite {suite_name}: DuckDB here reads local Parquet files only, not {remote[0]}; validate an object-store "
            "port with the product's output in pandas, or install DuckDB's httpfs extension in the image first.")
    import sqlalchemy.exc

    view = _view_name(suite_name)
    with SUITES.lock:  # one validation at a time per process, as run_suite
        source = SUITES.source(_SOURCE, _add_duckdb)
        engine = source.get_engine()
        files = ", ".join("'" + str(path).replace("'", "''") + "'" for path in paths)
        try:
            with engine.begin() as connection:
                described = connection.exec_driver_sql(f"DESCRIBE SELECT * FROM read_parquet([{files}])").fetchall()
                # pandas (and so run_suite) reads a float NaN as missing; SQL would count it as a value
                floats = [name for name, kind, *_ in described if kind in ("FLOAT", "DOUBLE")]
                nan_as_null = (" REPLACE (" + ", ".join(f"CASE WHEN isnan({quote_column(c)}) THEN NULL ELSE {quote_column(c)} END "
                                                        f"AS {quote_column(c)}" for c in floats) + ")") if floats else ""
                connection.exec_driver_sql(
                    f'CREATE OR REPLACE VIEW "{view}" AS SELECT *{nan_as_null} FROM read_parquet([{files}])')
                columns = {name for name, *_ in described}
        except sqlalchemy.exc.DBAPIError as exc:
            raise StorageError(
                f"Suite {suite_name}: DuckDB cannot read the {len(paths)} Parquet file(s) to validate, from {paths[0]}: "
                f"{exc.orig}. Stage the output again; the files must exist and be Parquet of one schema.") from exc
        keys = [key for key in keys if key in columns]
        validation = SUITES.validation(
            suite_name, expectations, source,
            lambda source, name: source.add_table_asset(name=name, table_name=view).add_batch_definition_whole_table("output"))
        try:
            result = validation.run(result_format=result_format(keys))
        finally:
            SUITES.release()
            with engine.begin() as connection:  # the view names the files: drop it, they may be discarded
                connection.exec_driver_sql(f'DROP VIEW IF EXISTS "{view}"')
    return suite_outcomes(suite_name, expectations, result, keys)


def _add_duckdb(context):
    from mesh_core.run.validation.duckdb_dialect import register

    # A named in-memory database: every pooled connection of this process sees the same views, and
    # nothing is written to disk.
    return context.data_sources.add_sql(_SOURCE, connection_string=f"{register()}:///:memory:mesh_gx_{os.getpid()}")


def _view_name(suite_name: str) -> str:
    """A table name for the suite's view: readable, and distinct for names that differ only in punctuation."""
    digest = hashlib.sha256(suite_name.encode()).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9_]', '_', suite_name)}_{digest}"
