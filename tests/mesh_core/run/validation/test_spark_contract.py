"""A pandas contract run on a real Spark Connect server with Pandera's pyspark backend: the same
outcome as the Polars path on the same rows."""

from __future__ import annotations

import inspect
from typing import Optional

import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.parquet as pq
import pytest
from pandera.typing import Series

from mesh_core.run.validation.engine_contract import conform, run_contract_polars
from mesh_core.run.validation.spark_contract import _SPARK_CHECKS, engine_problems_spark, run_contract_spark
from tests.mesh_core.run.validation.test_engine_contract import (
    PandasOnlyContract,
    ReadingsContract,
    broken_frames,
    example_contracts,
    good_frame,
)
from tests.spark_server import java_missing
from tests.support import needs_example

pytestmark = pytest.mark.skipif(java_missing() is not None, reason=str(java_missing()))


class NaiveStamps(pa.DataFrameModel):
    at: Series[pd.Timestamp] = pa.Field(ge=pd.Timestamp("2013-01-01"))


@pytest.fixture(scope="module")
def spark(spark_server):
    session = spark_server.session()
    yield session
    session.stop()


def outcomes(contract, frame: pd.DataFrame, spark, tmp_path, *, min_rows: int = 1, conformed: bool = True):
    """Both engines on the same rows, staged as a run stages them: Parquet (timestamps in microseconds),
    read by Polars and by the Spark server."""
    table = pyarrow.Table.from_pandas(frame, preserve_index=False)
    if conformed:
        table = conform(table.to_reader(max_chunksize=10), contract, "d.p").read_all()
    path = tmp_path / f"part-{len(list(tmp_path.iterdir()))}.parquet"
    pq.write_table(table, path, coerce_timestamps="us")
    return (run_contract_polars(contract, [str(path)], min_rows=min_rows),
            run_contract_spark(contract, spark.read.parquet(str(path)), min_rows=min_rows))


def summary(outcome) -> dict:
    return {"passed": outcome.passed, "failures": outcome.metadata.get("failure_count", 0),
            "problems": sorted(outcome.metadata.get("problems", "").splitlines()),
            "offending": getattr(outcome.metadata.get("offending_values"), "data", None),
            "rows": outcome.metadata["dagster/row_count"]}


def test_engine_problems_spark_name_each_rule_spark_cannot_run_and_the_fix():
    problems = engine_problems_spark(PandasOnlyContract)
    assert len(problems) == 3, problems
    assert any("PandasOnlyContract.amount: check 'whole' is written for pandas" in p for p in problems)
    assert any("PandasOnlyContract: dataframe check 'balanced' cannot run in Spark" in p for p in problems)
    assert any("PandasOnlyContract.anything: type object has no Spark equivalent" in p for p in problems)
    # Pandera's pyspark checks take TimestampType and DateType only, not a timestamp without a zone
    assert engine_problems_spark(NaiveStamps) == [
        "NaiveStamps.at: check 'greater_than_or_equal_to(2013-01-01 00:00:00)' does not run on Spark type "
        "timestamp_ntz in Pandera's pyspark backend (it takes bigint, int, smallint, tinyint, double, float, "
        "decimal, date, timestamp); declare the column with a time zone (pd.DatetimeTZDtype('ns', 'UTC')), "
        "or write it as an Expectation in the product's suite"]
    assert engine_problems_spark(ReadingsContract) == []


def test_the_checks_spark_runs_are_pandera_pyspark_builtins():
    from pandera.backends.pyspark import builtin_checks

    defined = {name for name, fn in vars(builtin_checks).items()
               if inspect.isfunction(fn) and fn.__module__ == builtin_checks.__name__}
    assert set(_SPARK_CHECKS) == defined


def test_a_contract_spark_cannot_run_fails_closed_naming_why(spark):
    frame = spark.createDataFrame(pd.DataFrame({"code": ["AB"], "amount": [1.5], "anything": ["x"]}))
    outcome = run_contract_spark(PandasOnlyContract, frame, min_rows=1)
    assert not outcome.passed and outcome.blocks_publish
    assert outcome.metadata["problems"] == "\n".join(engine_problems_spark(PandasOnlyContract))


def test_run_contract_spark_reads_like_run_contract_polars(spark, tmp_path):
    frame = pd.DataFrame({
        "sensor": ["a", "z", "z", "a", "a"], "value": [1.0, -1.0, None, 2.0, 3.0], "count": [1, 0, 2, 3, 4],
        "at": pd.to_datetime([0, 1, 2, 3, 3], unit="h", utc=True), "extra": [1, 2, 3, 4, 5],
    })
    polars, spark_outcome = outcomes(ReadingsContract, frame, spark, tmp_path, min_rows=6)
    assert summary(spark_outcome) == summary(polars)
    assert spark_outcome.description == polars.description
    assert set(spark_outcome.metadata) == set(polars.metadata)
    assert summary(spark_outcome)["problems"] == [
        "5 rows, fewer than the 6 the product requires (declare min_rows=0 to allow an empty product)",
        "ReadingsContract: column_in_schema (1 failures)",
        "at: multiple_fields_uniqueness (2 failures)",
        "count: greater_than_or_equal_to(1) (1 failures)",
        "sensor: isin(['a', 'b']) (2 failures: 'z' (2 rows))",
        "sensor: multiple_fields_uniqueness (2 failures)",
        "value: greater_than_or_equal_to(0) (1 failures)",
    ]
    cases = {(r.data["column"], r.data["check"], r.data["failure_case"]) for r in spark_outcome.metadata["failure_cases"].records}
    assert ("sensor", "isin(['a', 'b'])", "z") in cases and ("value", "greater_than_or_equal_to(0)", "-1.0") in cases


