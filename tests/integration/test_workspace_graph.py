"""Load workspace.yaml the way `dagster dev` does: one code server per domain, one asset graph."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget

from mesh_core import DataProduct
from mesh_core.governance.workspace import MeshWorkspace
from tests.support import REPO

pytestmark = pytest.mark.workspace


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("home"))) as instance:
        with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(REPO / "workspace.yaml")])) as context:
            request = context.create_request_context()
            errors = {name: entry.load_error for name, entry in request.get_code_location_entries().items()}
            yield errors, request.asset_graph


@pytest.fixture(scope="module")
def declared():
    """What each domain's code declares, read from its DataProducts."""
    import importlib

    workspace = MeshWorkspace.load(REPO / "workspace.yaml")
    products = {}
    for location in workspace.locations:
        module = importlib.import_module(location.module.replace(".definitions", ".products"))
        for value in vars(module).values():
            if isinstance(value, DataProduct):
                products[value.ref] = value
    return products


def test_every_domain_loads_as_its_own_code_location(graph):
    errors, _ = graph
    assert sorted(errors) == sorted(loc.name for loc in MeshWorkspace.load(REPO / "workspace.yaml").locations)
    assert all(error is None for error in errors.values()), errors


def test_every_product_carries_owners_docs_contract_suite_and_domain(graph, declared):
    _, asset_graph = graph
    # What consumers rely on: run as the producer's checks (read by the producer from its consumers file).
    reads = [item for location in MeshWorkspace.load(REPO / "workspace.yaml").locations for item in location.reads()]
    assert len(declared) == len(MeshWorkspace.load(REPO / "workspace.yaml").products())
    for ref, product in declared.items():
        node = asset_graph.get(ref.asset_key)
        location = node.resolve_to_singular_repo_scoped_node().repository_handle.location_name
        assert location == ref.domain == node.group_name == node.tags["mesh/domain"]
        assert node.owners == list(product.owners) and node.owners
        assert node.description.startswith("One row per")
        assert node.metadata["mesh/contract"].text == product.contract.__name__
        schema_columns = [c.name for c in node.metadata["dagster/column_schema"].schema.columns]
        assert schema_columns == list(product.contract.to_schema().columns)
        assert node.code_version == product.version and node.tags["mesh/access"] == product.access.value
        checks = {key.name for key in node.check_keys}
        relied_on = {f"{consumer.domain}__{consumer.product}__{param}__{item.name}"
                     for consumer, param, spec in reads if spec.ref == ref for item in spec.expectations}
        older = {f"contract_v{item.major}" for item in product.previous_majors if item.published_on(date.today())}
        assert checks == {"contract", *older, *(item.name for item in product.suite), *relied_on}


def test_every_cross_domain_input_is_a_lineage_edge(graph, declared):
    _, asset_graph = graph
    cross_domain = 0
    for ref, product in declared.items():
        assert asset_graph.get(ref.asset_key).parent_keys == {up.ref.asset_key for up in product.inputs.values()}
        for upstream in (spec.ref for spec in product.inputs.values()):
            # The producer's real node (not the consumer's stub) is what the graph shows.
            assert asset_graph.get(upstream.asset_key).is_materializable
            cross_domain += upstream.domain != ref.domain
    assert cross_domain >= 8
