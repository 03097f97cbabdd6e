"""The registry's publish gate, on real domain code: the supplier/buyer fixture mesh written to a temp
package (a fresh module name per repository, so each edit is imported anew), its snapshots current
as its team would keep them, published into a real registry folder."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from mesh_core.declare.ref import ProductRef
from mesh_core.errors import StaleRegistryWrite
from mesh_core.governance.publish import publish_domain
from mesh_core.governance.snapshots import Acceptance, update_snapshots
from mesh_core.governance.workspace import MeshWorkspace
from mesh_core.storage.registry import Registry
from tests.support import FIXTURES

SOURCES = {name: (FIXTURES / "fixture_domains" / f"{name}.py").read_text() for name in ("supplier", "buyer")}


def repository(root: Path, domains=("supplier", "buyer"), registry: Registry | None = None,
               **edits: list[tuple[str, str]]) -> MeshWorkspace:
    """A repository holding `domains`' code (each edited by (old, new) text replacements), with its snapshots
    and consumers file as `mesh contracts update --registry` writes them (its own snapshots accepted as
    they are: the registry's gate, not the repository's, is under test)."""
    package = f"pub_{uuid.uuid4().hex[:10]}"
    folder = root / package
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for name in domains:
        text = SOURCES[name]
        for old, new in edits.get(name, ()):
            assert old in text, old
            text = text.replace(old, new)
        (folder / f"{name}.py").write_text(text)
    path = root / f"{package}.yaml"
    path.write_text("load_from:\n" + "".join(
        f"  - python_module: {{module_name: {package}.{name}, location_name: {name}, working_directory: {root}}}\n"
        for name in domains))
    workspace = MeshWorkspace.load(path, registry=registry.read(missing_ok=True) if registry else None)
    products = frozenset(workspace.products(remote=False))
    update_snapshots(workspace, accept=Acceptance(products, "team", "its own repository's snapshots"))
    return MeshWorkspace.load(path)


@pytest.fixture
def registry(tmp_path) -> Registry:
    return Registry.at(tmp_path / "registry")


@pytest.fixture
def published(tmp_path, registry) -> Registry:
    """Both domains published from one repository: the buyer's reads of supplier.parts are registered."""
    workspace = repository(tmp_path)
    for domain in ("supplier", "buyer"):
        result = publish_domain(workspace, domain, registry, by=f"ci-{domain}")
        assert result.seq is not None and not result.refused, result
    return registry


def supplier_only(tmp_path, registry: Registry, **edits) -> MeshWorkspace:
    """The supplier's own repository: the buyer is known from the registry only."""
    return repository(tmp_path, domains=("supplier",), registry=registry, supplier=edits.get("supplier", []))


def reads_of_parts(registry: Registry) -> list[dict]:
    state = registry.read()
    return [read for name in state.domains for read in state.domains[name]["reads"] if read["product"] == "supplier.parts"]


WEIGHT = [(
    '    price: Series[float] = pa.Field(nullable=True, ge=0, description="Unit price, EUR; null when discontinued.")\n',
    '    price: Series[float] = pa.Field(nullable=True, ge=0, description="Unit price, EUR; null when discontinued.")\n'
    '    weight: Series[float] = pa.Field(nullable=True, description="Weight, kg.")\n')]


def test_an_additive_change_lands_with_its_change_named(tmp_path, published):
    before = published.read().seq
    result = publish_domain(supplier_only(tmp_path, published, supplier=WEIGHT), "supplier", published, by="ci-supplier")
    assert result.seq == before + 1 and not result.refused
    assert "supplier.parts: column 'weight' was added" in result.changes
    state = published.read()
    assert state.written["by"] == "ci-supplier" and "supplier.parts: column 'weight' was added" in state.written["changes"]
    assert "buyer" in state.domains  # the other domain's entry is kept


