"""The whole mesh of workspace.yaml, materialized by the real `mesh materialize` into a temp instance.
The first tests hold for any mesh; those marked `needs_example` check the example domains' data."""

from __future__ import annotations

import json

import dagster as dg
import duckdb
import pandas as pd
import pytest

from mesh_core import DomainStorage, ProductRef
from mesh_core.governance.workspace import MeshWorkspace
from tests.support import REPO, is_live, make_dagster_home, needs_example, run_mesh

pytestmark = pytest.mark.workspace


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    home = make_dagster_home(tmp_path_factory.mktemp("mesh"))
    run = run_mesh("materialize", "--json", home=home)
    assert run.returncode == 0, run.stdout + run.stderr
    return home, json.loads(run.stdout)


@pytest.fixture(scope="module")
def workspace():
    return MeshWorkspace.load(REPO / "workspace.yaml")


@pytest.fixture
def mesh_instance(mesh, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(mesh[0]))
    with dg.DagsterInstance.get() as instance:
        yield instance


def read(home, ref: str) -> pd.DataFrame:
    ref = ProductRef.parse(ref)
    return DomainStorage(home / "data", ref.domain).read(ref)  # as its own domain: internal products too


def test_every_product_of_every_domain_is_published(mesh, workspace):
    _, summary = mesh
    declared = {str(ref) for ref, (_, spec) in workspace.products().items() if is_live(spec)}
    statuses = {p["product"]: p["status"] for d in summary["domains"] for p in d["products"]}
    assert statuses == {ref: "published" for ref in declared}
    assert summary["published"] == summary["products"] == len(declared)
    assert [d["domain"] for d in summary["domains"]] == [loc.name for loc in workspace.domain_order()]


def test_every_check_evaluation_and_materialization_is_in_the_event_log(mesh, workspace, mesh_instance):
    _, summary = mesh
    recorded = set()
    for domain in summary["domains"]:
        for record in mesh_instance.all_logs(domain["run_id"], of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            data = record.dagster_event.event_specific_data
            recorded.add(dg.AssetCheckKey(data.asset_key, data.check_name))
    live = [ref for ref, (_, spec) in workspace.products().items() if is_live(spec)]
    declared = {key for loc in workspace.locations for key in loc.defs.resolve_asset_graph().asset_check_keys
                if ProductRef.from_asset_key(key.asset_key) in live}
    assert recorded == declared
    for ref in live:
        event = mesh_instance.get_latest_materialization_event(ref.asset_key)
        assert event is not None, ref
        rows = event.asset_materialization.metadata["dagster/row_count"].value
        assert rows == len(read(mesh[0], str(ref))) > 0


@needs_example("operations", "insights", "weather")
def test_the_real_quality_problems_are_met_by_warnings_that_fire(mesh):
    _, summary = mesh
    checks = {
        (p["product"], c["name"]): c for d in summary["domains"] for p in d["products"] for c in p["checks"]
    }
    warned = {key for key, c in checks.items() if not c["passed"] and c["severity"] == "WARN"}
    assert {
        ("operations.flights", "column_values_to_not_be_null__tailnum"),
        ("insights.fleet_utilisation", "tail_number_in_fleet_registry"),
        ("insights.route_performance", "destination_in_reference_airports"),
        ("weather.hourly_observations", "column_values_to_be_between__wind_speed"),
    } <= warned
    assert not any(not c["passed"] and c["severity"] == "ERROR" for c in checks.values())


@needs_example("operations", "insights", "fleet")
def test_published_data_is_honest_about_cancellations_and_unknown_references(mesh):
    home, _ = mesh
    flights = read(home, "operations.flights")
    assert len(flights) == 336_776
    cancelled = flights[flights["status"] == "cancelled"]
    assert len(cancelled) == 8_255 and cancelled["dep_delay"].isna().all()
    routes = read(home, "insights.route_performance")
    assert set(routes.loc[routes["dest_name"].isna(), "dest"]) == {"BQN", "PSE", "SJU", "STT"}
    fleet = read(home, "insights.fleet_utilisation")
    aircraft = read(home, "fleet.aircraft")
    assert set(fleet.loc[~fleet["in_fleet_registry"], "tailnum"]).isdisjoint(aircraft["tailnum"])
    carriers = read(home, "insights.carrier_on_time_performance")
    assert carriers["flights"].sum() == len(flights)


def test_each_domain_wrote_only_its_own_duckdb_file_at_its_ports_versions(mesh, workspace):
    home, _ = mesh
    for location in workspace.locations:
        storage = DomainStorage(home / "data", location.name)
        products = [ref for ref, spec in location.products.items() if is_live(spec)]
        with duckdb.connect(str(storage.database_path), read_only=True) as con:
            tables = {tuple(row) for row in con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()}
            held = dict(con.execute("SELECT product, port_version FROM mesh_meta.port_versions").fetchall())
        assert tables - {("mesh_meta", "port_versions")} == {(ref.domain, ref.product) for ref in products}
        assert held == {ref.product: storage.current(ref).version for ref in products}


def test_every_product_with_an_objective_records_its_check_pass_rate_from_its_first_publish(mesh, workspace, mesh_instance):
    """On a fresh instance each product has published once: the rate is that run's own checks."""
    _, summary = mesh
    checks = {p["product"]: p["checks"] for d in summary["domains"] for p in d["products"]}
    # The quality objective (a pass rate over a window) is what the check pass rate is measured against.
    with_objective = [ref for ref, (_, spec) in workspace.products().items()
                      if is_live(spec) and "mesh/slo_pass_rate" in spec.metadata]
    assert with_objective
    recorded = {}
    for ref in with_objective:
        metadata = mesh_instance.get_latest_materialization_event(ref.asset_key).asset_materialization.metadata
        recorded[str(ref)] = metadata["mesh/slo_check_pass_rate"].value if "mesh/slo_check_pass_rate" in metadata else None
    expected = {str(ref): sum(c["passed"] for c in checks[str(ref)]) / len(checks[str(ref)]) for ref in with_objective}
    assert recorded == pytest.approx(expected)
