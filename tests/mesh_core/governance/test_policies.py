import sys
import types

import pandera.pandas as pa
import pytest
from pandera.typing import Series

from fixture_domains._contract import SUITE, ItemsContract, items
from mesh_core import DefinitionError, Governance, Level, Policy, data_product, domain_definitions

DEFAULTS = Governance()


class LooseContract(pa.DataFrameModel):
    item_id: Series[int] = pa.Field(description="The item.")
    label: Series[str] = pa.Field(description="Its label.")


class CustomersContract(pa.DataFrameModel):
    item_id: Series[int] = pa.Field(description="The customer.")
    label: Series[str] = pa.Field(description="Their email.", metadata={"classification": "personal"})

    class Config:
        strict = True


class MaskedCustomersContract(CustomersContract):
    label: Series[str] = pa.Field(description="SHA-256 of their email.",
                                  metadata={"classification": "personal", "masking": "sha256"})


def product(**extra):
    declared = dict(domain="store", name="stock", description="One row per item in stock.", owners=["team:store"],
                    contract=ItemsContract, suite=SUITE)
    declared.update(extra)
    return data_product(**declared)(lambda: items())


def findings(defs):
    return [(f["rule"], f["level"], f["waived_because"]) for f in defs.metadata["mesh/governance"].value]


@pytest.mark.parametrize("extra, teams, expected", [
    (dict(description="Items in stock, counted nightly."), (),
     "[grain-in-description] store.stock: the description does not state the grain: 'Items in stock, counted nightly.'... "
     "Fix: start the description with 'One row per <thing> ...'."),
    (dict(contract=LooseContract), (),
     "[public-contracts-strict] store.stock: public, but LooseContract is not strict. "
     "Fix: set `strict = True` in LooseContract.Config, or make the product internal."),
    (dict(contract=CustomersContract), (),
     "[personal-data-protected] store.stock: column 'label' is classified personal data and is published unmasked."),
    (dict(owners=["team:warehouse", "ana@example.com"]), ("team:store",),
     "[owners-in-domain-teams] store.stock: owners ['team:warehouse', 'ana@example.com'] do not match the 'store' "
     "domain's teams ['team:store'] (team:warehouse is not one of them)."),
])
def test_each_error_policy_stops_the_load_naming_domain_product_rule_and_fix(extra, teams, expected):
    with pytest.raises(DefinitionError) as caught:
        domain_definitions("store", [product(**extra)], teams=teams, governance=DEFAULTS)
    assert expected in str(caught.value)


def test_the_right_products_pass_every_policy():
    defs = domain_definitions("store", [product(contract=MaskedCustomersContract), product(name="shelf", access="internal",
                                        contract=CustomersContract)], teams=["team:store"], governance=DEFAULTS)
    assert findings(defs) == []


def test_a_warning_policy_is_reported_and_the_location_loads():
    defs = domain_definitions("store", [product()], governance=DEFAULTS)  # ItemsContract has no descriptions
    assert findings(defs) == [("column-descriptions", "warn", None)]


def test_levels_come_from_the_mesh_wide_file(tmp_path):
    config = tmp_path / "governance.yaml"
    config.write_text("policies:\n  column-descriptions: error\n  grain-in-description: 'off'\n")
    governance = Governance.read(config)
    with pytest.raises(DefinitionError, match=r"\[column-descriptions\] store\.stock: contract columns without a description: item_id, label"):
        domain_definitions("store", [product()], governance=governance)
    config.write_text("policies:\n  column-descriptions: 'off'\n  grain-in-description: 'off'\n")
    defs = domain_definitions("store", [product(description="Stock.")], governance=Governance.read(config))
    assert findings(defs) == []


def test_a_bad_governance_file_names_the_file_and_every_problem(tmp_path):
    config = tmp_path / "governance.yaml"
    config.write_text("policies:\n  colum-descriptions: error\n  grain-in-description: fatal\n")
    with pytest.raises(DefinitionError) as caught:
        Governance.read(config)
    message = str(caught.value)
    assert f"{config} unknown policy 'colum-descriptions'" in message and "has level 'fatal'; use error, warn or off" in message
    config.write_text("policies: [\n")
    with pytest.raises(DefinitionError, match=r"governance\.yaml cannot be read"):
        Governance.read(config)


def test_a_domain_sets_only_the_levels_the_mesh_lets_it(tmp_path):
    config = tmp_path / "governance.yaml"
    config.write_text("domains_may_override: [column-descriptions]\n")
    governance = Governance.read(config)
    defs = domain_definitions("store", [product()], governance=governance, levels={"column-descriptions": "off"})
    assert findings(defs) == []
    with pytest.raises(DefinitionError, match=r"\[override-allowed\] store: sets policy 'grain-in-description' to 'off', "
                                              r"which the mesh-wide governance does not let a domain change"):
        domain_definitions("store", [product()], governance=governance, levels={"grain-in-description": "off"})