def test_a_column_a_registered_reader_relies_on_is_refused_naming_the_reader_and_its_owners(tmp_path, published):
    relying = [r for r in reads_of_parts(published) if r["major"] is None and "price" in (r["columns"] or ["price"])]
    assert relying, "the fixture's reader of major 2 relies on price"
    before = published.read().seq
    workspace = supplier_only(tmp_path, published, supplier=[(
        '    price: Series[float] = pa.Field(nullable=True, ge=0, description="Unit price, EUR; null when discontinued.")\n', ''),
        ('"price": [9.5, None, None]', '"cost": [9.5, None, None]')])
    result = publish_domain(workspace, "supplier", published, by="ci-supplier")
    assert result.seq is None and result.refused and published.read().seq == before
    text = "\n".join(str(v) for v in result.refused)
    for read in relying:
        assert f"{read['consumer']} ({', '.join(read['owners'])})" in text, text
    assert "column 'price' was removed" in text and "bump the major" in text


def test_a_column_no_registered_reader_relies_on_is_removed_when_readers_declared_their_columns(tmp_path, published):
    assert publish_domain(supplier_only(tmp_path, published, supplier=WEIGHT), "supplier", published, by="ci-supplier").seq
    reads = [r for r in reads_of_parts(published) if r["major"] is None]
    assert reads and all(r["columns"] is not None and "weight" not in r["columns"] for r in reads)
    result = publish_domain(supplier_only(tmp_path, published), "supplier", published, by="ci-supplier")
    assert result.seq is not None and not result.refused, result.refused
    assert "supplier.parts: column 'weight' was removed (breaking; no registered reader relies on it)" in result.changes


MAJOR_3 = [
    ('contract=Parts, version="2.1.0",', 'contract=PartsV3, version="3.0.0",'),
    ('previous_majors=[', 'previous_majors=[PreviousMajor("2.1.0", contract=Parts, until="2099-01-01", adapt=lambda p: p), '),
    ('SUITE = [', 'class PartsV3(Parts):\n    weight: Series[float] = pa.Field(nullable=True, description="Weight, kg.")\n\n\n'
                  'SUITE = ['),
]


def test_a_major_bump_lands_and_names_the_old_majors_readers(tmp_path, published):
    unpinned = sorted({r["consumer"] for r in reads_of_parts(published) if r["major"] is None})
    assert unpinned
    result = publish_domain(supplier_only(tmp_path, published, supplier=MAJOR_3), "supplier", published, by="ci-supplier")
    assert result.seq is not None and not result.refused, result.refused
    assert "supplier.parts: contract of major 3 registered" in result.changes
    [line] = [line for line in result.changes if line.startswith("supplier.parts: major 2 -> 3")]
    assert "major 2 still published" in line and all(consumer in line for consumer in unpinned), line
    assert set(published.read().domains["supplier"]["products"]["parts"]["contracts"]) == {"1", "2", "3"}
    # A major never goes back: major 2 again, over the registered 3, is refused.
    again = publish_domain(supplier_only(tmp_path, published), "supplier", published, by="ci-supplier")
    assert again.seq is None and any("below major 3" in v.message for v in again.refused), again


def test_a_major_a_registered_reader_pins_is_not_dropped(tmp_path, published):
    pinned = sorted({r["consumer"] for r in reads_of_parts(published) if r["major"] == 1})
    assert pinned
    workspace = supplier_only(tmp_path, published, supplier=[(re.search(r"previous_majors=\[.*?\}\)\)\]", SOURCES["supplier"], re.S)[0],
                                                   "previous_majors=[]")])
    result = publish_domain(workspace, "supplier", published, by="ci-supplier")
    assert result.seq is None and any("no longer publishes major 1" in v.message and all(p in v.message for p in pinned)
                                      for v in result.refused), result


def test_a_product_read_by_others_made_internal_is_refused(tmp_path, published):
    workspace = supplier_only(tmp_path, published, supplier=[
        ('owners=["team:supplier"], suite=SUITE,', 'owners=["team:supplier"], suite=SUITE, access="internal",')])
    result = publish_domain(workspace, "supplier", published, by="ci-supplier")
    assert result.seq is None
    [violation] = [v for v in result.refused if "made internal" in v.message]
    assert all(read["consumer"] in violation.message for read in reads_of_parts(published))


def test_an_unchanged_entry_writes_nothing(tmp_path, published):
    history = published.history()
    result = publish_domain(supplier_only(tmp_path, published), "supplier", published, by="someone-else")
    assert result.unchanged and result.seq is None and result.changes == ()
    assert published.history() == history


