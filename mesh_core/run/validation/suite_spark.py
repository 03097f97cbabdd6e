"""Run a product's expectation suite on a Spark DataFrame, through GX 1.x's Spark execution engine.

The metrics are computed by Spark where the DataFrame lives (Spark Connect or a classic session): only
aggregates and the bounded failure samples of `suite.result_format` (`limit(20)`) come back to Python,
never the frame. Results become CheckOutcomes exactly as `suite.run_suite` makes them (`suite.suite_outcomes`).

GX 1.24's Spark engine accepts a Spark Connect DataFrame as batch data and computes with
`pyspark.sql.functions`, which serve Connect too; but it does not take the DataFrame's session. It looks
one up itself (`SparkDFExecutionEngine.get_or_create_spark_session`: Connect's `builder.getOrCreate()`,
then the classic builder's) when `add_spark` tests its connection and whenever it builds an engine. That
finds the DataFrame's session only when it is pyspark's live default one. Otherwise it fails
(`CONNECT_URL_NOT_SET`, e.g. once the first session made was stopped), opens a session of its own (with
`SPARK_REMOTE` set), or starts a second, local Spark in this process (a `local[*]` JVM, where no builder
made a Connect session). So Mesh answers that lookup with `df.sparkSession` while it adds its Spark
datasource, and before each run sets the datasource's session (`_spark`, what GX's own `get_spark` sets)
to the DataFrame's, so the engine GX builds holds the session the DataFrame lives in.
"""

from __future__ import annotations

from typing import Sequence

from mesh_core.declare.expectation import Expectation
from mesh_core.run.validation.outcome import CheckOutcome
from mesh_core.run.validation.suite import SUITES, result_format, suite_outcomes

_SOURCE = "mesh_spark"
# Expectation types GX 1.24's Spark engine cannot run: (why, how to fix). tests/.../test_suite_spark.py checks this
# against GX: every type listed fails on Spark, and every type whose metric has no Spark implementation is listed.
_NO_SPARK_METRIC = "GX 1.24 computes it in pandas only (its metric has no Spark implementation)"
_PYTHON_UDF = ("GX 1.24 computes it in a Python UDF on the executors, which fails unless great_expectations "
               "and pyarrow are installed in every executor's Python")
_NO_SPARK_LIKE = "GX 1.24 evaluates LIKE patterns in SQL engines only, not in Spark"
_ENGINE_TYPES = ("it names a type as one engine spells it (pandas 'int64', Spark 'LongType')",
                 "declare the column's type in the contract instead, which every engine checks")
_IN_CONTRACT = "check it in the contract instead, or keep the product's output in pandas"
NOT_ON_SPARK = {
    "ExpectColumnValuesToBeDateutilParseable": (_NO_SPARK_METRIC, _IN_CONTRACT),
    "ExpectColumnValuesToBeJsonParseable": (_PYTHON_UDF, _IN_CONTRACT),
    "ExpectColumnValuesToMatchJsonSchema": (_PYTHON_UDF, _IN_CONTRACT),
    "ExpectColumnValuesToMatchStrftimeFormat": (_PYTHON_UDF, "declare the column as a timestamp in the contract, or "
                                                + _IN_CONTRACT),
    "ExpectColumnValuesToBeOfType": _ENGINE_TYPES,
    "ExpectColumnValuesToBeInTypeList": _ENGINE_TYPES,
    "ExpectColumnTypeToBe": _ENGINE_TYPES,
    "ExpectColumnValuesToMatchLikePattern": (_NO_SPARK_LIKE, "use ExpectColumnValuesToMatchRegex, which runs in Spark"),
    "ExpectColumnValuesToNotMatchLikePattern": (_NO_SPARK_LIKE, "use ExpectColumnValuesToNotMatchRegex, which runs in Spark"),
    "ExpectColumnValuesToMatchLikePatternList": (_NO_SPARK_LIKE, "use ExpectColumnValuesToMatchRegexList, which runs in Spark"),
    "ExpectColumnValuesToNotMatchLikePatternList": (_NO_SPARK_LIKE,
                                                    "use ExpectColumnValuesToNotMatchRegexList, which runs in Spark"),
    "ExpectQueryResultsToMatchComparison": ("it compares with a query on a second GX data source, which Mesh does not "
                                            "configure in any engine", "compare the two products in a product of their own"),
}


