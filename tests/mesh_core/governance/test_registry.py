"""A domain's registry entry, the domain rebuilt from it, and a location loaded by another interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import dagster as dg
import pytest
import yaml

from mesh_core import ProductRef
from mesh_core.errors import WorkspaceError
from mesh_core.governance.lint import lint_mesh
from mesh_core.governance.registry import RegistryLocation, _decode, _encode, domain_entry
from mesh_core.governance import consumers, snapshots
from mesh_core.governance.snapshots import check_contracts, contract_document
from mesh_core.governance.workspace import MeshWorkspace, read_entries
from mesh_core.storage.registry import RegistryState
from tests.support import FIXTURES, REPO, WORKSPACES


def fixture_meshes() -> list[Path]:
    """Every fixture workspace whose code locations all load (a broken one has no entry to write)."""
    return [path for path in sorted(WORKSPACES.glob("*.yaml")) if not MeshWorkspace.load_partial(path)[1]]


def as_registry(workspace: MeshWorkspace, uri: str = "file:///registry") -> RegistryState:
    """Every location's entry, through JSON, as the store would hand it back."""
    domains = {loc.name: json.loads(json.dumps(domain_entry(loc))) for loc in workspace.locations}
    return RegistryState(uri, len(domains), domains, None)


def alone(tmp_path: Path, workspace: Path, domain: str) -> Path:
    """A workspace file that lists `domain` only, in a folder of its own."""
    [target] = [item["python_module"] for item in yaml.safe_load(workspace.read_text())["load_from"]
                if item["python_module"]["location_name"] == domain]
    path = tmp_path / domain / "workspace.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump({"load_from": [{"python_module": {**target, "working_directory": str(FIXTURES)}}]}))
    return path


def findings(report) -> set:
    return ({("error", v.domain, v.product, v.rule, v.message) for v in report.violations}
            | {("warning", v.domain, v.product, v.rule, v.message) for v in report.warnings})


@pytest.mark.workspace
def test_an_entry_is_json_in_a_stable_order_and_rebuilds_the_specs_the_rules_read():
    workspace = MeshWorkspace.load(REPO / "workspace.yaml")
    for location in workspace.locations:
        entry = domain_entry(location)
        assert json.loads(json.dumps(entry)) == entry and entry == domain_entry(location)
        assert list(entry["products"]) == sorted(entry["products"])
        assert [(r["consumer"], r["input"]) for r in entry["reads"]] == sorted((r["consumer"], r["input"]) for r in entry["reads"])
        rebuilt = RegistryLocation.from_entry(json.loads(json.dumps(entry)), "registry:/somewhere")
        assert rebuilt.name == location.name and rebuilt.module == "registry:/somewhere" and rebuilt.defs is None
        assert set(rebuilt.products) == set(location.products)
        for ref, spec in location.products.items():
            again = rebuilt.products[ref]
            assert (again.owners, again.description, dict(again.tags)) == (spec.owners, spec.description, dict(spec.tags))
            assert sorted(d.asset_key.to_user_string() for d in again.deps) == sorted(d.asset_key.to_user_string() for d in spec.deps)
            if spec.metadata["mesh/access"] == "public":
                assert set(again.metadata) == set(spec.metadata)
                assert contract_document(ref, again) == contract_document(ref, spec)
                assert entry["products"][ref.product]["contracts"][spec.metadata["mesh/version"].split(".")[0]] == \
                    contract_document(ref, spec)
                assert again.freshness_policy == spec.freshness_policy
        assert sorted(rebuilt.reads(), key=str) == sorted(location.reads(), key=str)
        assert sorted(rebuilt.inputs()) == sorted(set(location.inputs()))
        assert domain_entry(rebuilt) == entry  # nothing is lost on the way: the rebuilt domain writes the same entry


def test_metadata_values_travel_as_json_and_come_back_as_the_same_values():
    values = [1, 2.5, True, None, "text", dg.MetadataValue.json({"a": [1]}), dg.MetadataValue.md("**b**"),
              dg.MetadataValue.url("https://example.com"), dg.MetadataValue.path("/data/x"), dg.MetadataValue.timestamp(5.0),
              dg.TableSchema(columns=[dg.TableColumn("a", "int64", "A.", dg.TableColumnConstraints(False, True, [">= 0"]))],
                             constraints=dg.TableConstraints(other=["unique(a)"]))]
    for value in values:
        encoded = _encode(value)
        assert json.loads(json.dumps(encoded)) == encoded and _decode(encoded) == value


