"""Consumer-driven contracts and older majors, materialized for real on the supplier/buyer fixture mesh.

supplier.parts is at major 2 (`price`) and keeps major 1 (`cost`) published; buyer.current_prices
reads major 2 and declares expectations that supplier's audit runs; buyer.legacy_prices pins @1.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from fixture_domains import supplier
from mesh_core import DomainStorage, Expectation, Governance, Input, Level, PreviousMajor, ProductRef, data_product, domain_definitions
from mesh_core.governance.lint import lint_mesh
from mesh_core.governance.workspace import Location, MeshWorkspace
from mesh_core.run.materialize import materialize_domain
from tests.support import WORKSPACES

PARTS = ProductRef("supplier", "parts")
RELIED = "buyer__current_prices__parts__active_parts_priced"


@pytest.fixture
def workspace():
    return MeshWorkspace.load(WORKSPACES / "supplier_buyer.yaml")


def storage(dagster_home, domain="supplier"):
    return DomainStorage(dagster_home / "data", domain)


def checks(result, product):
    [found] = [p for p in result.products if p.ref.product == product]
    return found, {c.name: c for c in found.checks}


def test_the_producer_audit_runs_its_consumers_expectations_as_warnings(workspace, instance, dagster_home):
    spec = workspace.location("supplier").products[PARTS]
    asset = workspace.location("supplier").defs.resolve_assets_def(PARTS.asset_key)
    blocking = {check.name: check.blocking for check in asset.check_specs}
    assert blocking[RELIED] is False and blocking["contract_v1"] is True, blocking
    result = materialize_domain(workspace.location("supplier"), instance)
    parts, by_name = checks(result, "parts")
    assert parts.status == "published", parts.message
    assert not by_name[RELIED].passed and by_name[RELIED].severity == "WARN"
    assert "Relied on by buyer.current_prices (input 'parts'): every active part has a price: 1 of 2 rows unexpected" in by_name[RELIED].description, by_name[RELIED].description
    assert by_name["buyer__current_prices__parts__part_ids_positive"].passed  # the row condition left only active parts
    assert by_name["contract_v1"].passed
    assert spec.metadata["mesh/version"] == "2.1.0"


def test_a_failing_consumer_expectation_names_the_failing_rows_by_the_producer_key(workspace, instance):
    result = materialize_domain(workspace.location("supplier"), instance)
    [evaluation] = [record.event_log_entry.dagster_event.event_specific_data for record in instance.get_records_for_run(
        result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
        if record.event_log_entry.dagster_event.event_specific_data.check_name == RELIED]
    # Part 2 is active and has no price; parts is keyed by part_id (unique in its contract).
    assert evaluation.metadata["unexpected_sample"].value == "part_id=2: price=null"


def test_both_majors_are_published_and_a_pinned_reader_keeps_reading_the_old_one(workspace, instance, dagster_home):
    materialize_domain(workspace.location("supplier"), instance)
    ports = storage(dagster_home)
    assert list(ports.read(PARTS).columns) == ["part_id", "status", "price"]
    assert list(ports.read(PARTS, major=1).columns) == ["part_id", "status", "cost"]
    event = instance.get_latest_materialization_event(PARTS.asset_key).asset_materialization
    assert event.metadata["mesh/major_versions"].value == {"1": 0}
    # What the product page shows of the data: a preview, and numbers Dagster plots.
    assert event.metadata["mesh/null_share/price"].value == pytest.approx(2 / 3)
    assert event.metadata["mesh/preview"].value.startswith("| part_id | status | price |\n| --- | --- | --- |\n| 1 | active | 9.5 |")
    assert event.metadata["mesh/checks_run"].value == 5 and event.metadata["mesh/checks_passed"].value == 4  # a consumer warned

    result = materialize_domain(workspace.location("buyer"), instance)
    assert all(p.ok for p in result.products), [p.message for p in result.products]
    legacy = instance.get_latest_materialization_event(dg.AssetKey(["buyer", "legacy_prices"])).asset_materialization
    assert legacy.metadata["mesh/input_versions"].value == {"supplier.parts@1": 0}
    buyer = storage(dagster_home, "buyer")
    assert buyer.read(ProductRef("buyer", "legacy_prices"))["amount"].tolist()[0] == 9.5
    assert buyer.read(ProductRef("buyer", "current_prices"))["amount"].tolist()[0] == 9.5


def test_consumer_expectations_at_error_level_block_the_producer(instance, dagster_home):
    strict = Governance(consumer_expectations=Level.ERROR)
    location = Location("supplier", "fixture_domains.supplier", domain_definitions("supplier", [supplier.parts], governance=strict))
    result = materialize_domain(location, instance)
    parts, by_name = checks(result, "parts")
    assert parts.status == "blocked" and not by_name[RELIED].passed and by_name[RELIED].severity == "ERROR"
    assert instance.get_latest_materialization_event(PARTS.asset_key) is None


def test_an_older_major_that_fails_its_contract_blocks_both(instance, dagster_home):
    broken = PreviousMajor("1.4.0", contract=supplier.PartsV1, until="2099-01-01", adapt=lambda parts: parts)  # no rename
    product = data_product(domain="supplier", name="parts", description="One row per part in the catalogue.",
                           owners=["team:supplier"], suite=supplier.SUITE, contract=supplier.Parts, version="2.1.0",
                           previous_majors=[broken])(supplier.parts.fn)
    location = Location("supplier", "fixture_domains.supplier", domain_definitions("supplier", [product]))
    parts, by_name = checks(materialize_domain(location, instance), "parts")
    assert parts.status == "blocked" and not by_name["contract_v1"].passed
    assert "Major 1: Contract PartsV1 failed" in by_name["contract_v1"].description
    assert not (dagster_home / "data" / "supplier" / "ports" / "parts").exists()


def test_after_its_window_an_older_major_is_not_published_and_its_pinned_readers_fail_clearly(workspace, instance, dagster_home):
    materialize_domain(workspace.location("supplier"), instance)  # major 1 published once
    ended = PreviousMajor("1.4.0", contract=supplier.PartsV1, until="2000-01-01", adapt=lambda parts: parts)
    product = data_product(domain="supplier", name="parts", description="One row per part in the catalogue.",
                           owners=["team:supplier"], suite=supplier.SUITE, contract=supplier.Parts, version="2.1.0",
                           previous_majors=[ended])(supplier.parts.fn)
    location = Location("supplier", "fixture_domains.supplier", domain_definitions("supplier", [product]))
    assert "contract_v1" not in {s.name for s in location.defs.resolve_assets_def(PARTS.asset_key).check_specs}
    parts, _ = checks(materialize_domain(location, instance), "parts")
    assert parts.ok
    event = instance.get_latest_materialization_event(PARTS.asset_key).asset_materialization
    assert "mesh/major_versions" not in event.metadata
    legacy, _ = checks(materialize_domain(workspace.location("buyer"), instance), "legacy_prices")
    assert legacy.status == "failed"
    assert ("supplier.parts@1 is not published: the version of supplier.parts this run reads is major 2. Check the "
            "consumer against major 2 and pin 'supplier.parts@2'") in legacy.message
    warnings = MeshWorkspace(workspace.path, (location, workspace.location("buyer"))).warnings()
    assert any(w.rule == "previous-major-ended" and "whose window ended on 2000-01-01" in w.message for w in warnings)


def test_lint_checks_pins_and_relied_on_columns_against_the_producer(workspace):
    report = lint_mesh(WORKSPACES / "supplier_buyer.yaml")
    assert report.exit_code == 0 and not report.violations, report.violations
    assert [str(w) for w in report.warnings if w.rule == "old-major-readers"] == [
        "[old-major-readers] supplier.parts: publishes major 1 beside major 2 until 2099-01-01; still pinned to it: "
        "buyer.legacy_prices (team:buyer). Fix: ask them to move to major 2; remove the PreviousMajor once none is left."]
    errors = {str(v) for v in workspace.violations(today=date(2099, 1, 1))}
    assert ("[reads-current-major] buyer.legacy_prices: input 'parts' reads supplier.parts@1, published beside major 2 "
            "only until 2099-01-01. Fix: check the product against major 2 of supplier.parts, then pin "
            "'supplier.parts@2' (or drop the pin).") in errors

    @data_product(domain="buyer", name="careless", description="One row per part.", owners=["team:buyer"],
                  contract=supplier.Parts, suite=supplier.SUITE,
                  inputs={"parts": "supplier.parts@3"})
    def careless(parts):
        return parts

    @data_product(domain="buyer", name="colours", description="One row per part.", owners=["team:buyer"],
                  contract=supplier.Parts, suite=supplier.SUITE,
                  inputs={"parts": Input("supplier.parts", columns=["part_id", "colour"])})
    def colours(parts):
        return parts
    @data_product(domain="buyer", name="checker", description="One row per part.", owners=["team:buyer"],
                  contract=supplier.Parts, suite=supplier.SUITE, inputs={"parts": Input("supplier.parts", expectations=[
                      Expectation("ExpectColumnValuesToNotBeNull", column="prise")])})  # all columns, and a typo
    def checker(parts):
        return parts
    buyer = Location("buyer", "fixture_domains.buyer", domain_definitions("buyer", [careless, colours, checker]))
    found = {str(v) for v in MeshWorkspace(workspace.path, (workspace.location("supplier"), buyer)).violations()}
    assert found == {
        "[reads-published-major] buyer.careless: input 'parts' pins supplier.parts@3, but supplier.parts publishes "
        "major 2 only, and 1 until 2099-01-01. Fix: check the product against major 2 and pin 'supplier.parts@2' (or drop the pin).",
        "[relies-on-published-columns] buyer.colours: input 'parts' relies on column(s) colour of supplier.parts, which "
        "supplier.parts does not publish at major 2 (its columns: part_id, status, price). Fix: rely only on published "
        "columns, or ask the 'supplier' owners to publish them.",
        "[relies-on-published-columns] buyer.checker: input 'parts' relies on column(s) prise of supplier.parts, which "
        "supplier.parts does not publish at major 2 (its columns: part_id, status, price). Fix: rely only on published "
        "columns, or ask the 'supplier' owners to publish them.",
    }


def supplier_beside(consumers_file: dict | str, module: str, tmp_path, monkeypatch):
    """supplier's module imported again from a temp folder, with this consumers file beside it."""
    import importlib
    import shutil

    import yaml

    folder = tmp_path / "pkg"
    (folder / "snapshots").mkdir(parents=True)
    shutil.copy(supplier.__file__, folder / f"{module}.py")
    text = consumers_file if isinstance(consumers_file, str) else yaml.safe_dump(consumers_file)
    (folder / "snapshots" / "supplier.consumers.yaml").write_text(text)
    monkeypatch.syspath_prepend(str(folder))
    return importlib.import_module(module)


