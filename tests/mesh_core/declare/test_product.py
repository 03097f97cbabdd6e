import pickle

import pandas as pd
import pandera.pandas as pa
import pytest
from pandera.typing import Series

from mesh_core import Access, DefinitionError, Expectation, ProductRef, data_product


class ThingsContract(pa.DataFrameModel):
    thing_id: Series[int]


SUITE = [Expectation("ExpectColumnValuesToNotBeNull", column="thing_id")]


def declare(**overrides):
    arguments = dict(
        domain="shop", description="One row per thing.", owners=["team:shop"], contract=ThingsContract, suite=SUITE
    )
    arguments.update(overrides)

    def things():
        return pd.DataFrame({"thing_id": [1]})

    return data_product(**arguments)(things)


def test_a_valid_declaration_is_an_immutable_spec():
    product = declare(version="2.1.0", access="internal")
    assert product.ref == ProductRef("shop", "things")
    assert product.access is Access.INTERNAL
    assert product.suite_name == "shop.things"
    with pytest.raises(AttributeError):
        product.owners = ()


def test_missing_owner_names_domain_product_rule_and_fix():
    with pytest.raises(DefinitionError, match=r"\[owners-required\] shop\.things: no owners declared\. Fix: pass owners="):
        declare(owners=[])


@pytest.mark.parametrize("owner", ["gold tier", "team:", "ana@", "team:two words",
                                   "ana@example.c", "ana@example.photography"])  # email-shaped, but Dagster refuses them
def test_invalid_owner_is_rejected_with_the_expected_format(owner):
    with pytest.raises(DefinitionError, match=r"\[owners-valid\] shop\.things: invalid owner .*team:"):
        declare(owners=[owner])


@pytest.mark.parametrize("owner", ["team:shop", "ana@example.com"])
def test_owner_formats_dagster_accepts(owner):
    assert declare(owners=[owner]).owners == (owner,)


def test_missing_description_and_contract_are_reported_together():
    with pytest.raises(DefinitionError) as caught:
        declare(description="  ", contract=None, suite=[])
    rules = {v.rule for v in caught.value.violations}
    assert rules == {"description-required", "contract-required", "suite-required"}
    assert "3 problem(s)" in str(caught.value)


def test_contract_must_be_a_pandera_model():
    with pytest.raises(DefinitionError, match=r"\[contract-required\].*is not a Pandera DataFrameModel"):
        declare(contract=dict)


def test_function_parameters_must_match_declared_inputs():
    with pytest.raises(DefinitionError, match=r"\[inputs-match-parameters\].*do not match inputs \['orders'\]"):
        declare(inputs={"orders": "sales.orders"})


def test_invalid_names_never_load():
    with pytest.raises(DefinitionError, match=r"\[domain-name\].*invalid domain name 'Shop; DROP TABLE x'"):
        declare(domain="Shop; DROP TABLE x")
    with pytest.raises(DefinitionError, match=r"\[product-name\]"):
        declare(name="Things")


def test_bad_input_reference_and_access_are_definition_errors():
    with pytest.raises(DefinitionError, match=r"write it as 'domain.product'"):
        declare(inputs={"x": "orders"})
    with pytest.raises(DefinitionError, match=r"'secret' is not a valid Access"):
        declare(access="secret")


def test_version_must_be_a_valid_tag_value():
    with pytest.raises(DefinitionError, match=r"\[version-format\]"):
        declare(version="1.0 beta")


def test_duplicate_check_names_are_rejected():
    twice = [Expectation("ExpectColumnValuesToNotBeNull", column="thing_id")] * 2
    with pytest.raises(DefinitionError, match=r"\[check-names-unique\]"):
        declare(suite=twice)
    with pytest.raises(DefinitionError, match=r"\[check-names-unique\]"):
        declare(suite=[Expectation("ExpectColumnValuesToNotBeNull", column="thing_id", name="contract")])


def test_unknown_keyword_is_an_error_at_import():
    with pytest.raises(TypeError, match="owner"):
        declare(owner="team:shop")


def test_definition_errors_survive_pickling():
    with pytest.raises(DefinitionError) as caught:
        declare(owners=[])
    clone = pickle.loads(pickle.dumps(caught.value))
    assert clone.violations == caught.value.violations
    assert str(clone) == str(caught.value)