def test_an_internal_product_tells_other_domains_whether_they_may_read_it_and_nothing_of_its_columns():
    workspace = MeshWorkspace.load(WORKSPACES / "private_dependency.yaml")
    vault = workspace.location("vault")
    internal = [ref for ref, spec in vault.products.items() if spec.metadata["mesh/access"] != "public"]
    assert internal, "the fixture has an internal product"
    entry = domain_entry(vault)
    for ref in internal:
        record = entry["products"][ref.product]
        assert record["contracts"] == {} and record["access"] == "internal"
        assert "dagster/column_schema" not in record["metadata"] and "mesh/column_checks" not in record["metadata"]
        assert record["lifecycle"]["status"] == "active"


@pytest.mark.parametrize("workspace", fixture_meshes(), ids=lambda path: path.stem)
def test_each_domain_alone_with_the_others_entries_gets_the_findings_it_gets_in_the_monorepo(workspace, tmp_path):
    monorepo = lint_mesh(workspace)
    registry = as_registry(MeshWorkspace.load(workspace))
    for domain in monorepo.domains:
        report = lint_mesh(alone(tmp_path, workspace, domain), registry=registry)
        assert report.load_errors == ()
        assert {f for f in findings(report) if f[1] != "*"} == {f for f in findings(monorepo) if f[1] == domain}, domain
        # A cycle through a domain whose code is not here is still a cycle.
        assert {f for f in findings(report) if f[1] == "*"} == {f for f in findings(monorepo) if f[1] == "*"}


def test_a_producer_alone_writes_its_remote_readers_reliance_into_its_consumers_file_as_the_monorepo_does(tmp_path):
    """Each domain with the others known from their entries only: the consumers file it would write
    (who reads it, their owners, pins, columns and the expectations its audits run) is the
    monorepo's, and its contract findings name the same readers."""
    path = WORKSPACES / "supplier_buyer.yaml"
    workspace = MeshWorkspace.load(path)
    registry = as_registry(workspace)
    reads, owners = snapshots._reads(workspace)
    read_remotely = 0
    for location in workspace.locations:
        only = MeshWorkspace.load(alone(tmp_path, path, location.name), registry=registry)
        assert [loc.name for loc in only.locations] == [location.name]
        wanted = consumers.reliance_document(reads, location.name, owners)
        assert consumers.reliance_document(*snapshots._reads(only)[:1], location.name, snapshots._reads(only)[1]) == wanted
        read_remotely += sum(1 for entries in wanted.values() for item in entries
                             if ProductRef.parse(item["consumer"]).domain != location.name and item["expectations"])
        mine = lambda found: [v for v in found if v.domain == location.name]  # noqa: E731
        assert tuple(map(mine, check_contracts(only))) == tuple(map(mine, check_contracts(workspace)))
    assert read_remotely, "a reader in another domain relies on expectations: the fixture shows them crossing"


def test_local_code_wins_over_the_registry_and_a_bad_entry_is_a_load_failure_naming_the_registry(tmp_path):
    path = WORKSPACES / "private_dependency.yaml"
    registry = as_registry(MeshWorkspace.load(path), uri=str(tmp_path / "registry"))
    both, failures = MeshWorkspace.load_partial(path, registry=registry)
    assert failures == [] and both.remote == ()  # every registry domain is listed, so none is remote

    domains = dict(registry.domains)
    reader = next(iter(domains))
    broken = {**domains[reader], "products": {"x": {"owners": []}}}
    newer = {**domains[reader], "format": 2}
    for entry, message in ((broken, rf"The entry of domain '{reader}' from registry:{tmp_path}/registry cannot be read "
                                    rf"\(KeyError: .*\)\. Fix: republish it from its repository \(`mesh registry publish -d {reader}`\)"),
                           (newer, r"is in format 2; this mesh-core \(.*\) reads format 1\. Fix: upgrade mesh-core here\.")):
        state = RegistryState(registry.uri, 3, {**domains, reader: entry}, None)
        others = [name for name in domains if name != reader]
        workspace, failures = MeshWorkspace.load_partial(alone(tmp_path / str(id(entry)), path, others[0]), registry=state)
        [failure] = failures
        assert failure.name == reader and failure.module == f"registry:{registry.uri}"
        assert __import__("re").search(message, failure.message), failure.message
        with pytest.raises(WorkspaceError, match="failed to load"):
            MeshWorkspace.load(alone(tmp_path / f"{id(entry)}b", path, others[0]), registry=state)