def test_a_lint_error_in_the_domain_is_refused_before_anything_is_written(tmp_path, registry):
    workspace = repository(tmp_path, buyer=[('columns=["part_id", "price"]', 'columns=["part_id", "price", "colour"]')])
    assert publish_domain(workspace, "supplier", registry, by="ci").seq == 1
    result = publish_domain(workspace, "buyer", registry, by="ci")
    assert result.seq is None and [v.rule for v in result.refused] == ["relies-on-published-columns"]
    assert "colour" in result.refused[0].message
    assert "buyer" not in registry.read().domains


def test_a_stale_write_is_judged_again_and_both_domains_land(tmp_path, registry, monkeypatch):
    workspace = repository(tmp_path)
    write, raced = registry.write, []

    def another_domain_lands_first(base, domain, entry, **kwargs):
        if not raced:  # the buyer's CI publishes between the supplier's read and its write
            raced.append(publish_domain(workspace, "buyer", Registry.at(registry.uri), by="ci-buyer"))
        return write(base, domain, entry, **kwargs)

    monkeypatch.setattr(registry, "write", another_domain_lands_first)
    result = publish_domain(workspace, "supplier", registry, by="ci-supplier")
    assert raced[0].seq == 1 and result.seq == 2 and result.base == 1
    assert (raced[0].attempts, result.attempts, result.as_dict()["attempts"]) == (1, 2, 2)  # it retried once
    assert [(r["seq"], r["domain"]) for r in registry.history()] == [(1, "buyer"), (2, "supplier")]
    assert set(registry.read().domains) == {"supplier", "buyer"}


def test_a_write_that_stays_stale_names_who_won(tmp_path, registry, monkeypatch):
    workspace = repository(tmp_path)
    write = registry.write
    other = Registry.at(registry.uri)

    def always_beaten(base, domain, entry, **kwargs):
        latest = other.read(missing_ok=True)
        other.write(latest, "buyer", {"format": 1, "domain": "buyer", "products": {}, "reads": [], "n": latest.seq},
                    by="the-winner", changes=["raced"])
        return write(base, domain, entry, **kwargs)

    monkeypatch.setattr(registry, "write", always_beaten)
    with pytest.raises(StaleRegistryWrite, match=r"3 attempt\(s\).*written by the-winner .*\(domain buyer\)"):
        publish_domain(workspace, "supplier", registry, by="ci-supplier", retries=2)
    assert "supplier" not in registry.read().domains


def test_readers_of_every_domain_are_registered_with_their_pins(tmp_path, published):
    workspace = MeshWorkspace.load(next(tmp_path.glob("pub_*.yaml")))
    expected = sorted((str(c), str(s.ref), s.major) for loc in workspace.locations for c, _, s in loc.reads())
    assert sorted((r["consumer"], r["product"], r["major"]) for r in reads_of_parts(published)) == \
        [e for e in expected if ProductRef.parse(e[1]) == ProductRef("supplier", "parts")]


@pytest.mark.parametrize("garbage", [
    {"format": 1, "domain": "supplier", "products": "x", "reads": "y"},
    {"previous_majors": [{"major": 0, "version": "0.1.0", "until": "not a date"}]},
], ids=["entry-of-strings", "previous-major-until"])
def test_an_unreadable_registered_entry_refuses_the_publish_naming_the_registry_not_a_traceback(
        tmp_path, published, garbage):
    """A hand-edited entry of the publishing domain itself: the gate cannot judge against it, so it says so."""
    state = published.read()
    entry = state.domains["supplier"]
    if "format" in garbage:
        entry = garbage
    else:
        entry["products"] = {name: {**record, **garbage} for name, record in entry["products"].items()}
    published.write(state, "supplier", entry, by="someone by hand", changes=["hand edit"])
    result = publish_domain(supplier_only(tmp_path, published, supplier=WEIGHT), "supplier", published, by="ci")
    assert result.seq is None and [v.rule for v in result.refused] == ["registry-compatible"]
    assert f"the registry at {published.uri} (entry {state.seq + 1}) holds an entry that cannot be read" in str(result.refused[0])
