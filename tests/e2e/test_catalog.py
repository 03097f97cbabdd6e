"""`mesh catalog`: every product with its lineage both ways, from the workspace and the instance."""

from __future__ import annotations

import pytest

import json
import re

import dagster as dg

from mesh_core.governance.workspace import MeshWorkspace
from tests.support import REPO, make_dagster_home, run_mesh

pytestmark = pytest.mark.workspace


def test_the_catalog_describes_every_product_and_links_its_pages(tmp_path):
    home = make_dagster_home(tmp_path)
    workspace = MeshWorkspace.load(REPO / "workspace.yaml")
    source = workspace.domain_order()[0]
    assert run_mesh("materialize", "-d", source.name, home=home).returncode == 0
    run = run_mesh("catalog", "--json", home=home)
    assert run.returncode == 0, run.stderr
    entries = {entry["product"]: entry for entry in json.loads(run.stdout)}
    assert set(entries) == {str(ref) for ref in workspace.products()}
    readers: dict[str, set[str]] = {}
    for location in workspace.locations:
        for consumer, _, spec in location.reads():
            readers.setdefault(str(spec.ref), set()).add(str(consumer))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for ref, (location, spec) in workspace.products().items():
            entry = entries[str(ref)]
            assert set(entry["read_by"]) == readers.get(str(ref), set())
            assert entry["owners"] == list(spec.owners) and entry["domain"] == location.name
            assert [c["name"] for c in entry["columns"]] == [c.name for c in getattr(spec.metadata["dagster/column_schema"], "schema", spec.metadata["dagster/column_schema"]).columns]
            event = instance.get_latest_materialization_event(ref.asset_key)
            assert (entry["last_publish"] is None) == (event is None) == (location.name != source.name)
            if event is not None:
                assert entry["rows"] == event.asset_materialization.metadata["dagster/row_count"].value
                assert all(check["passed"] is not None for check in entry["checks"])

    pages = tmp_path / "catalog"
    assert run_mesh("catalog", "--markdown", str(pages), home=home).returncode == 0
    files = sorted(pages.rglob("*.md"))
    assert len(files) == 1 + len(workspace.locations) + len(entries)
    for page in files:
        for target in re.findall(r"\]\(([^)]+\.md)\)", page.read_text()):
            assert (page.parent / target).resolve().exists(), f"{page}: broken link {target}"