# -- another interpreter ------------------------------------------------------------------

@pytest.fixture(scope="module")
def other_python(tmp_path_factory) -> Path:
    """A second, real virtualenv whose packages are this one's (a .pth adds them as a site dir):
    enough to show the location is loaded by that interpreter, in a process of its own."""
    venv = tmp_path_factory.mktemp("other") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "parent_env.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    return python


def domain_module(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}_defs.py").write_text(body)


def test_an_entry_with_its_own_executable_path_is_loaded_by_that_interpreter(other_python, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    # The product says which interpreter built it: the proof that the other one did.
    domain_module(code, "elsewhere", '''
import sys
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series
from mesh_core import Expectation, data_product, domain_definitions

SUITE = [Expectation("ExpectColumnValuesToNotBeNull", column="row_id")]

class Rows(pa.DataFrameModel):
    row_id: Series[int] = pa.Field(unique=True, description="Row number.")

    class Config:
        strict = True

print("domain code may print; the entry stays parseable")

@data_product(domain="elsewhere", description="One row per row, built by " + sys.prefix + ".", owners=["team:elsewhere"],
              contract=Rows, suite=SUITE, version="1.2.0")
def rows():
    return pd.DataFrame({"row_id": [1]})

@data_product(domain="elsewhere", description="One row per row read.", owners=["team:elsewhere"], contract=Rows, suite=SUITE,
              inputs={"rows": "elsewhere.rows", "parts": "supplier.parts@1"}, access="internal")
def copies(rows, parts):
    return rows

defs = domain_definitions("elsewhere", [rows, copies])
''')
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [
        {"python_module": {"module_name": "fixture_domains.supplier", "location_name": "supplier", "working_directory": str(FIXTURES)}},
        {"python_module": {"module_name": "elsewhere_defs", "location_name": "elsewhere", "working_directory": str(code),
                           "executable_path": str(other_python)}}]}))
    loaded, failures = MeshWorkspace.load_partial(workspace)
    assert failures == []
    [remote] = loaded.remote
    assert remote.name == "elsewhere" and remote.module == f"executable:{other_python}" and remote.defs is None
    rows = remote.products[ProductRef("elsewhere", "rows")]
    assert str(other_python.parent.parent) in rows.description and rows.metadata["mesh/version"] == "1.2.0"
    assert "elsewhere_defs" not in sys.modules  # never imported here
    assert ProductRef("elsewhere", "rows") in loaded.products() and ProductRef("supplier", "parts") in loaded.products()
    # It reads supplier's major 1: supplier's readers (and consumers file) now include it.
    [reader] = [r for r in remote.reads() if r[2].ref == ProductRef("supplier", "parts")]
    assert reader[0] == ProductRef("elsewhere", "copies") and reader[2].major == 1
    assert [loc.name for loc in loaded.domain_order()] == ["supplier"]  # remote domains do not run here
    assert [loc.name for loc in loaded.domain_order(remote=True)] == ["supplier", "elsewhere"]  # it reads supplier

    # The same interpreter as this one: loaded here, in process.
    workspace.write_text(workspace.read_text().replace(str(other_python), sys.executable))
    local, _ = MeshWorkspace.load_partial(workspace)
    assert [loc.name for loc in local.locations] == ["supplier", "elsewhere"] and local.remote == ()