def declared(**overrides):
    """supplier.parts declared again, with some of its arguments changed."""
    arguments = dict(domain="supplier", name="parts", description="One row per part in the catalogue.",
                     owners=["team:supplier"], suite=supplier.SUITE, contract=supplier.Parts, version="2.1.0",
                     previous_majors=supplier.parts.previous_majors)
    return data_product(**{**arguments, **overrides})(supplier.parts.fn)


def test_adapt_cannot_change_the_current_major_it_derives_from(instance, dagster_home):
    def in_place(parts):
        parts.loc[:, "price"] = parts["price"] * 100  # a careless adapt: edits its argument
        return parts.rename(columns={"price": "cost"})

    older = PreviousMajor("1.4.0", contract=supplier.PartsV1, until="2099-01-01", adapt=in_place)
    location = Location("supplier", "fixture_domains.supplier", domain_definitions("supplier", [declared(previous_majors=[older])]))
    assert checks(materialize_domain(location, instance), "parts")[0].ok
    assert storage(dagster_home).read(PARTS)["price"].tolist()[0] == 9.5
    assert storage(dagster_home).read(PARTS, major=1)["cost"].tolist()[0] == 950.0


def test_a_consumer_expectation_gx_cannot_build_fails_alone_and_the_others_still_block(instance, dagster_home, tmp_path, monkeypatch):
    import yaml

    # The consumers file as committed, plus one consumer that made a typo.
    reliance = yaml.safe_load((Path(supplier.__file__).parent / "snapshots" / "supplier.consumers.yaml").read_text())
    reliance["parts"].append({"consumer": "buyer.sloppy", "input": "parts", "major": None, "columns": None,
                              "expectations": [{"type": "ExpectColumnValuesToBeFooBar", "column": "price", "name": "typo"}]})
    module = supplier_beside(reliance, "typo_supplier", tmp_path, monkeypatch)
    strict = Governance(consumer_expectations=Level.ERROR)
    location = Location("supplier", "typo_supplier", domain_definitions("supplier", [module.parts], governance=strict))
    parts, by_name = checks(materialize_domain(location, instance), "parts")
    assert not by_name["buyer__sloppy__parts__typo"].passed and by_name["buyer__sloppy__parts__typo"].severity == "WARN"
    assert "could not be evaluated" in by_name["buyer__sloppy__parts__typo"].description
    assert parts.status == "blocked" and not by_name[RELIED].passed  # the real expectation still blocks


