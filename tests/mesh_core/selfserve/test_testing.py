import pandas as pd
import pytest

from mesh_core import DefinitionError, Input, data_product
from mesh_core.selfserve.testing import run_product
from fixture_domains._contract import SUITE, ItemsContract


@data_product(domain="shop", name="copies", description="One row per item.", owners=["team:shop"],
              contract=ItemsContract, suite=SUITE, inputs={"items": Input("stock.items@2", columns=["item_id", "label"])})
def copies(items):
    return items


def test_run_product_publishes_from_given_inputs_and_reports_every_check(tmp_path):
    result = run_product(copies, inputs={"items": pd.DataFrame({"item_id": [1, 2], "label": ["a", "b"], "extra": [0, 0]})})
    assert result.published, result.message
    assert result.output.to_dict("list") == {"item_id": [1, 2], "label": ["a", "b"]}  # only the declared columns
    assert set(result.checks) == {"contract", "column_values_to_not_be_null__label"}
    assert all(check.passed for check in result.checks.values())


def test_run_product_shows_a_blocked_publish_and_why():
    result = run_product(copies, inputs={"items": pd.DataFrame({"item_id": [-1], "label": ["a"]})})
    assert result.status == "blocked" and result.output is None
    assert not result.checks["contract"].passed
    assert "item_id: greater_than_or_equal_to(0)" in result.checks["contract"].description


def test_run_product_needs_one_frame_per_input():
    with pytest.raises(DefinitionError, match=r"\[test-inputs-match\] shop\.copies: run_product got inputs \[\]"):
        run_product(copies)


def test_run_product_keeps_its_lineage_events_out_of_the_project(tmp_path, monkeypatch):
    # A user's product tests run from their repository, often without DAGSTER_HOME.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAGSTER_HOME")
    result = run_product(copies, inputs={"items": pd.DataFrame({"item_id": [1], "label": ["a"]})})
    assert result.published, result.message
    assert list(tmp_path.iterdir()) == []