def spark_problems(expectations: Sequence[Expectation]) -> list[str]:
    """What of a suite cannot run in GX's Spark engine: each expectation by its check name and type, why,
    and how to fix it. Cheap: no GX or pyspark import, no data; run at load."""
    problems = []
    for item in expectations:
        if item.type in NOT_ON_SPARK:
            problems.append(f"{item.name} ({item.type}): {NOT_ON_SPARK[item.type][0]}; {NOT_ON_SPARK[item.type][1]}")
        if item.params.get("row_condition") and item.params.get("condition_parser") == "pandas":
            problems.append(
                f"{item.name} ({item.type}): its row_condition {item.params['row_condition']!r} is pandas syntax "
                "(condition_parser='pandas'), which GX 1.24 hands to Spark SQL as it is: it fails there unless it happens to "
                "parse as SQL, and then counts nulls as SQL does, not as pandas; write it in GX's own syntax, which runs in "
                "every engine: condition_parser='great_expectations', "
                "row_condition='col(\"status\") != \"cancelled\"'")
    return problems


def run_suite_spark(suite_name: str, expectations: Sequence[Expectation], df, keys: Sequence[str] = ()) -> list[CheckOutcome]:
    """Validate the Spark DataFrame `df` (Spark Connect or classic) against the suite, in its own Spark
    session: one outcome per expectation, as `run_suite` gives for a pandas DataFrame."""
    from pyspark.sql import DataFrame
    from pyspark.sql.connect.dataframe import DataFrame as ConnectDataFrame

    if not isinstance(df, (DataFrame, ConnectDataFrame)):
        raise TypeError(f"Suite {suite_name}: run_suite_spark validates a pyspark DataFrame, not {type(df).__name__}; "
                        "validate a pandas DataFrame with run_suite, Parquet files with run_suite_duckdb.")
    session = df.sparkSession
    frame = _nan_as_null(df)
    keys = [key for key in keys if key in frame.columns]
    with SUITES.lock:  # one validation at a time per process, as run_suite
        source = SUITES.source(_SOURCE, lambda context: _add_spark(context, session))
        if source._spark is not session:  # GX builds its next engine on the session it is given
            source._spark = session
            source._execution_engine = None
        validation = SUITES.validation(
            suite_name, expectations, source,
            lambda source, name: source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe("output"))
        try:
            result = validation.run(batch_parameters={"dataframe": frame}, result_format=result_format(keys))
        finally:
            SUITES.release()
    return suite_outcomes(suite_name, expectations, result, keys)


def _add_spark(context, session):
    """GX's Spark datasource, added with GX's session lookup answering `session`: `add_spark` looks one up to
    test its connection, and would start a local Spark where `session` is not pyspark's default."""
    from great_expectations.execution_engine import SparkDFExecutionEngine

    lookup = vars(SparkDFExecutionEngine)["get_or_create_spark_session"]
    SparkDFExecutionEngine.get_or_create_spark_session = staticmethod(lambda spark_config=None: session)
    try:
        # persist=False: GX would cache the frame on the cluster and never release it; each metric bundle reads it again
        return context.data_sources.add_spark(_SOURCE, persist=False)
    finally:
        SparkDFExecutionEngine.get_or_create_spark_session = lookup


def _nan_as_null(df):
    """`df` with a float NaN read as missing, as pandas (and so run_suite) and run_suite_duckdb read it; Spark
    counts NaN as a value (not null, and larger than any number)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, FloatType

    floats = [field.name for field in df.schema.fields if isinstance(field.dataType, (DoubleType, FloatType))]
    if not floats:
        return df
    columns = {name: F.col("`" + name.replace("`", "``") + "`") for name in floats}
    return df.withColumns({name: F.when(F.isnan(column), None).otherwise(column) for name, column in columns.items()})
