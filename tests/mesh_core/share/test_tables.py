"""Which tables a recipient sees, derived from how each port was published (access, lifecycle),
and how request names are checked before they reach a path."""

from __future__ import annotations

from datetime import date

import pytest

from mesh_core.declare.lifecycle import Status
from mesh_core.declare.majors import major_of
from mesh_core.share.errors import ShareBadRequestError, ShareForbiddenError, ShareNotFoundError
from mesh_core.share.tables import ShareCatalog


def _catalog(mesh) -> ShareCatalog:
    return ShareCatalog(mesh.workspace, mesh.ports_uri)


def _expected(mesh, domain: str, reader: str) -> set[str]:
    """What the rules say `reader` sees in `domain`, from what each product was published as."""
    seen = set()
    for full, declared in mesh.declared.items():
        owner, name = full.split(".")
        lifecycle, own = declared["lifecycle"], reader == owner
        if owner != domain or (declared["access"] != "public" and not own):
            continue
        if lifecycle.status is Status.RETIRED or (lifecycle.status is Status.DRAFT and not own):
            continue
        if lifecycle.status is Status.DEPRECATED and lifecycle.deprecated_on <= date.today():
            continue
        seen.add(name)
    return seen


def _names_without_aliases(tables) -> set[str]:
    return {t.name for t in tables if t.major is None or t.port.uri.endswith(f".v{t.major}")}


@pytest.mark.parametrize("reader", ["recipient:partner", "insights", "ops"])
def test_each_reader_sees_what_the_read_rules_allow(mesh, reader):
    catalog = _catalog(mesh)
    for domain in catalog.shares():
        tables = catalog.tables(domain, reader)
        # older majors (product.vN ports) count as their own published products
        assert _names_without_aliases(tables) == _expected(mesh, domain, reader), (domain, reader)


def test_the_current_major_is_also_a_table_named_by_its_major(mesh):
    catalog = _catalog(mesh)
    tables = {t.name: t for t in catalog.tables("ops", "recipient:partner")}
    current = major_of(mesh.port("ops", "flights").latest().product_version)
    alias = tables[f"flights_v{current}"]
    assert alias.port.uri == tables["flights"].port.uri and alias.major == current
    older = tables["flights_v1"]
    assert older.port.uri == mesh.port("ops", "flights", 1).uri and older.major == 1


def test_shares_are_the_workspace_domains_and_one_schema_each(mesh):
    catalog = _catalog(mesh)
    assert catalog.shares() == sorted(["ops", "insights", "fleet"])
    assert catalog.schema("OPS", "Ops") == "ops"  # names are case-insensitive (PROTOCOL.md)
    with pytest.raises(ShareNotFoundError, match="has no schema 'fleet'"):
        catalog.schema("ops", "fleet")
    with pytest.raises(ShareNotFoundError, match="No share named 'sales'"):
        catalog.share("sales")


@pytest.mark.parametrize("reader,table,rule", [
    ("recipient:partner", "crew", "read-public-only"),
    ("insights", "crew", "read-public-only"),
    ("recipient:partner", "plan", "reads-no-drafts"),
    ("ops", "legacy", "reads-no-retired"),
    ("recipient:partner", "gates", "reads-no-deprecated"),
])
def test_a_table_that_exists_but_is_not_visible_is_403_naming_the_rule(mesh, reader, table, rule):
    with pytest.raises(ShareForbiddenError, match=rf"may not read ops\.ops\.{table} .*\[{rule}\]"):
        _catalog(mesh).table("ops", "ops", table, reader)


def test_the_owning_domain_reads_its_internal_and_draft_products(mesh):
    catalog = _catalog(mesh)
    assert catalog.table("ops", "ops", "crew", "ops").ref.product == "crew"
    assert catalog.table("ops", "ops", "plan", "ops").ref.product == "plan"
    assert catalog.table("insights", "insights", "summary", "insights").ref.product == "summary"


@pytest.mark.parametrize("name", ["../ops", "flights/../../crew", "flights%2F..", "Flights\n", "a" * 300, "1flights",
                                  "", ".", "flights.v1", "flights v2"])
def test_a_name_that_is_no_mesh_name_is_refused_before_any_path(mesh, name):
    with pytest.raises(ShareBadRequestError):
        _catalog(mesh).table("ops", "ops", name, "ops")


@pytest.mark.parametrize("name", ["flights_v01", "flights_v3", "flights_v99999999999", "crew_v7", "nothing", "flights_v"])
def test_majors_in_names_are_strict(mesh, name):
    with pytest.raises((ShareNotFoundError, ShareBadRequestError)):
        _catalog(mesh).table("ops", "ops", name, "ops")


def test_unpublished_ports_are_not_tables(mesh):
    (mesh.root / "data" / "ops" / "ports" / "empty_one" / "_delta_log").mkdir(parents=True)
    catalog = _catalog(mesh)
    assert "empty_one" not in {t.name for t in catalog.tables("ops", "ops")}
    with pytest.raises(ShareNotFoundError, match="no published version"):
        catalog.table("ops", "ops", "empty_one", "ops")
