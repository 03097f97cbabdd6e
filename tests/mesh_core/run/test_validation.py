"""The Pandera and GX engines, run for real on small frames."""

import pandas as pd
import pandera.pandas as pa
import pytest
from pandera.typing import Series

from mesh_core import Expectation, Severity
from mesh_core.run.validation.contract import run_contract
from mesh_core.run.validation.suite import build_gx_expectations, run_suite


class ReadingsContract(pa.DataFrameModel):
    sensor: Series[str] = pa.Field(isin=["a", "b"])
    value: Series[float] = pa.Field(ge=0)

    class Config:
        coerce = True
        strict = True


def test_contract_collects_every_failure_with_cases():
    frame = pd.DataFrame({"sensor": ["a", "z", "y"], "value": [1.0, -1.0, 2.0]})
    outcome, validated = run_contract(ReadingsContract, frame, min_rows=1)
    assert validated is None and not outcome.passed and outcome.blocks_publish
    assert outcome.metadata["failure_count"] == 3
    cases = outcome.metadata["failure_cases"].records
    assert {(r.data["column"], r.data["failure_case"]) for r in cases} == {("sensor", "z"), ("sensor", "y"), ("value", "-1.0")}


def test_contract_orders_columns_and_coerces_types():
    frame = pd.DataFrame({"value": ["1.5", "2"], "sensor": ["b", "a"]})
    outcome, validated = run_contract(ReadingsContract, frame, min_rows=1)
    assert outcome.passed
    assert list(validated.columns) == ["sensor", "value"]
    assert validated["value"].tolist() == [1.5, 2.0]


def test_contract_rejects_extra_columns_and_too_few_rows():
    outcome, _ = run_contract(ReadingsContract, pd.DataFrame({"sensor": ["a"], "value": [1.0], "x": [0]}), min_rows=1)
    assert not outcome.passed and "column_in_schema" in outcome.metadata["problems"]
    empty = pd.DataFrame({"sensor": pd.Series([], dtype=str), "value": pd.Series([], dtype=float)})
    outcome, _ = run_contract(ReadingsContract, empty, min_rows=1)
    assert not outcome.passed and "0 rows, fewer than the 1" in outcome.description
    assert run_contract(ReadingsContract, empty, min_rows=0)[0].passed


def test_suite_reports_one_outcome_per_expectation_with_severity():
    frame = pd.DataFrame({"sensor": ["a", None, "b", "b"], "value": [1.0, 5.0, 900.0, 2.0]})
    outcomes = {
        o.check_name: o
        for o in run_suite(
            "lab.readings",
            [
                Expectation("ExpectColumnValuesToNotBeNull", column="sensor", severity="warning"),
                Expectation("ExpectColumnValuesToBeBetween", column="value", min_value=0, max_value=100),
                Expectation("ExpectColumnValuesToBeUnique", column="value", name="unique_values"),
            ],
            frame,
        )
    }
    assert set(outcomes) == {"column_values_to_not_be_null__sensor", "column_values_to_be_between__value", "unique_values"}
    null_check = outcomes["column_values_to_not_be_null__sensor"]
    assert (null_check.passed, null_check.severity, null_check.blocks_publish) == (False, Severity.WARNING, False)
    assert null_check.metadata["unexpected_count"] == 1
    between = outcomes["column_values_to_be_between__value"]
    assert not between.passed and between.blocks_publish and between.metadata["unexpected_sample"] == "900.0"
    assert outcomes["unique_values"].passed


def test_suite_reports_a_missing_column_as_a_failed_check():
    [outcome] = run_suite("lab.readings", [Expectation("ExpectColumnValuesToNotBeNull", column="nope")], pd.DataFrame({"a": [1]}))
    assert not outcome.passed and 'column "nope"' in outcome.metadata["exception"]


def test_unknown_expectation_types_fail_loudly():
    with pytest.raises(ValueError, match="ExpectColumnToBeMagic is not a Great Expectations"):
        build_gx_expectations([Expectation("ExpectColumnToBeMagic", column="a")])


def test_one_gx_context_serves_every_suite_and_keeps_no_validated_frame(monkeypatch):
    import gc
    import weakref

    import great_expectations as gx

    from mesh_core.run.validation import suite as engine

    monkeypatch.setattr(engine, "_SUITES", engine._Suites())
    contexts = []
    get_context = gx.get_context
    monkeypatch.setattr(gx, "get_context", lambda **kw: contexts.append(kw) or get_context(**kw))
    checks = [Expectation("ExpectColumnValuesToNotBeNull", column="a")]
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    alive = weakref.ref(frame)
    assert [o.passed for o in run_suite("lab.first", checks, frame)] == [True]
    assert [o.passed for o in run_suite("lab.second", checks, pd.DataFrame({"a": [None]}))] == [False]
    # The same suite declared anew (a reloaded product) is rebuilt, not served from the old one.
    between = [Expectation("ExpectColumnValuesToBeBetween", column="a", min_value=0, max_value=1)]
    assert [o.passed for o in run_suite("lab.first", between, pd.DataFrame({"a": [5.0]}))] == [False]
    assert len(contexts) == 1
    del frame
    gc.collect()
    assert alive() is None  # GX's batch cache let go of it
