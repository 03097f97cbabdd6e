"""mesh preview's API on the supplier/buyer fixture mesh: sandbox runs read the real ports through, write nothing real."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from mesh_core import ProductRef
from mesh_core.errors import PreviewError
from mesh_core.governance.workspace import MeshWorkspace
from mesh_core.operate.preview import changed_products, downstream, preview, sandbox_environment
from mesh_core.run.materialize import materialize_mesh
from mesh_core.storage.domain_storage import READ_THROUGH_ENV
from tests.support import FIXTURES, WORKSPACES, commit_on_main

WORKSPACE = WORKSPACES / "supplier_buyer.yaml"


def real_state(home: Path) -> dict:
    """What a sandbox must never change: every file of the real ports and stores, the instance's runs and events."""
    files = {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted((home / "data").rglob("*")) if p.is_file()}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return {"files": files, "runs": len(instance.get_runs()),
                "latest_event": instance.event_log_storage.get_maximum_record_id()}


@pytest.fixture
def real(instance, dagster_home):
    """The fixture mesh, materialized for real: its ports and instance are what previews compare with."""
    workspace = MeshWorkspace.load(WORKSPACE)
    summary = materialize_mesh(workspace, instance)
    assert summary.ok, [(p.ref, p.message) for p in summary.products]
    return workspace, dagster_home


def test_the_closure_is_every_product_reading_a_changed_one_directly_or_not():
    workspace = MeshWorkspace.load(WORKSPACE)
    readers = {}
    for location in workspace.locations:
        for consumer, upstream in location.inputs():
            readers.setdefault(upstream, set()).add(consumer)
    for ref in workspace.products():
        closure = downstream(workspace, [ref])
        assert closure[0] == ref or ref not in closure[1:]
        assert readers.get(ref, set()) <= set(closure), (ref, closure)
        for reader in closure[1:]:  # every product in it reads one before it
            assert any(up in closure[:closure.index(reader)] for up in readers if reader in readers[up]), reader


def test_a_preview_of_a_producer_reruns_its_consumers_and_changes_nothing_real(real):
    workspace, home = real
    producer = next(ref for ref in workspace.products() if downstream(workspace, [ref])[1:])
    before = real_state(home)
    result = preview(WORKSPACE, products=[str(producer)], real_home=home)
    assert real_state(home) == before
    assert [p.ref for p in result.products] == list(downstream(workspace, [producer]))
    assert result.changed == (producer,) and result.base is None
    for product in result.products:
        assert product.status == "published", product.message
        assert product.diff is not None and product.diff.is_empty, (product.ref, product.diff)  # same code, same data
        assert product.owners == tuple(workspace.products()[product.ref][1].owners)
        assert {check.name for check in product.checks} == {
            key.name for key in workspace.products()[product.ref][0].defs.resolve_assets_def(product.ref.asset_key).check_keys}
        for check in product.checks:  # the same data: every check as it is today
            assert check.before is not None and check.after == check.before, (product.ref, check)
    readers = {c for loc in workspace.locations for c, up in loc.inputs() if up == producer}
    assert {c.ref for c in result.products[0].consumers} == readers
    assert result.exit_code == 0 and not result.newly_failing


def test_a_consumer_expectation_is_attributed_to_the_consumer_and_its_owners(real):
    workspace, home = real
    relied = [(producer, consumer, param, spec) for loc in workspace.locations for consumer, param, spec in loc.reads()
              for producer in [spec.ref] if spec.expectations]
    assert relied, "the fixture mesh has a consumer expectation"
    producer, consumer, _, _ = relied[0]
    result = preview(WORKSPACE, products=[str(producer)], real_home=home)
    attributed = [check for check in result.products[0].checks if check.consumer is not None]
    assert attributed and {check.consumer for check in attributed} == {str(consumer)}
    assert all(check.owners == tuple(workspace.products()[consumer][1].owners) for check in attributed)
    assert all(check.consumer is None and check.owners == result.products[0].owners
               for check in result.products[0].checks if check not in attributed)


