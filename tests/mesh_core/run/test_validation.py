"""The Pandera and GX engines, run for real on small frames."""

import numpy as np
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


class TypedContract(pa.DataFrameModel):
    count: Series[int]
    small: Series[np.int32]
    flag: Series[bool]
    ratio: Series[float]
    at: Series[pd.Timestamp]

    class Config:
        coerce = True
        strict = True


def typed(**changes) -> pd.DataFrame:
    return pd.DataFrame({"count": [1, 2, 3], "small": [7, 8, 9], "flag": [True, False, True], "ratio": [0.5, 1.0, 2.0],
                         "at": pd.to_datetime(["2013-01-01 05:00", "2013-01-02 00:00", "2013-01-03 00:00"])}).assign(**changes)


def test_coercion_changes_a_representation_but_never_a_value():
    # int64 -> int32 where every value fits, "3" -> 3, whole floats -> int, a timestamp's unit: all allowed.
    frame = typed(count=[1.0, 2.0, 3.0], small=np.array([7, 8, 9], dtype="int64"), ratio=["0.5", "1", "2"],
                  at=pd.to_datetime(["2013-01-01 05:00", "2013-01-02 00:00", "2013-01-03 00:00"]).astype("datetime64[us]"))
    outcome, validated = run_contract(TypedContract, frame, min_rows=1)
    assert outcome.passed, outcome.description
    assert validated["count"].tolist() == [1, 2, 3] and validated["small"].dtype == np.int32
    assert validated["ratio"].tolist() == [0.5, 1.0, 2.0]


@pytest.mark.parametrize("column, values, sample", [
    ("count", [39.81, 28.05, 3.0], "39.81 → 39, 28.05 → 28"),                     # a fraction truncated
    ("count", pd.Series([39.81, 28.05, 3], dtype=object), "39.81 → 39, 28.05 → 28"),
    ("ratio", [2**53 + 1, 2**53 + 3, 1], "9007199254740993 → 9007199254740992.0, 9007199254740995 → 9007199254740996.0"),
    ("flag", ["False", "no", "True"], "'False' → True, 'no' → True"),            # any text is True to astype
    ("flag", [2, 5, 1], "2 → True, 5 → True"),
    ("at", pd.to_datetime(["2013-01-01 05:00", "2013-01-02 00:00", "2013-01-03 00:00"]).tz_localize("America/New_York"),
     "2013-01-01 05:00:00-05:00 → 2013-01-01 10:00:00, 2013-01-02 00:00:00-05:00 → 2013-01-02 05:00:00"),
])
def test_a_coercion_that_would_change_values_fails_the_contract_naming_column_count_and_values(column, values, sample):
    outcome, validated = run_contract(TypedContract, typed(**{column: values}), min_rows=1)
    assert validated is None and not outcome.passed and outcome.blocks_publish
    assert f"{column}: coercion to " in outcome.description and f"would change {3 if column == 'at' else 2} value(s)" \
        in outcome.description, outcome.description
    assert sample in outcome.description
    assert outcome.metadata["failure_count"] == (3 if column == "at" else 2)
    assert {r.data["column"] for r in outcome.metadata["failure_cases"].records} == {column}


def test_changed_values_are_reported_beside_the_other_failures_and_a_string_that_does_not_parse():
    frame = typed(count=[39.81, 2.0, 3.0], small=["7", "eight", "9"])
    outcome, _ = run_contract(TypedContract, frame, min_rows=1)
    problems = outcome.metadata["problems"]
    assert "count: coercion to int64 would change 1 value(s) (39.81 → 39)" in problems
    assert "small: 1 value(s) do not convert to int32 ('eight')" in problems
    assert outcome.metadata["failure_count"] == 3  # 'eight' fails both the coercion and the dtype check


def test_an_integer_that_does_not_fit_the_declared_type_fails_with_its_values():
    outcome, _ = run_contract(TypedContract, typed(small=[2**40, 8, 2**41]), min_rows=1)
    assert "small: 2 value(s) do not convert to int32 (1099511627776, 2199023255552)" in outcome.description


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
    assert not between.passed and between.blocks_publish and between.metadata["unexpected_sample"] == "row 2: value=900.0"
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

    monkeypatch.setattr(engine, "SUITES", engine._Suites())
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


class Statuses(pa.DataFrameModel):
    order_id: Series[int] = pa.Field(unique=True)
    status: Series[str] = pa.Field(isin=["open", "shipped"])
    carrier: Series[str] = pa.Field(notin=["unknown"])

    class Config:
        strict = True


def test_a_failing_set_of_allowed_values_names_the_offending_values_and_their_counts(instance):
    import dagster as dg

    from mesh_core import data_product, domain_definitions

    @data_product(domain="shop", description="One row per order.", owners=["team:shop"], contract=Statuses,
                  suite=[Expectation("ExpectColumnValuesToBeInSet", column="status", value_set=["open", "shipped"],
                                     name="known_status", severity="warning")])
    def orders():
        return pd.DataFrame({"order_id": [1, 2, 3, 4, 5, 6], "status": ["open", "lost", "lost", "Open", "shipped", "lost"],
                             "carrier": ["ups", "unknown", "dhl", "ups", "dhl", "dhl"]})

    defs = domain_definitions("shop", [orders])
    run = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance, raise_on_error=False)
    evaluations = {record.event_log_entry.dagster_event.event_specific_data.check_name:
                   record.event_log_entry.dagster_event.event_specific_data
                   for record in instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records}
    contract = evaluations["contract"]
    assert "status: isin(['open', 'shipped']) (4 failures: 'lost' (3 rows), 'Open' (1 row))" in contract.description
    assert "carrier: notin(['unknown']) (1 failures: 'unknown' (1 row))" in contract.description
    assert contract.metadata["offending_values"].value == {"status: isin(['open', 'shipped'])": {"'lost'": 3, "'Open'": 1},
                                                            "carrier: notin(['unknown'])": {"'unknown'": 1}}
    # The suite's checks run on the unvalidated frame too (every problem reported at once): GX says the same.
    assert evaluations["known_status"].description.endswith("4 of 6 rows unexpected ('lost' (3 rows), 'Open' (1 row))")