def test_a_waiver_needs_a_written_reason_and_is_reported():
    waived = product(description="Stock levels.", waivers={"grain-in-description": "a legacy feed; grain in docs/stock.md"})
    defs = domain_definitions("store", [waived], governance=DEFAULTS, levels=None)
    assert ("grain-in-description", "error", "a legacy feed; grain in docs/stock.md") in findings(defs)
    with pytest.raises(DefinitionError, match=r"\[waivers-have-reasons\] store\.stock: waives 'grain-in-description' without a reason"):
        domain_definitions("store", [product(waivers={"grain-in-description": " "})], governance=DEFAULTS)
    with pytest.raises(DefinitionError, match=r"\[waivers-name-policies\] store\.stock: waives 'no-such-rule', which is not a policy"):
        domain_definitions("store", [product(waivers={"no-such-rule": "because"})], governance=DEFAULTS)


def test_a_domain_adds_its_own_policy_in_a_few_lines():
    class StockHasNoPrices(Policy):
        """Prices belong to the pricing domain, not to stock."""

        def check(self, product, domain=None):
            if "price" in product.contract.to_schema().columns:
                yield self.violation(product, "publishes a price column.", "read prices from pricing.prices.")

    class PricedContract(ItemsContract):
        price: Series[float]

    with pytest.raises(DefinitionError, match=r"\[stock-has-no-prices\] store\.stock: publishes a price column"):
        domain_definitions("store", [product(contract=PricedContract)], governance=DEFAULTS, policies=[StockHasNoPrices()])
    assert StockHasNoPrices.default is Level.ERROR


def test_the_governance_file_is_found_beside_the_workspace(tmp_path, monkeypatch):
    (tmp_path / "workspace.yaml").write_text("load_from: []\n")
    (tmp_path / "governance.yaml").write_text("policies:\n  column-descriptions: error\n")
    package = tmp_path / "domains" / "store"
    package.mkdir(parents=True)
    module = types.ModuleType("mesh_test_store_definitions")
    module.__file__ = str(package / "definitions.py")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    governance = Governance.for_module(module.__name__)
    assert governance.source == tmp_path / "governance.yaml"
    assert governance.levels == {"column-descriptions": Level.ERROR}
    assert Governance.for_module("no_such_module") == Governance()  # no file to start from: the defaults


def test_yaml_quirks_and_shapes_in_the_governance_file(tmp_path):
    config = tmp_path / "governance.yaml"
    config.write_text("policies:\n  grain-in-description: off\n")  # YAML reads a bare off as false
    assert Governance.read(config).levels == {"grain-in-description": Level.OFF}
    for text in ("policies:\n  - grain-in-description\n", "policies: error\n", "domains_may_override: column-descriptions\n"):
        config.write_text(text)
        with pytest.raises(DefinitionError, match=r"needs 'policies' as a mapping \(policy: level\) and 'domains_may_override' as a list"):
            Governance.read(config)


def test_a_single_team_may_be_given_as_a_string_and_levels_name_known_policies():
    assert findings(domain_definitions("store", [product(contract=MaskedCustomersContract)], teams="team:store",
                                       governance=DEFAULTS)) == []
    with pytest.raises(DefinitionError, match=r"\[policy-levels-valid\] store: sets a level for unknown policy 'nosuch'"):
        domain_definitions("store", [product()], governance=DEFAULTS, levels={"nosuch": "off"})


def test_only_a_known_masking_method_counts_as_masked():
    class NotReallyMasked(CustomersContract):
        label: Series[str] = pa.Field(description="Email.", metadata={"classification": "personal", "masking": "none"})

    with pytest.raises(DefinitionError, match=r"\[personal-data-protected\] store\.stock: column 'label' is classified personal"):
        domain_definitions("store", [product(contract=NotReallyMasked)], governance=DEFAULTS)


class ScaffoldedContract(pa.DataFrameModel):
    item_id: Series[int] = pa.Field(description="The item.")
    label: Series[str] = pa.Field(description="TODO: what this column means (from 'Label').")

    class Config:
        strict = True


def test_the_scaffolds_todo_text_stops_an_active_product_and_is_the_to_do_list_of_a_draft():
    todo = dict(description="One row per item in stock. TODO: name the grain.", contract=ScaffoldedContract)
    with pytest.raises(DefinitionError) as caught:
        domain_definitions("store", [product(**todo)], governance=DEFAULTS)
    message = str(caught.value)
    assert ("[descriptions-written] store.stock: the description is still the scaffold's text: "
            "'One row per item in stock. TODO: name the grain.'") in message
    assert ("[descriptions-written] store.stock: columns still described by the scaffold's TODO text: label. "
            "Fix: write what each means in pa.Field(description='...') in ScaffoldedContract.") in message
    assert findings(domain_definitions("store", [product(**todo, status="draft")], governance=DEFAULTS)) == []
    written = product(contract=MaskedCustomersContract)
    assert findings(domain_definitions("store", [written], governance=DEFAULTS)) == []
