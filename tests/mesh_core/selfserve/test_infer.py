import pandas as pd
import pytest

from mesh_core.selfserve.infer import contract_source, infer


def test_types_nulls_ranges_categories_and_uniqueness_come_from_the_data():
    inference = infer(pd.DataFrame({"id": [1, 2, 3, 4], "species": ["a", "b", "a", "a"], "mass": [1.5, None, 2.0, 3.0],
                                    "seen": pd.to_datetime(["2024-01-01"] * 4, utc=True)}))
    by_name = {c.name: c for c in inference.columns}
    assert by_name["id"].annotation == "int" and "unique=True" in by_name["id"].field_args
    assert by_name["species"].field_args == ("isin=['a', 'b']",)
    assert by_name["mass"].field_args == ("nullable=True", "ge=1.5", "le=3.0") and not by_name["mass"].required
    assert by_name["seen"].annotation == 'pd.DatetimeTZDtype("ns", "UTC")'
    assert inference.warnings == ["column 'mass' has 1 null(s) of 4: declared nullable"]


def test_names_become_unique_safe_identifiers():
    inference = infer(pd.DataFrame({"x_3": [1], "x": [1], "X": [2], "class": [3], "Body Mass (g)": [4], "Ünï": [5]}))
    assert [c.name for c in inference.columns] == ["x_3", "x", "x_2", "class_", "body_mass_g", "uni"]
    assert inference.renames == {"X": "x_2", "class": "class_", "Body Mass (g)": "body_mass_g", "Ünï": "uni"}
    compile(contract_source("C", inference), "contracts.py", "exec")  # valid Python, whatever the names


def test_what_a_port_cannot_hold_is_refused_or_warned():
    big = infer(pd.DataFrame({"n": pd.Series([2**63 + 5, 1], dtype="uint64")}))
    assert big.columns[0].annotation == "str" and "beyond what a 64-bit integer" in big.warnings[0]
    fine = infer(pd.DataFrame({"t": pd.Series(pd.to_datetime(["2024-01-01 00:00:00.000000001"]))}))
    assert "holds nanoseconds" in fine.warnings[0]
    with pytest.raises(ValueError, match="holds lists or records"):
        infer(pd.DataFrame({"tags": [["a"], ["b"]]}))
    offset = pd.Series(pd.to_datetime(["2024-01-01T00:00:00+02:00"]))
    with pytest.raises(ValueError, match="uses the fixed offset"):
        infer(pd.DataFrame({"t": offset}))


def test_dates_and_timestamps_held_as_text_are_typed_and_marked_for_parsing():
    inference = infer(pd.DataFrame({
        "day": ["2024-01-01", "2024-02-29", None],
        "seen": ["2024-01-01T10:00:00Z", "2024-01-02 11:00:00+02:00", "2024-01-03T00:00Z"],
        "logged": ["2024-01-01 10:00:00", "2024-01-01 10:00:01.5", "2024-03-01"],
        "not_a_day": ["2024-02-30", "2024-01-01", "2024-01-02"],  # no such date: text
        "year": ["2007", "2008", "2009"],  # ISO 8601 allows it, but it is a number: text
        "zone_or_not": ["2024-01-01", "2024-01-01T00:00Z", "2024-01-02"],  # which instant? text
    }))
    by_name = {c.name: (c.annotation, c.from_text) for c in inference.columns}
    assert by_name == {"day": ("pd.Timestamp", True), "seen": ('pd.DatetimeTZDtype("ns", "UTC")', True),
                       "logged": ("pd.Timestamp", True), "not_a_day": ("str", False), "year": ("str", False),
                       "zone_or_not": ("str", False)}
    assert "column 'seen' holds timestamps with a zone: published in UTC" in inference.warnings


def test_descriptions_given_are_kept_and_the_rest_are_todos():
    source = contract_source("C", infer(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})), {"a": "The thing's id."})
    assert "a: Series[int] = pa.Field(ge=1, le=2, unique=True, description=\"The thing's id.\")" in source
    assert "b: Series[str] = pa.Field(isin=['x', 'y'], description='TODO: what this column means.')" in source
