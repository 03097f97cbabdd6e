"""A suite run on a Spark DataFrame through GX's Spark engine, on a real Spark Connect server, against
the DuckDB run of the same suite on the same rows (which test_suite_sql holds to the pandas run)."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from mesh_core import Expectation
from mesh_core.run.validation.suite_spark import NOT_ON_SPARK, run_suite_spark, spark_problems
from mesh_core.run.validation.suite_sql import run_suite_duckdb, sql_problems
from tests.mesh_core.run.validation.test_suite_sql import CHECKS, READINGS, broken, example_outputs, parquet
from tests.support import REPO, needs_example


@pytest.fixture(scope="module")
def spark(spark_server):
    session = spark_server.session()
    yield session
    session.stop()


def same_checks(outcomes) -> list[tuple]:
    """What a run must agree on whichever engine computed it: the check, its verdict, and what it says."""
    return [(o.check_name, o.passed, o.severity, o.description) for o in outcomes]


def test_a_suite_on_a_spark_connect_dataframe_reports_what_duckdb_reports_on_the_same_rows(spark, tmp_path):
    frame = spark.createDataFrame(READINGS)
    assert type(frame).__module__ == "pyspark.sql.connect.dataframe"
    on_spark = run_suite_spark("lab.readings", CHECKS, frame, keys=["reading_id"])
    in_duckdb = run_suite_duckdb("lab.readings", CHECKS, parquet(READINGS, tmp_path), keys=["reading_id"])
    assert same_checks(on_spark) == same_checks(in_duckdb)
    assert on_spark == in_duckdb  # and every metadata value: the counts, the sample's rows by key
    by_name = {o.check_name: o for o in on_spark}
    assert by_name["column_values_to_be_between__value"].metadata["unexpected_sample"] == "reading_id=3: value=900.0"
    assert by_name["column_values_to_be_in_set__sensor"].description.endswith("1 of 6 rows unexpected ('z' (1 row))")
    assert by_name["row_count"].metadata["observed_value"] == 6 and not by_name["row_count"].passed
    assert by_name["column_values_to_not_be_null__sensor"].blocks_publish is False


def test_a_passing_suite_passes_on_spark_and_a_new_dataframe_is_validated_on_every_run(spark):
    good = spark.createDataFrame(READINGS.iloc[[0, 3]])
    assert [o.passed for o in run_suite_spark("lab.again", CHECKS, good, keys=["reading_id"])] == [True] * len(CHECKS)
    bad = spark.createDataFrame(READINGS)
    assert not all(o.passed for o in run_suite_spark("lab.again", CHECKS, bad, keys=["reading_id"]))
    stricter = [Expectation("ExpectColumnValuesToBeBetween", column="value", min_value=0, max_value=1)]
    assert [o.passed for o in run_suite_spark("lab.again", stricter, good)] == [False]  # a suite declared anew


_NOT_THE_DEFAULT_SESSION = """
import os, sys, traceback
try:
    import pandas as pd
    from pyspark import SparkContext
    from pyspark.sql import SparkSession
    from mesh_core import Expectation
    from mesh_core.run.validation.suite import SUITES
    from mesh_core.run.validation.suite_spark import run_suite_spark

    first = SparkSession.builder.remote(sys.argv[1]).create()  # pyspark's default session, then stopped
    session = SparkSession.builder.remote(sys.argv[1]).create()
    first.stop()
    frame = session.createDataFrame(pd.DataFrame({"reading_id": [1, 2, 3], "value": [1.0, 900.0, 2.0]}))
    check = Expectation("ExpectColumnValuesToBeBetween", column="value", min_value=0, max_value=100)
    [outcome] = run_suite_spark("lab.session", [check], frame, keys=["reading_id"])
    print(outcome.metadata["unexpected_sample"])
    print(SUITES.source("mesh_spark", None).get_execution_engine().spark is session)
    print(SparkContext._active_spark_context, flush=True)
    session.stop()
except BaseException:
    traceback.print_exc()
    sys.stderr.flush()
    os._exit(1)