def test_a_consumer_pinned_to_an_older_major_reads_it_through_at_its_real_version(real):
    workspace, home = real
    pinned = [(consumer, spec) for loc in workspace.locations for consumer, _, spec in loc.reads() if spec.major is not None]
    assert pinned, "the fixture mesh has a reader pinned to an older major"
    consumer, spec = pinned[0]
    before = real_state(home)
    kept = home.parent / "kept"
    result = preview(WORKSPACE, products=[str(consumer)], real_home=home, keep_sandbox=kept)
    assert real_state(home) == before
    [product] = result.products
    assert product.status == "published", product.message
    assert product.diff.is_empty
    # --keep-sandbox: the sandbox's own instance and port stay for a look, and the preview says where.
    assert (kept / "dagster_home" / "dagster.yaml").is_file()
    assert (kept / "ports" / consumer.domain / "ports" / consumer.product / "_delta_log").is_dir()
    assert not (kept / "ports" / spec.ref.domain).exists()  # read through, never copied
    assert any(str(kept) in note for note in result.notes)
    with pytest.raises(PreviewError, match="is not empty: name a new or empty folder"):
        preview(WORKSPACE, products=[str(consumer)], real_home=home, keep_sandbox=kept)


def test_the_sandbox_environment_is_scoped_and_restored_even_on_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MESH_PORTS_URI", "/real/ports")
    monkeypatch.setenv("OPENLINEAGE_URL", "http://lineage.example")
    monkeypatch.delenv(READ_THROUGH_ENV, raising=False)
    saved = dict(os.environ)
    with pytest.raises(RuntimeError):
        with sandbox_environment(tmp_path, "/real/ports"):
            assert os.environ["MESH_PORTS_URI"] == str(tmp_path / "ports")
            assert os.environ["DAGSTER_HOME"] == str(tmp_path / "dagster_home")
            assert os.environ["MESH_DATA_DIR"] == str(tmp_path / "data")
            assert os.environ[READ_THROUGH_ENV] == "/real/ports"
            assert "OPENLINEAGE_URL" not in os.environ and os.environ["OPENLINEAGE_DISABLED"] == "true"
            raise RuntimeError("a run broke")
    assert dict(os.environ) == saved


def test_an_unknown_product_is_a_clear_error(real):
    workspace, home = real
    some = next(iter(workspace.products()))
    with pytest.raises(PreviewError, match=rf"No product {some.domain}\.nope .*did you mean"):
        preview(WORKSPACE, products=[f"{some.domain}.nope"], real_home=home)


def test_a_named_product_outside_the_domains_given_is_a_clear_error(real):
    workspace, home = real
    ref = next(iter(workspace.products()))
    other = next((loc.name for loc in workspace.locations if loc.name != ref.domain), None)
    if other is None:
        pytest.skip("this mesh has one domain")
    with pytest.raises(PreviewError, match=rf"{ref.domain}\.{ref.product} is not in the domain\(s\) given with -d \({other}\)"):
        preview(WORKSPACE, products=[str(ref)], domains=[other], real_home=home)


def git_copy(tmp_path: Path) -> Path:
    """The fixture folder as a git repository with one commit on main."""
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES, repo, ignore=shutil.ignore_patterns("__pycache__", "data"))
    commit_on_main(repo)
    return repo


def test_outside_git_or_with_an_unknown_base_preview_says_what_to_do(tmp_path, monkeypatch):
    workspace = MeshWorkspace.load(WORKSPACE)
    outside = tmp_path / "plain"
    shutil.copytree(FIXTURES / "workspaces", outside)
    with pytest.raises(PreviewError, match="is not in a git repository.*Name the products to preview instead"):
        changed_products(outside / "supplier_buyer.yaml", workspace, None)
    repo = git_copy(tmp_path)
    monkeypatch.chdir(repo)
    with pytest.raises(PreviewError, match="'no-such-ref' is not a commit of .*--base"):
        changed_products(repo / "workspaces" / "supplier_buyer.yaml", workspace, "no-such-ref")
    untracked = repo / "workspaces" / "untracked.yaml"
    shutil.copy(repo / "workspaces" / "supplier_buyer.yaml", untracked)
    with pytest.raises(PreviewError, match="workspaces/untracked.yaml is not in main .*new or not committed"):
        changed_products(untracked, workspace, "main")


