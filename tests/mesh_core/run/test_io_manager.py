import dagster as dg
import pandas as pd
import pytest

from fixture_domains._contract import SUITE, ItemsContract
from mesh_core import AccessDeniedError, DomainStorage, Input, MeshIOManager, OutputPort, ProductRef, data_product
from mesh_core.run.assets import build_product_asset
from mesh_core.run.io_manager import IO_MANAGER_KEY
from mesh_core.run.provenance import PORT_VERSION


def test_a_domain_cannot_publish_to_another_domains_port(tmp_path):
    manager = MeshIOManager(domain="sales", data_dir=str(tmp_path))
    context = dg.build_output_context(asset_key=dg.AssetKey(["billing", "invoices"]),
                                      definition_metadata={"mesh/version": "1.0.0", "mesh/access": "public"})
    with pytest.raises(AccessDeniedError, match=r"Domain 'sales' may not publish billing\.invoices: a domain writes only its own ports"):
        manager.handle_output(context, pd.DataFrame({"n": [1]}))
    assert not (tmp_path / "billing").exists() and not (tmp_path / "sales").exists()


ITEMS = ProductRef("stock", "items")


@data_product(domain="shop", name="labels", description="One row per item.", owners=["team:shop"],
              contract=ItemsContract, suite=SUITE, inputs={"items": Input("stock.items", columns=["item_id", "label"])})
def labels(items):
    assert items["label"].dtype == pd.StringDtype("pyarrow", na_value=float("nan")), items.dtypes  # Arrow-backed text
    return items


@data_product(domain="shop", name="ids", description="One row per item.", owners=["team:shop"],
              contract=ItemsContract, suite=SUITE, inputs={"items": Input("stock.items", columns=["item_id", "label"])})
def ids(items):
    return items


def test_a_run_reads_and_verifies_each_input_version_once_however_many_steps_read_it(dagster_home, instance, monkeypatch):
    data_dir = dagster_home / "data"
    published = DomainStorage(data_dir, "stock").publish(
        "items", pd.DataFrame({"item_id": [1, 2], "label": ["a", "b"], "extra": [0, 0]}),
        version="1.0.0", access="public", run_id="upstream")
    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key=ITEMS.asset_key, metadata={PORT_VERSION: published.version.version, "mesh/version": "1.0.0"}))
    reads = []
    verified = OutputPort._verified_files
    monkeypatch.setattr(OutputPort, "_verified_files", lambda port, version: reads.append(version) or verified(port, version))
    defs = dg.Definitions(assets=[build_product_asset(labels), build_product_asset(ids),
                                  dg.AssetSpec(ITEMS.asset_key).with_io_manager_key(IO_MANAGER_KEY)],
                          resources={IO_MANAGER_KEY: MeshIOManager(domain="shop", data_dir=str(data_dir))})
    job = defs.resolve_implicit_global_asset_job_def()
    for run in (1, 2):
        result = job.execute_in_process(instance=instance, asset_selection=[labels.ref.asset_key, ids.ref.asset_key])
        assert result.success
        assert reads == [published.version.version] * run  # once per run: a new run reads (and verifies) afresh
    shop = DomainStorage(data_dir, "shop")
    assert shop.read(labels.ref).to_dict("list") == {"item_id": [1, 2], "label": ["a", "b"]}


def test_a_consumer_run_before_its_producers_names_every_missing_producer(instance):
    from mesh_core.governance.workspace import MeshWorkspace
    from mesh_core.run.materialize import materialize_domain
    from tests.support import WORKSPACES

    workspace = MeshWorkspace.load(WORKSPACES / "combiner_first.yaml")
    first = materialize_domain(workspace.location("combiner"), instance)
    [product] = first.products
    assert (product.status, product.message) == ("failed", (
        f"Products source.readings and supplier.parts had no published version when run {first.run_id[:8]} started. "
        "Materialize the 'source' and 'supplier' domains first, e.g. `mesh materialize --domain source --domain supplier`."))
    materialize_domain(workspace.location("source"), instance)
    second = materialize_domain(workspace.location("combiner"), instance)
    assert second.products[0].message == (
        f"Product supplier.parts had no published version when run {second.run_id[:8]} started. "
        "Materialize the 'supplier' domain first, e.g. `mesh materialize --domain supplier`.")
    materialize_domain(workspace.location("supplier"), instance)
    assert materialize_domain(workspace.location("combiner"), instance).products[0].status == "published"