@pytest.mark.parametrize("domain", [pytest.param(d, marks=needs_example(d)) for d in ("insights", "operations")])
def test_spark_and_polars_agree_on_the_example_contracts_with_good_and_broken_data(domain, spark, tmp_path):
    table = []
    for contract in example_contracts(domain):
        assert engine_problems_spark(contract) == [], contract.__name__
        good = good_frame(contract)
        polars, spark_outcome = outcomes(contract, good, spark, tmp_path)
        assert polars.passed and summary(spark_outcome) == summary(polars), (contract.__name__, summary(spark_outcome))
        for rule, frame in broken_frames(contract, good).items():
            min_rows = len(frame) + 1 if rule == "too few rows" else 1
            polars, spark_outcome = outcomes(contract, frame, spark, tmp_path, min_rows=min_rows)
            assert not polars.passed, (contract.__name__, rule)
            assert summary(spark_outcome) == summary(polars), (contract.__name__, rule)
            table.append(f"{contract.__name__} x {rule}: {summary(spark_outcome)['problems']}")
    print("\n" + "\n".join(table))


def test_garbage_empty_frame_all_null_column_and_wrong_types(spark, tmp_path):
    at = pd.to_datetime([0, 1, 2], unit="h", utc=True)
    empty = pd.DataFrame({"sensor": pd.Series([], dtype=object), "value": pd.Series([], dtype=float),
                          "count": pd.Series([], dtype="int64"), "at": pd.Series([], dtype="datetime64[ns, UTC]")})
    polars, spark_outcome = outcomes(ReadingsContract, empty, spark, tmp_path, min_rows=1)
    assert summary(spark_outcome) == summary(polars)
    assert summary(spark_outcome)["problems"] == [
        "0 rows, fewer than the 1 the product requires (declare min_rows=0 to allow an empty product)"]
    assert run_contract_spark(ReadingsContract, spark.read.parquet(str(next(tmp_path.iterdir()))), min_rows=0).passed

    all_null = pd.DataFrame({"sensor": [None, None, None], "value": [None, None, None], "count": [None, None, None], "at": at})
    polars, spark_outcome = outcomes(ReadingsContract, all_null, spark, tmp_path, conformed=False)
    assert summary(spark_outcome) == summary(polars)
    assert "count: not_nullable (3 failures)" in summary(spark_outcome)["problems"]

    # text where the contract (which coerces) wants integers: the values that do not convert fail, and,
    # cast to null, count as nulls too (as on Polars)
    wrong = pd.DataFrame({"sensor": ["a", "b", "a"], "value": [1.0, 2.0, 3.0], "count": ["1", "x", "2.5"], "at": at})
    polars, spark_outcome = outcomes(ReadingsContract, wrong, spark, tmp_path, conformed=False)
    assert summary(spark_outcome) == summary(polars)
    assert summary(spark_outcome)["problems"] == ["count: 2 value(s) do not convert to int64 ('x', '2.5')",
                                                  "count: not_nullable (2 failures)"]

    class Exact(pa.DataFrameModel):  # no coercion: a wrong type is the failure, named declared vs found
        count: Series[int] = pa.Field(ge=0)
        label: Series[str] = pa.Field(nullable=True)

    frame = spark.createDataFrame(pd.DataFrame({"count": ["1", "2"]}))
    outcome = run_contract_spark(Exact, frame, min_rows=1)
    assert outcome.metadata["problems"].splitlines() == ["Exact: column_in_dataframe (1 failures)",
                                                         "count: expected bigint, got string"]


def test_strict_filter_drops_unknown_columns_and_a_missing_optional_column_passes(spark, tmp_path):
    class Loose(pa.DataFrameModel):
        code: Series[str] = pa.Field(str_length=2, unique=True)
        note: Optional[Series[str]] = pa.Field(nullable=True)

        class Config:
            strict = "filter"

    frame = pd.DataFrame({"code": ["AB", "CD", "AB", "XYZ"], "extra": [1, 2, 3, 4]})
    polars, outcome = outcomes(Loose, frame, spark, tmp_path, conformed=False)
    assert summary(outcome) == summary(polars)
    assert outcome.metadata["problems"].splitlines() == ["code: field_uniqueness (2 failures)",
                                                         "code: str_length(2) (1 failures)"]
    assert outcome.metadata["failure_count"] == 3
    assert run_contract_spark(Loose, spark.createDataFrame(frame.drop_duplicates().head(2)), min_rows=1).passed
