import dagster as dg
import pytest

from fixture_domains._contract import SUITE, ItemsContract, items
from mesh_core import DefinitionError, data_product, domain_definitions


def product(domain="store", name="stock", **extra):
    def stock():
        return items()

    declared = dict(domain=domain, name=name, description="One row per item in stock.", owners=["team:store"],
                    contract=ItemsContract, suite=SUITE)
    declared.update(extra)
    return data_product(**declared)(stock)


def report(inputs):
    """A product of the store domain reading `inputs`: {"stock", "prices"} or {"x"}."""

    def stock_and_prices(stock, prices):
        return stock

    def from_x(x):
        return x

    fn = stock_and_prices if set(inputs) == {"stock", "prices"} else from_x
    return data_product(domain="store", name="report", description="One row per line of the report.",
                        owners=["team:store"], contract=ItemsContract, suite=SUITE, inputs=inputs)(fn)


def test_each_product_becomes_an_asset_with_ownership_schema_and_checks():
    defs = domain_definitions("store", [product(version="1.2.0")])
    [spec] = defs.resolve_all_asset_specs()
    assert spec.key == dg.AssetKey(["store", "stock"])
    assert spec.owners == ["team:store"] and spec.group_name == "store" and spec.code_version == "1.2.0"
    assert spec.tags["mesh/domain"] == "store" and spec.tags["mesh/access"] == "public"
    assert {"dagster/kind/pandas", "dagster/kind/duckdb", "dagster/kind/delta"} <= set(spec.tags)
    columns = spec.metadata["dagster/column_schema"].columns
    assert [(c.name, c.constraints.unique) for c in columns] == [("item_id", True), ("label", False)]
    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert checks == {"contract", "column_values_to_not_be_null__label"}


def test_products_of_other_domains_become_stub_specs_for_lineage():
    consumer = report({"stock": "store.stock", "prices": "pricing.prices"})
    defs = domain_definitions("store", [product(), consumer])
    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    assert set(specs) == {"store/stock", "store/report", "pricing/prices"}
    assert {dep.asset_key.to_user_string() for dep in specs["store/report"].deps} == {"store/stock", "pricing/prices"}
    assert "mesh/version" not in specs["pricing/prices"].metadata  # a stub, owned by pricing


def test_domain_level_problems_are_reported_together():
    with pytest.raises(DefinitionError) as caught:
        domain_definitions(
            "store",
            [product(), product(), product(domain="elsewhere", name="misplaced"),
             report({"x": "store.missing"})],
        )
    rules = sorted(v.rule for v in caught.value.violations)
    assert rules == ["inputs-exist", "product-in-own-domain", "product-names-unique"]
    assert "set domain='store'" in str(caught.value)


def test_an_invalid_domain_name_never_loads():
    with pytest.raises(DefinitionError, match=r"\[domain-name\]"):
        domain_definitions("Store", [])