os._exit(0)  # the Connect client's threads would keep a failed run waiting
"""


def test_the_dataframes_own_session_is_used_when_it_is_not_pysparks_default_session(spark_server):
    """In a process of its own: GX looks up "the" session itself (to test its connection, and for each engine);
    with no live default Connect session it fails there (CONNECT_URL_NOT_SET), with SPARK_REMOTE set it would
    open a session of its own, and with no Connect session made by a builder it starts a local Spark (a JVM).
    Mesh hands GX the DataFrame's own session."""
    ran = subprocess.run([sys.executable, "-c", _NOT_THE_DEFAULT_SESSION, spark_server.url], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.split("\n")[:3] == ["reading_id=2: value=900.0", "True", "None"], ran.stdout


def test_a_float_nan_counts_as_missing_as_it_does_in_duckdb_and_pandas(spark, tmp_path):
    from pyspark.sql import functions as F

    frame = spark.createDataFrame(pd.DataFrame({"reading_id": [1, 2, 3, 4], "value": [1.0, None, 500.0, 2.0]}))
    frame = frame.withColumn("value", F.when(F.col("reading_id") == 4, F.lit(float("nan"))).otherwise(F.col("value")))
    checks = [Expectation("ExpectColumnValuesToNotBeNull", column="value"),
              Expectation("ExpectColumnValuesToBeBetween", column="value", min_value=0, max_value=100)]
    seen = [(o.passed, o.metadata.get("unexpected_count")) for o in run_suite_spark("readings", checks, frame)]
    assert seen == [(False, 2), (False, 1)]  # NaN and null both missing; NaN not "above 100"


def test_a_consumers_row_condition_in_gx_syntax_runs_on_spark_and_pandas_syntax_is_a_problem(spark, tmp_path):
    frame = pd.DataFrame({"id": [1, 2, 3, 4], "status": ["cancelled", "on_time", "delayed", "on_time"],
                          "dep_delay": [None, 1.0, None, 3.0]})
    gx_syntax = Expectation("ExpectColumnValuesToNotBeNull", column="dep_delay", name="departed_have_delay",
                            condition_parser="great_expectations", row_condition='col("status") != "cancelled"')
    assert spark_problems([gx_syntax]) == []
    [on_spark] = run_suite_spark("lab.departed", [gx_syntax], spark.createDataFrame(frame), keys=["id"])
    [in_duckdb] = run_suite_duckdb("lab.departed", [gx_syntax], parquet(frame, tmp_path), keys=["id"])
    assert on_spark == in_duckdb and on_spark.metadata["element_count"] == 3
    assert on_spark.metadata["unexpected_sample"] == "id=3: dep_delay=null"

    pandas_syntax = Expectation("ExpectColumnValuesToNotBeNull", column="dep_delay", name="departed_have_delay",
                                condition_parser="pandas", row_condition='status.isin(["on_time", "delayed"])')
    [problem] = spark_problems([pandas_syntax])
    assert problem.startswith("departed_have_delay (ExpectColumnValuesToNotBeNull): its row_condition "
                              "'status.isin([\"on_time\", \"delayed\"])' is pandas syntax")
    assert problem.endswith("""condition_parser='great_expectations', row_condition='col("status") != "cancelled"'""")
    [refused] = run_suite_spark("lab.departed", [pandas_syntax], spark.createDataFrame(frame))
    assert "could not be evaluated" in refused.description and "status.isin" in refused.description  # what it spares

    spark_syntax = Expectation("ExpectColumnValuesToNotBeNull", column="dep_delay", name="departed_have_delay",
                               condition_parser="spark", row_condition="status != 'cancelled'")
    assert spark_problems([spark_syntax]) == [] and sql_problems([spark_syntax])  # Spark SQL runs here, not in DuckDB
    [spark_sql] = run_suite_spark("lab.departed", [spark_syntax], spark.createDataFrame(frame), keys=["id"])
    assert spark_sql.metadata["unexpected_count"] == 1 and spark_sql.metadata["element_count"] == 3


def test_spark_problems_name_each_expectation_that_cannot_run_on_spark_and_why():
    suite = [Expectation("ExpectColumnValuesToMatchLikePattern", column="code", like_pattern="A%"),
             Expectation("ExpectColumnValuesToBeJsonParseable", column="payload"),
             Expectation("ExpectColumnValuesToMatchRegex", column="code", regex="^[A-Z]{3}$"),  # runs on Spark
             Expectation("ExpectColumnValuesToBeIncreasing", column="at"),  # likewise
             *CHECKS]
    problems = spark_problems(suite)
    assert len(problems) == 2
    assert problems[0].startswith("column_values_to_match_like_pattern__code (ExpectColumnValuesToMatchLikePattern): ")
    assert problems[0].endswith("use ExpectColumnValuesToMatchRegex, which runs in Spark")
    assert problems[1].startswith("column_values_to_be_json_parseable__payload (ExpectColumnValuesToBeJsonParseable): ")
    assert "Python UDF on the executors" in problems[1]
    assert spark_problems(CHECKS) == []


def test_every_gx_expectation_whose_metric_has_no_spark_implementation_is_listed():
    # Guards NOT_ON_SPARK against a GX upgrade: what GX's own registry says Spark cannot compute.
    import great_expectations as gx
    from great_expectations.expectations.registry import _registered_metrics

    engine = "SparkDFExecutionEngine"
    not_on_spark = set()
    for name in dir(gx.expectations):
        cls = getattr(gx.expectations, name)
        metrics = set(getattr(cls, "metric_dependencies", ()) or ())
        if getattr(cls, "map_metric", None):
            metrics.add(f"{cls.map_metric}.condition")
        if any(engine not in _registered_metrics.get(m, {}).get("providers", {engine: 0}) for m in metrics):
            not_on_spark.add(name)
    assert not_on_spark, "GX's metric registry changed shape: update this test"
    assert not_on_spark <= set(NOT_ON_SPARK), sorted(not_on_spark - set(NOT_ON_SPARK))


@pytest.mark.parametrize("item", [
    Expectation("ExpectColumnValuesToBeDateutilParseable", column="sensor"),
    Expectation("ExpectColumnValuesToMatchLikePattern", column="sensor", like_pattern="a%"),
    Expectation("ExpectColumnValuesToNotMatchLikePatternList", column="sensor", like_pattern_list=["z%"]),
], ids=lambda item: item.type)
def test_a_listed_expectation_cannot_be_evaluated_on_spark(spark, item):
    assert spark_problems([item])
    [on_spark] = run_suite_spark("lab.listed", [item], spark.createDataFrame(READINGS))
    assert not on_spark.passed and "could not be evaluated: No provider found" in on_spark.description


def test_a_type_named_as_pandas_spells_it_fails_on_spark(spark):
    pandas_name = Expectation("ExpectColumnValuesToBeOfType", column="reading_id", type_="int64")
    assert spark_problems([pandas_name])
    [on_spark] = run_suite_spark("lab.types", [pandas_name], spark.createDataFrame(READINGS))
    assert not on_spark.passed  # Spark calls it LongType


def test_a_pandas_dataframe_is_refused_with_the_runner_to_use():
    with pytest.raises(TypeError, match="Suite lab.pandas: run_suite_spark validates a pyspark DataFrame, not DataFrame; "
                                        "validate a pandas DataFrame with run_suite"):
        run_suite_spark("lab.pandas", CHECKS, READINGS)


def test_importing_the_spark_runner_does_not_import_great_expectations():
    # (pyspark itself is imported by pandera's own import when it is installed: not this module's doing)
    code = "import sys, mesh_core.run.validation.suite_spark; print([m for m in sys.modules if m.startswith('great_expectations')])"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout


# --- parity over the example mesh's own suites and data ------------------------------------------------------

_SAMPLE_ROWS = 5_000  # rows of each product validated: the verdicts and texts must agree, not the throughput


@needs_example()
def test_every_example_suite_gives_the_same_verdicts_and_texts_on_spark_as_in_duckdb(spark, tmp_path):
    from mesh_core.declare.contract import key_columns

    compared, differences = [], []
    for ref, (product, output) in example_outputs().items():
        suite = [*product.suite, *(item for _, item in product.relied_on)]
        assert not spark_problems(suite), ref
        portable = [item for item in suite if not sql_problems([item])]  # what DuckDB can run to compare with
        sample = output.head(_SAMPLE_ROWS).reset_index(drop=True)
        keys = key_columns(product.contract)
        for case, frame in (("good", sample), ("bad", broken(sample, suite))):
            on_spark = run_suite_spark(product.suite_name, portable, spark.createDataFrame(frame), keys)
            in_duckdb = run_suite_duckdb(product.suite_name, portable, parquet(frame, tmp_path / ref / case), keys)
            for o, s, d in zip(on_spark, same_checks(on_spark), same_checks(in_duckdb), strict=True):
                compared.append((ref, case, o.check_name, o.passed, o.metadata.get("unexpected_count", o.metadata.get("observed_value"))))
                if s != d:
                    differences.append((ref, case, s, d))
    for row in compared:
        print(*row, sep=" | ")
    assert not differences, differences
    passing = {(ref, name) for ref, case, name, passed, _ in compared if case == "good" and passed}
    failing_when_broken = {(ref, name) for ref, case, name, passed, _ in compared if case == "bad" and not passed}
    assert passing <= failing_when_broken, f"not broken by broken(): {sorted(passing - failing_when_broken)}"
    consumer = "insights__delay_vs_weather__flights__departed_have_delay"  # the consumer's, with its row_condition
    assert ("operations.flights", consumer) in passing & failing_when_broken
