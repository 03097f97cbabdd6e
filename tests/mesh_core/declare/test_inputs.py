import pytest

from mesh_core import DefinitionError, Expectation, Input, PreviousMajor, ProductRef, data_product
from fixture_domains._contract import SUITE, ItemsContract, items


def test_an_input_is_a_reference_optionally_pinned_to_a_major():
    assert Input("operations.flights") == Input(ProductRef("operations", "flights"))
    pinned = Input("operations.flights@1")
    assert (pinned.ref, pinned.major, str(pinned)) == (ProductRef("operations", "flights"), 1, "operations.flights@1")
    assert Input("operations.flights", major=2).major == 2


@pytest.mark.parametrize("bad, message", [
    ("operations.flights@one", "write 'domain.product@<major>'"),
    ("operations.flights@", "write 'domain.product@<major>'"),
    ("operations@1", "write it as 'domain.product'"),
])
def test_a_malformed_pin_says_how_to_write_it(bad, message):
    with pytest.raises(ValueError, match=message):
        Input(bad)


def test_two_different_pins_or_bad_columns_are_refused():
    with pytest.raises(ValueError, match="pins major 1 and major=2"):
        Input("operations.flights@1", major=2)
    with pytest.raises(ValueError, match=r"Invalid column name\(s\) \['Dep Delay'\]"):
        Input("operations.flights", columns=["Dep Delay"])
    with pytest.raises(ValueError, match="name a column twice"):
        Input("operations.flights", columns=["carrier", "carrier"])
    twice = Expectation("ExpectColumnValuesToNotBeNull", column="a")
    with pytest.raises(ValueError, match="use a check name twice"):
        Input("operations.flights", columns=["a"], expectations=[twice, twice])


def test_what_a_consumer_relies_on_includes_its_expectations_columns():
    spec = Input("operations.flights", columns=["carrier"], expectations=[
        Expectation("ExpectColumnValuesToNotBeNull", column="dep_delay"),
        Expectation("ExpectColumnPairValuesAToBeGreaterThanB", column_A="arr_delay", column_B="dep_delay",
                    row_condition='status != "cancelled" and origin.str.len() == 3', condition_parser="pandas"),
        Expectation("ExpectColumnValuesToNotBeNull", column="tailnum", row_condition='col("carrier_code") == "UA"',
                    condition_parser="great_expectations"),
    ])
    assert spec.relied_on() == {"carrier", "dep_delay", "arr_delay", "status", "origin", "tailnum", "carrier_code"}
    assert Input("operations.flights").relied_on() is None  # not said: every column
    assert Input.from_dict(spec.as_dict()) == spec
    assert Input.from_dict("operations.flights@3") == Input("operations.flights@3")


def test_a_bad_input_fails_the_declaration_naming_the_product():
    with pytest.raises(DefinitionError, match=r"\[inputs-and-access\] shop\.copy: Invalid pinned reference"):
        data_product(domain="shop", name="copy", description="One row per item.", owners=["team:shop"],
                     contract=ItemsContract, suite=SUITE, inputs={"old": "shop.items@x"})(lambda old: old)


def test_previous_majors_must_be_older_than_the_current_one():
    old = PreviousMajor("2.0.0", contract=ItemsContract, until="2099-01-01", adapt=lambda frame: frame)
    with pytest.raises(DefinitionError, match=r"\[previous-majors-valid\] shop\.items: publishes major\(s\) \[2\] beside "
                                              r"version '2\.1\.0': each must be older"):
        data_product(domain="shop", name="items", description="One row per item.", owners=["team:shop"],
                     contract=ItemsContract, suite=SUITE, version="2.1.0", previous_majors=[old])(items)


@pytest.mark.parametrize("kwargs, message", [
    ({"version": "one", "until": "2099-01-01"}, "must start with its major number"),
    ({"version": "1.0.0", "until": "soon"}, "is not a date 'YYYY-MM-DD'"),
    ({"version": "1.0.0", "until": "2099-01-01", "contract": dict}, "is not a Pandera DataFrameModel"),
    ({"version": "1.0.0", "until": "2099-01-01", "adapt": "rename"}, "adapt must be a function"),
])
def test_a_previous_major_is_validated_when_declared(kwargs, message):
    arguments = {"contract": ItemsContract, "adapt": lambda frame: frame, **kwargs}
    with pytest.raises(ValueError, match=message):
        PreviousMajor(arguments.pop("version"), **arguments)