def test_a_reader_pinned_to_an_older_major_has_its_expectations_run_on_that_major(instance, dagster_home, tmp_path, monkeypatch):
    module = supplier_beside({"parts": [
        {"consumer": "buyer.legacy_prices", "input": "parts", "major": 1, "columns": ["part_id", "cost"],
         "expectations": [{"type": "ExpectColumnValuesToBeBetween", "column": "cost", "name": "cost_sane",
                           "params": {"min_value": 0, "max_value": 100}}]}]}, "pinned_supplier", tmp_path, monkeypatch)
    strict = Governance(consumer_expectations=Level.ERROR)
    location = Location("supplier", "pinned_supplier", domain_definitions("supplier", [module.parts], governance=strict))
    parts, by_name = checks(materialize_domain(location, instance), "parts")
    assert parts.ok and by_name["buyer__legacy_prices__parts__cost_sane"].passed, by_name


def test_an_unreadable_consumers_file_still_loads_so_update_can_rewrite_it(tmp_path, monkeypatch):
    module = supplier_beside("parts: [\n", "corrupt_supplier", tmp_path, monkeypatch)
    asset = domain_definitions("supplier", [module.parts]).resolve_assets_def(PARTS.asset_key)
    assert not [s for s in asset.check_specs if s.name.startswith("buyer__")]
