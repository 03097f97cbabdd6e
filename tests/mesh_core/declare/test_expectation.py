import pytest

from mesh_core import Expectation, Severity


def test_default_check_name_comes_from_type_and_column():
    item = Expectation("ExpectColumnValuesToNotBeNull", column="arr_time")
    assert item.name == "column_values_to_not_be_null__arr_time"
    assert item.severity is Severity.ERROR
    assert item.gx_kwargs == {"column": "arr_time"}


def test_parameters_and_severity_are_kept():
    item = Expectation("ExpectColumnValuesToBeBetween", column="x", min_value=0, max_value=5, severity="warning", name="x_range")
    assert item.gx_kwargs == {"column": "x", "max_value": 5, "min_value": 0}
    assert item.severity is Severity.WARNING
    assert item.summary() == "ExpectColumnValuesToBeBetween(max_value=5, min_value=0, column='x') [warning]"


def test_expectations_are_immutable_and_hashable():
    item = Expectation("ExpectColumnValuesToBeUnique", column="id")
    with pytest.raises(AttributeError):
        item.column = "other"
    assert len({item, Expectation("ExpectColumnValuesToBeUnique", column="id")}) == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"type": "expect_column_values_to_not_be_null"}, "GX 1.x expectation class name"),
        ({"type": "ExpectColumnValuesToNotBeNull", "severity": "fatal"}, "Invalid severity 'fatal'"),
        ({"type": "ExpectColumnValuesToNotBeNull", "name": "has space"}, "Invalid check name"),
        ({"type": "ExpectColumnValuesToBeInSet", "value_set": {1, 2}}, "plain JSON values"),
    ],
)
def test_invalid_declarations_fail_at_import(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Expectation(**kwargs)