def test_a_broken_location_in_another_interpreter_is_a_load_failure_naming_it_and_the_fix(other_python, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    domain_module(code, "broken", "import pandas as pd\nraise RuntimeError('the domain code is broken')\n")
    domain_module(code, "unowned", '''
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series
from mesh_core import Expectation, data_product, domain_definitions

SUITE = [Expectation("ExpectColumnValuesToNotBeNull", column="row_id")]

class Rows(pa.DataFrameModel):
    row_id: Series[int] = pa.Field(description="Row number.")

@data_product(domain="unowned", description="One row per row.", owners=[], contract=Rows, suite=SUITE)
def rows():
    return pd.DataFrame({"row_id": [1]})

defs = domain_definitions("unowned", [rows])
''')
    workspace = tmp_path / "workspace.yaml"
    entries = [{"python_module": {"module_name": f"{name}_defs", "location_name": name, "working_directory": str(code),
                                  "executable_path": str(other_python)}} for name in ("broken", "unowned", "missing")]
    workspace.write_text(yaml.safe_dump({"load_from": entries}))
    assert [e.executable_path for e in read_entries(workspace)] == [str(other_python)] * 3
    _, failures = MeshWorkspace.load_partial(workspace)
    broken, unowned, missing = failures
    assert (broken.name, broken.module) == ("broken", "broken_defs")
    assert str(broken).startswith("code location 'broken' (broken_defs):")
    assert "RuntimeError: the domain code is broken. Fix: run `mesh lint -v` for the traceback." in broken.message
    assert [v.rule for v in unowned.violations] == ["owners-required"]  # a broken rule comes back as the rule
    assert "ModuleNotFoundError" in missing.message and "Fix: check module_name in workspace.yaml" in missing.message

    bare = tmp_path / "bare"  # an interpreter without mesh-core
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    workspace.write_text(yaml.safe_dump({"load_from": [{"python_module": {**entries[0]["python_module"],
                                                                            "executable_path": str(bare / "bin" / "python")}}]}))
    [failure] = MeshWorkspace.load_partial(workspace)[1]
    assert f"{bare}/bin/python could not print the entry (exit 1)" in failure.message
    assert "No module named" in failure.message and "Fix: install mesh-core" in failure.message


def test_an_entry_cannot_register_a_read_for_another_domains_product(tmp_path):
    registry = as_registry(MeshWorkspace.load(WORKSPACES / "private_dependency.yaml"))
    domains = dict(registry.domains)
    spoofer, victim = sorted(domains)[:2]
    [victim_product] = list(domains[victim]["products"])[:1]
    spoofed = {**domains[spoofer], "reads": [*domains[spoofer]["reads"], {
        "consumer": f"{victim}.{victim_product}", "owners": ["team:someone_else"], "input": "x",
        "product": f"{spoofer}.anything", "major": None, "columns": None, "expectations": []}]}
    with pytest.raises(WorkspaceError, match=rf"The entry of domain '{spoofer}' from registry:/r cannot be read .*its reads "
                                             rf"name {victim}\.{victim_product}, a product of domain '{victim}'"):
        RegistryLocation.from_entry(spoofed, "registry:/r")


@pytest.mark.parametrize("wrong", [None, True, 7, "x", [[1]], {"a": {}}])
def test_a_product_field_of_any_wrong_type_is_an_error_naming_the_domain_and_the_registry(wrong):
    registry = as_registry(MeshWorkspace.load(WORKSPACES / "private_dependency.yaml"))
    for domain in registry.domains:
        entry = registry.domains[domain]
        for product, record in entry["products"].items():
            for field in record:
                broken = json.loads(json.dumps(entry))
                broken["products"][product][field] = wrong
                try:
                    RegistryLocation.from_entry(broken, "registry:/r")
                except WorkspaceError as exc:  # anything else is a traceback in lint, catalog and status
                    assert f"The entry of domain '{domain}' from registry:/r cannot be read" in str(exc)
            broken = json.loads(json.dumps(entry))
            broken["products"][product]["owners"] = [wrong]  # no owner is None, a number or a list
            with pytest.raises(WorkspaceError, match=f"The entry of domain '{domain}' from registry:/r"):
                RegistryLocation.from_entry(broken, "registry:/r")


def test_an_interpreter_without_mesh_core_in_a_folder_with_a_space_gets_a_fix_that_can_be_pasted(tmp_path):
    from mesh_core.governance.registry import entry_from_interpreter

    venv = tmp_path / "with space" / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    with pytest.raises(WorkspaceError) as caught:
        entry_from_interpreter(python, "somewhere.definitions", "somewhere", str(tmp_path))
    message = str(caught.value)
    assert f"`'{python}' -m pip install mesh-core`" in message, message


def test_an_interpreter_that_hangs_is_announced_then_given_up_on_naming_the_command(tmp_path, caplog):
    from mesh_core.governance.registry import entry_from_interpreter

    hanging = tmp_path / "python"
    child = tmp_path / "child.pid"
    hanging.write_text(f"#!/bin/sh\nsleep 600 &\necho $! > {child}\nwait\n")  # a child of its own holds the pipes
    hanging.chmod(0o755)
    started = __import__("time").monotonic()
    with caplog.at_level("WARNING", logger="mesh"), pytest.raises(WorkspaceError, match=r"printed no entry within 3 s"):
        entry_from_interpreter(str(hanging), "somewhere.definitions", "somewhere", str(tmp_path), timeout=3, notice_after=1)
    assert __import__("time").monotonic() - started < 30
    assert f"Waiting for {hanging} to print the registry entry of domain somewhere" in caplog.text
    os.kill(int(child.read_text()), 9)  # the orphan the killed interpreter left