def test_what_changed_is_read_from_the_definitions_of_both_sides(tmp_path, monkeypatch):
    repo = git_copy(tmp_path)
    monkeypatch.chdir(repo)  # the workspace's entries are relative to where the command runs
    path = repo / "workspaces" / "supplier_buyer.yaml"
    workspace = MeshWorkspace.load(path)
    assert changed_products(path, workspace, None).refs == ()
    buyer = repo / "fixture_domains" / "buyer.py"
    text = buyer.read_text()
    # One product's function changes: that product only.
    buyer.write_text(text.replace('"amount": parts["price"]', '"amount": parts["price"] * 1.2'))
    changes = changed_products(path, workspace, "main")
    assert changes.refs == (ProductRef("buyer", "current_prices"),) and not changes.notes
    assert len(changes.base) == 40
    # Code outside the product functions (a helper, a constant): every product of the domain, said so.
    buyer.write_text(text + "\nVAT = 1.2\n")
    changes = changed_products(path, workspace, "main")
    assert set(changes.refs) == {ref for ref in workspace.products() if ref.domain == "buyer"}
    assert any("domain 'buyer' outside its product functions changed" in note for note in changes.notes)
    # A side that does not load is named, with the error.
    buyer.write_text(text.replace("def current_prices(parts):", "def current_prices(parts) oops:"))
    with pytest.raises(PreviewError, match=r"(?s)The mesh in the working tree does not load.*code location .buyer.*SyntaxError"):
        changed_products(path, workspace, "main")
    listed = subprocess.run(["git", "worktree", "list"], cwd=repo, capture_output=True, text=True).stdout
    assert len(listed.strip().splitlines()) == 1, listed  # the base worktrees were removed


def test_a_publish_on_the_real_mesh_during_a_preview_changes_neither_what_it_reads_nor_what_it_compares_with(real):
    """`mesh materialize` running meanwhile: the sandbox reads the inputs' versions current when it started,
    and each diff compares with the product's version current then, not one published half-way."""
    import deltalake

    from mesh_core.operate.preview import RealMesh
    from mesh_core.storage.domain_storage import port_at

    workspace, home = real
    producer = next(ref for ref in workspace.products() if downstream(workspace, [ref])[1:])
    inside = set(downstream(workspace, [producer]))
    inputs = {ProductRef.from_asset_key(dep.asset_key) for ref in inside for dep in workspace.products()[ref][1].deps}
    ports_uri = RealMesh.resolve(home).ports_uri
    published = []

    def publish_meanwhile(message: str) -> None:  # a real run publishing each product again, a row fewer
        if published or not message.startswith("Sandbox run"):
            return
        for ref in sorted(inside | inputs, key=str):
            port = port_at(ports_uri, ref)
            latest = port.latest()
            port.publish(deltalake.DeltaTable(port.uri).to_pyarrow_table().slice(1), run_id="meanwhile",
                         product_version=latest.product_version, contract_fingerprint="", access="public")
            published.append(ref)

    result = preview(WORKSPACE, products=[str(producer)], real_home=home, say=publish_meanwhile)
    assert set(published) == inside | inputs
    for product in result.products:  # same code, same inputs as when the preview started: the same data
        assert product.status == "published", product.message
        assert product.diff is not None and product.diff.is_empty, (product.ref, product.diff)


def test_a_preview_against_a_mesh_that_never_published_the_products_says_so(tmp_path):
    # A wrong or unset DAGSTER_HOME in CI: every row "added" must not pass for the change's effect unexplained.
    workspace = MeshWorkspace.load(WORKSPACE)
    source = next(ref for ref, (_, spec) in sorted(workspace.products().items(), key=lambda item: str(item[0]))
                  if not spec.deps)
    result = preview(WORKSPACE, products=[str(source)], real_home=tmp_path / "elsewhere")
    assert result.products[0].diff.rows_before == 0
    [note] = [note for note in result.notes if note.startswith("Never published in the real mesh")]
    assert str(tmp_path / "elsewhere") in note and all(str(p.ref) in note for p in result.products)


def test_with_a_registry_a_domain_imported_before_is_refused_not_previewed_with_its_files_checks(tmp_path):
    # Its consumers' checks were built when its code was first imported, from its committed file: the
    # registry's readers can no longer apply, and a preview must not pass with the wrong expectations.
    from mesh_core.governance.registry import domain_entry
    from mesh_core.storage.registry import Registry

    workspace = MeshWorkspace.load(WORKSPACE)  # imports every domain's code in this process
    location = workspace.locations[0]
    registry = Registry.at(tmp_path / "registry")
    state = registry.write(registry.read(missing_ok=True), location.name, domain_entry(location), by="t", changes=["x"])
    source = next(iter(location.products))
    with pytest.raises(PreviewError, match=rf"Domain '{location.name}' was imported in this process before .*fresh process"):
        preview(WORKSPACE, products=[str(source)], real_home=tmp_path / "elsewhere", registry=state)
