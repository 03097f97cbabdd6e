import subprocess
import sys

import pytest

from mesh_core import ProductRef, WorkspaceError
from mesh_core.governance.workspace import MeshWorkspace, read_entries
from tests.support import REPO, WORKSPACES


@pytest.mark.workspace
def test_the_workspace_orders_domains_upstream_first():
    workspace = MeshWorkspace.load(REPO / "workspace.yaml")
    assert workspace.violations() == []
    order = [loc.name for loc in workspace.domain_order()]
    assert sorted(order) == sorted(loc.name for loc in workspace.locations)
    for location in workspace.locations:
        for _, upstream in location.inputs():
            assert order.index(upstream.domain) <= order.index(location.name), (upstream, location.name)


def test_reading_an_internal_product_of_another_domain_is_a_violation():
    [violation] = MeshWorkspace.load(WORKSPACES / "private_dependency.yaml").violations()
    assert (violation.domain, violation.product, violation.rule) == ("snoop", "copied_items", "read-public-only")
    assert "vault.secret_items, whose access is 'internal'" in str(violation)


def test_reading_a_product_no_domain_publishes_is_a_violation():
    [violation] = MeshWorkspace.load(WORKSPACES / "missing_input.yaml").violations()
    assert violation.rule == "inputs-exist" and "vault.secret_items" in violation.message


def test_domains_reading_each_other_in_a_cycle_are_refused():
    with pytest.raises(WorkspaceError, match=r"cycle: (ping -> pong -> ping|pong -> ping -> pong)"):
        MeshWorkspace.load(WORKSPACES / "cycle.yaml").domain_order()


@pytest.mark.parametrize("name, rule", [("missing_owner", "owners-required"), ("bad_owner", "owners-valid")])
def test_a_location_that_breaks_a_rule_fails_to_load_with_the_rule(name, rule):
    with pytest.raises(WorkspaceError, match=rf"(?s)code location .{name}.*\[{rule}\] {name}\."):
        MeshWorkspace.load(WORKSPACES / f"{name}.yaml")


@pytest.mark.workspace
def test_unknown_domain_and_missing_file_are_clear_errors(tmp_path):
    workspace = MeshWorkspace.load(REPO / "workspace.yaml")
    with pytest.raises(WorkspaceError, match="No domain 'sales'.*domains: reference, fleet"):
        workspace.location("sales")
    with pytest.raises(WorkspaceError, match="No workspace file"):
        MeshWorkspace.load(tmp_path / "workspace.yaml")
    (tmp_path / "workspace.yaml").write_text("load_from:\n  - python_file: x.py\n")
    with pytest.raises(WorkspaceError, match="is not a python_module with a module_name"):
        MeshWorkspace.load(tmp_path / "workspace.yaml")


@pytest.mark.workspace
def test_loading_a_code_location_does_not_import_great_expectations():
    modules = [entry.module for entry in read_entries(REPO / "workspace.yaml")]
    code = (
        f"import sys, importlib; defs = [importlib.import_module(m).defs for m in {modules!r}];"
        "assert all(d.resolve_asset_graph() is not None for d in defs);"
        "print('great_expectations' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_product_refs_parse_and_map_to_asset_keys():
    ref = ProductRef.parse("operations.flights")
    assert ref == ProductRef("operations", "flights") and ref.asset_key.path == ["operations", "flights"]
    with pytest.raises(ValueError, match="'domain.product'"):
        ProductRef.parse("operations/flights")


def test_an_entry_names_its_own_interpreter_with_dagsters_executable_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # like Dagster: relative to where the command runs
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    python = tmp_path / "venv" / "bin" / "python"
    python.symlink_to(sys.executable)  # a virtualenv's python is a symlink: kept, not resolved
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text("load_from:\n"
                         "  - python_module: {module_name: a.definitions, location_name: a, working_directory: .}\n"
                         "  - python_module: {module_name: b.definitions, location_name: b, working_directory: ., "
                         "executable_path: venv/bin/python}\n")
    a, b = read_entries(workspace)
    assert (a.name, a.executable_path) == ("a", None)
    assert (b.name, b.module, b.working_directory, b.executable_path) == ("b", "b.definitions", str(tmp_path), str(python))

    workspace.write_text("load_from:\n  - python_module: {module_name: b.definitions, location_name: b, "
                         "executable_path: venv/bin/pyhton}\n")
    with pytest.raises(WorkspaceError, match=r"entry 1 \('b'\) has executable_path .*venv/bin/pyhton, which is not a file "
                                             r"\(name the python of the domain's own virtualenv"):
        read_entries(workspace)
    (tmp_path / "notes.txt").write_text("")
    workspace.write_text("load_from:\n  - python_module: {module_name: b.definitions, location_name: b, "
                         "executable_path: notes.txt}\n")
    with pytest.raises(WorkspaceError, match=r"notes.txt, which is not an executable file"):
        read_entries(workspace)
