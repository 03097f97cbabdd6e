from datetime import date

import dagster as dg
import pytest

from fixture_domains._contract import SUITE, ItemsContract, items
from mesh_core import DefinitionError, data_product, domain_definitions
from mesh_core.governance.workspace import Location, MeshWorkspace
from tests.support import WORKSPACES


def declare(**lifecycle):
    return data_product(domain="legacy", name="old_items", description="One row per item.", owners=["team:legacy"],
                        contract=ItemsContract, suite=SUITE, **lifecycle)(lambda: items())


def test_a_deprecation_needs_a_date_and_a_successor():
    with pytest.raises(DefinitionError, match=r"\[deprecation-complete\] legacy\.old_items: is deprecated without a date and a successor"):
        declare(status="deprecated")
    with pytest.raises(DefinitionError, match=r"\[lifecycle-valid\] legacy\.old_items: invalid lifecycle: .*deprecated_on='someday'.* 'YYYY-MM-DD'"):
        declare(status="deprecated", deprecated_on="someday", successor="legacy.new_items")
    with pytest.raises(DefinitionError, match=r"\[lifecycle-valid\] legacy\.old_items: invalid lifecycle: status='archived'.*one of draft, active, deprecated, retired"):
        declare(status="archived")


def test_the_status_is_a_tag_the_ui_filters_on():
    workspace = MeshWorkspace.load(WORKSPACES / "lifecycle.yaml")
    specs = {ref.product: spec for ref, spec in workspace.location("legacy").products.items()}
    assert {name: spec.tags["mesh/status"] for name, spec in specs.items()} == {
        "new_items": "active", "old_items": "deprecated", "draft_items": "draft", "gone_items": "retired"}
    assert specs["old_items"].metadata["mesh/deprecated_on"] == "2099-01-01"
    assert specs["old_items"].metadata["mesh/successor"] == "legacy.new_items"


def test_reading_a_deprecated_product_warns_until_its_date_then_is_an_error():
    workspace = MeshWorkspace.load(WORKSPACES / "lifecycle.yaml")
    assert workspace.violations(today=date(2098, 12, 31)) == []
    [warning] = workspace.warnings(today=date(2098, 12, 31))
    assert str(warning) == ("[reads-no-deprecated] reader.old_copy: reads legacy.old_items, deprecated on 2099-01-01 in "
                            "favour of legacy.new_items. Fix: read legacy.new_items instead.")
    [error] = workspace.violations(today=date(2099, 1, 1))
    assert str(error).startswith("[reads-no-deprecated] reader.old_copy: reads legacy.old_items, deprecated since 2099-01-01")


def test_reading_another_domains_draft_or_a_retired_product_is_an_error():
    errors = {str(v) for v in MeshWorkspace.load(WORKSPACES / "lifecycle_errors.yaml").violations()}
    assert errors == {
        "[reads-no-drafts] careless_reader.draft_copy: reads legacy.draft_items, a draft of the 'legacy' domain. "
        "Fix: wait until its owners make it active, or read a product that is.",
        "[reads-no-retired] careless_reader.gone_copy: reads legacy.gone_items, which is retired. "
        "Fix: read legacy.new_items instead.",
    }


def test_a_retired_product_is_not_materialized(instance):
    from mesh_core.run.materialize import materialize_domain

    location = MeshWorkspace.load(WORKSPACES / "lifecycle.yaml").location("legacy")
    result = materialize_domain(location, instance)
    assert {str(p.ref): p.status for p in result.products} == {
        "legacy.new_items": "published", "legacy.old_items": "published", "legacy.draft_items": "published"}
    assert instance.get_latest_materialization_event(dg.AssetKey(["legacy", "gone_items"])) is None
    launched = location.defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(["legacy", "gone_items"])], raise_on_error=False)
    failure = instance.all_logs(launched.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)[0]
    assert "legacy.gone_items is retired and is not materialized any more; its successor is legacy.new_items." in \
        failure.dagster_event.event_specific_data.error.to_string()


def test_a_successor_must_exist_and_not_be_the_product_itself():
    workspace = MeshWorkspace.load(WORKSPACES / "lifecycle.yaml")
    assert not [v for v in workspace.violations(today=date(2000, 1, 1)) if v.rule == "successor-exists"]
    self_successor = declare(status="deprecated", deprecated_on="2099-01-01", successor="legacy.old_items")
    missing = declare(status="retired", successor="legacy.nosuch")
    for product, expected in ((self_successor, "is itself."), (missing, "no domain in the workspace publishes.")):
        defs = domain_definitions("legacy", [product])
        lone = MeshWorkspace(workspace.path, (Location("legacy", "fixture_domains.legacy", defs),))
        [violation] = [v for v in lone.violations() if v.rule == "successor-exists"]
        assert str(violation).endswith(f"{expected} Fix: name the product that replaces it, as domain.product.")
