"""The domain boundary holds in the Python API: inside a run, code of one domain can neither write
another domain's ports nor read what lint would refuse it (another domain's internal or draft
products, retired ones), whatever storage object or IO manager it builds. Real runs, real ports."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from fixture_domains._contract import SUITE, ItemsContract, items
from mesh_core import (
    AccessDeniedError,
    DomainStorage,
    Input,
    Lifecycle,
    MeshIOManager,
    ProductRef,
    Status,
    data_product,
)
from mesh_core.run.assets import build_product_asset
from mesh_core.run.io_manager import IO_MANAGER_KEY
from mesh_core.run.provenance import PORT_VERSION
from mesh_core.storage.domain_storage import resolve_data_dir

SHARED, SECRET, DRAFT, RETIRED = (ProductRef("vault", name) for name in ("shared_items", "secret_items", "plans", "old_items"))
PUBLISHED = {  # vault's products, as vault's own runs published them: access, lifecycle
    SHARED: ("public", Lifecycle()),
    SECRET: ("internal", Lifecycle()),
    DRAFT: ("public", Lifecycle(Status.DRAFT)),
    RETIRED: ("public", Lifecycle(Status.RETIRED, successor=SHARED)),
}
_attempt = {}  # what the shop product's code does, set by each test


@data_product(domain="shop", name="sneaky", description="One row per item.", owners=["team:shop"],
              contract=ItemsContract, suite=SUITE)
def sneaky():
    return _attempt["code"]()


@data_product(domain="shop", name="copied", description="One row per item.", owners=["team:shop"],
              contract=ItemsContract, suite=SUITE, inputs={"source": Input("vault.shared_items")})
def copied(source):
    return source


@pytest.fixture
def vault(dagster_home, instance):
    """vault's products published (outside any run, as an operator would) and recorded in Dagster."""
    storage = DomainStorage(dagster_home / "data", "vault")
    for ref, (access, lifecycle) in PUBLISHED.items():
        published = storage.publish(ref.product, items(), version="1.0.0", access=access, run_id="vault-run",
                                    lifecycle=lifecycle)
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=ref.asset_key, metadata={PORT_VERSION: published.version.version, "mesh/version": "1.0.0"}))
    return storage


def run(instance, product, io_manager=None, inputs=()):
    stubs = [dg.AssetSpec(ref.asset_key).with_io_manager_key(IO_MANAGER_KEY) for ref in inputs]
    defs = dg.Definitions(assets=[build_product_asset(product), *stubs],
                          resources={IO_MANAGER_KEY: io_manager or MeshIOManager(domain=product.domain)})
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, asset_selection=[product.ref.asset_key], raise_on_error=False)
    failures = [event for event in result.all_events if event.is_step_failure]
    messages = []
    for event in failures:
        error = event.step_failure_data.error
        while error is not None:
            messages.append(f"{error.cls_name}: {error.message}")
            error = error.cause
    return result.success, "\n".join(messages)


def test_a_product_cannot_publish_to_another_domains_port_from_its_code(vault, instance):
    before = vault.current(SHARED)
    attempts = {
        "DomainStorage.publish": lambda: DomainStorage(resolve_data_dir(), "vault").publish(
            "shared_items", items().assign(label="forged"), version="9.0.0", access="public", run_id="forged"),
        "OutputPort.publish": lambda: DomainStorage(resolve_data_dir(), "shop").port(SHARED).publish(
            __import__("pyarrow").Table.from_pandas(items()), run_id="forged", product_version="9.0.0",
            contract_fingerprint="", access="public"),
        "DomainStorage.quarantine": lambda: DomainStorage(resolve_data_dir(), "vault").quarantine(
            "shared_items", items(), run_id="forged"),
    }
    for name, attempt in attempts.items():
        _attempt["code"] = attempt
        ok, message = run(instance, sneaky)
        assert not ok, name
        assert "AccessDeniedError: Domain 'shop' may not write vault.shared_items" in message or \
            "AccessDeniedError: Domain 'shop' may not write the 'vault' domain's DuckDB store" in message, (name, message)
        assert "a domain writes only its own ports" in message, message
    assert vault.history(SHARED)[0] == before  # nothing was written
    assert vault.read(SHARED)["label"].tolist() == ["a", "b", "c"]
    assert "quarantine" not in {row[0] for row in __import__("duckdb").connect(
        str(vault.database_path), read_only=True).execute("SELECT schema_name FROM information_schema.schemata").fetchall()}


@pytest.mark.parametrize("ref, rule, reader", [
    (SECRET, "read-public-only", "DomainStorage"), (DRAFT, "reads-no-drafts", "DomainStorage"),
    (RETIRED, "reads-no-retired", "DomainStorage"), (SECRET, "read-public-only", "MeshIOManager"),
    (DRAFT, "reads-no-drafts", "MeshIOManager"), (SECRET, "read-public-only", "OutputPort"),
])
def test_a_product_cannot_read_what_lint_would_refuse_it_whatever_storage_it_builds(vault, instance, ref, rule, reader):
    build = {
        "DomainStorage": lambda: DomainStorage(resolve_data_dir(), "vault").read(ref),
        "MeshIOManager": lambda: MeshIOManager(domain="vault").storage().read(ref),
        "OutputPort": lambda: DomainStorage(resolve_data_dir(), "vault").port(ref).read(0),
    }
    _attempt["code"] = build[reader]
    ok, message = run(instance, sneaky)
    assert not ok
    assert f"AccessDeniedError: Domain 'shop' may not read {ref}: [{rule}]" in message, message
    assert "Fix:" in message


def test_a_declared_input_of_a_retired_product_is_refused_when_it_is_read(vault, instance):
    @data_product(domain="shop", name="late", description="One row per item.", owners=["team:shop"],
                  contract=ItemsContract, suite=SUITE, inputs={"source": Input(str(RETIRED))})
    def late(source):
        return source

    ok, message = run(instance, late, inputs=[RETIRED])
    assert not ok and f"Domain 'shop' may not read {RETIRED}: [reads-no-retired]" in message, message
    assert f"read {SHARED} instead" in message


def test_an_io_manager_made_for_another_domain_cannot_serve_a_step(vault, instance):
    ok, message = run(instance, copied, io_manager=MeshIOManager(domain="vault"), inputs=[SHARED])
    assert not ok
    assert "The IO manager of domain 'vault' may not serve a step of shop" in message, message
    assert not DomainStorage(resolve_data_dir(), "vault").port(copied.ref).exists()


def test_the_legitimate_paths_are_unchanged(vault, instance):
    # A declared input of a public product, and a public product read from the product's own code.
    ok, message = run(instance, copied, inputs=[SHARED])
    assert ok, message
    _attempt["code"] = lambda: DomainStorage(resolve_data_dir(), "vault").read(SHARED)
    ok, message = run(instance, sneaky)
    assert ok, message
    shop = DomainStorage(resolve_data_dir(), "shop")
    assert shop.read(copied.ref)["label"].tolist() == shop.read(sneaky.ref)["label"].tolist() == ["a", "b", "c"]
    # Outside any run, a storage acts for the domain it was made for: vault's operator reads its own
    # internal and draft products; another domain's storage still may not.
    assert len(vault.read(SECRET)) == len(vault.read(DRAFT)) == 3
    with pytest.raises(AccessDeniedError, match=r"Domain 'shop' may not read vault\.secret_items: \[read-public-only\]"):
        shop.read(SECRET)
    assert shop.read(SHARED)["item_id"].tolist() == [1, 2, 3]
    assert vault.current(RETIRED).lifecycle == Lifecycle(Status.RETIRED, successor=SHARED)
