"""`mesh registry publish|show|history`, and `mesh catalog|status --registry`, as a domain's CI and its
people run them: real `mesh` processes on a copy of the repository, a registry folder and an
S3-protocol server."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from mesh_core.governance.workspace import MeshWorkspace, read_entries
from tests.deploy.servers import s3_server
from tests.support import REPO, copy_repository, free_port, make_dagster_home, run_mesh, workspace_domains

pytestmark = pytest.mark.workspace

CI = {"MESH_PUBLISHED_BY": "ci-bot"}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory) -> dict:
    """The repository's copy, its whole mesh published domain by domain (in workspace order) into a
    registry folder, and what the workspace says of every product."""
    root = tmp_path_factory.mktemp("registry_cli")
    repo = copy_repository(root / "mesh")
    home = make_dagster_home(root)
    registry = root / "registry"
    runs = [run_mesh("registry", "publish", "-d", domain, "--registry", str(registry), home=home, cwd=repo, env_extra=CI)
            for domain in workspace_domains(repo / "workspace.yaml")]
    workspace = MeshWorkspace.load(repo / "workspace.yaml")
    return {"repo": repo, "home": home, "registry": registry, "runs": runs, "workspace": workspace}


def mesh_json(*args, mesh, **kwargs) -> object:
    run = run_mesh(*args, "--json", home=mesh["home"], cwd=mesh["repo"], **kwargs)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_every_domain_is_published_in_turn_and_shown_as_its_code_declares_it(mesh):
    domains = workspace_domains(mesh["repo"] / "workspace.yaml")
    for number, (domain, run) in enumerate(zip(domains, mesh["runs"]), 1):
        assert run.returncode == 0, run.stdout + run.stderr
        assert f"{domain} published to {mesh['registry']} as entry {number} by ci-bot:" in run.stdout
    shown = mesh_json("registry", "show", "--registry", str(mesh["registry"]), mesh=mesh)
    assert shown["seq"] == len(domains) and sorted(shown["domains"]) == sorted(domains)
    readers: dict[str, set[str]] = {}
    for location in mesh["workspace"].locations:
        for consumer, _, spec in location.reads():
            readers.setdefault(str(spec.ref), set()).add(str(consumer))
    registered: dict[str, set[str]] = {}
    for entry in shown["domains"].values():
        for read in entry["reads"]:
            registered.setdefault(read["product"], set()).add(read["consumer"])
    assert registered == readers
    for ref, (location, spec) in mesh["workspace"].products().items():
        product = shown["domains"][location.name]["products"][ref.product]
        assert product["owners"] == list(spec.owners) and product["access"] == spec.metadata["mesh/access"]
        assert product["version"] == spec.metadata["mesh/version"]
    most_read = max(readers, key=lambda ref: (len(readers[ref]), ref))  # one product as `show DOMAIN.PRODUCT` gives it
    product = mesh_json("registry", "show", most_read, "--registry", str(mesh["registry"]), mesh=mesh)
    assert product["product"] == most_read and {read["consumer"] for read in product["readers"]} == readers[most_read]
    text = run_mesh("registry", "show", "--registry", str(mesh["registry"]), home=mesh["home"], cwd=mesh["repo"])
    assert text.returncode == 0 and all(f"\n{domain} (mesh-core " in text.stdout for domain in domains), text.stdout


def test_history_says_who_published_what_and_an_unchanged_domain_writes_nothing(mesh):
    domains = workspace_domains(mesh["repo"] / "workspace.yaml")
    history = mesh_json("registry", "history", "--registry", str(mesh["registry"]), mesh=mesh)
    assert [(r["seq"], r["domain"], r["by"]) for r in history] == [(n, d, "ci-bot") for n, d in enumerate(domains, 1)]
    assert all(r["changes"] for r in history)
    again = run_mesh("registry", "publish", "-d", domains[0], "--by", "someone", "--registry", str(mesh["registry"]),
                     home=mesh["home"], cwd=mesh["repo"])
    assert again.returncode == 0, again.stderr
    assert f"{domains[0]} is unchanged in {mesh['registry']}" in again.stdout
    assert len(mesh_json("registry", "history", domains[0], "--registry", str(mesh["registry"]), mesh=mesh)) == 1
    first = run_mesh("registry", "show", "--at", "1", "--json", "--registry", str(mesh["registry"]), home=mesh["home"],
                     cwd=mesh["repo"])
    assert list(json.loads(first.stdout)["domains"]) == [domains[0]]


def test_the_catalog_of_a_one_domain_workspace_lists_the_whole_mesh_from_the_registry(mesh):
    repo, workspace = mesh["repo"], mesh["workspace"]
    last = workspace.domain_order()[-1].name  # it reads others: its producers come from the registry only
    [entry] = [e for e in read_entries(repo / "workspace.yaml") if e.name == last]
    one = repo / "one_domain.yaml"
    one.write_text(f"load_from:\n  - python_module: {{module_name: {entry.module}, location_name: {last}, "
                   "working_directory: .}\n")
    alone = mesh_json("catalog", "-w", str(one), mesh=mesh)
    assert {e["domain"] for e in alone} == {last}  # without the registry it knows its own domain only
    catalog = mesh_json("catalog", "-w", str(one), "--registry", str(mesh["registry"]), mesh=mesh)
    assert {e["product"] for e in catalog} == {str(ref) for ref in workspace.products()}
    for e in catalog:
        location, spec = workspace.products()[ref_of(e["product"])]
        assert e["domain"] == location.name and e["owners"] == list(spec.owners)
        assert (e["source"] == "code") == (location.name == last), e
        assert e["last_publish"] is None  # this instance never materialized anything: no crash, no data
    status = run_mesh("status", "--json", "-w", str(one), "--registry", str(mesh["registry"]), home=mesh["home"], cwd=repo)
    assert status.returncode in (0, 1), status.stderr
    scored = {d["domain"]: d for d in json.loads(status.stdout)["domains"]}
    assert set(scored) == set(workspace_domains(repo / "workspace.yaml"))
    for domain, group in scored.items():
        owners = {str(ref): list(spec.owners) for ref, (loc, spec) in workspace.products().items() if loc.name == domain}
        assert {p["product"]: p["owners"] for p in group["products"]} == owners


def ref_of(text: str):
    from mesh_core.declare.ref import ProductRef

    return ProductRef.parse(text)


def test_an_s3_registry_holds_a_publish_and_an_unreachable_one_is_one_line_naming_it(mesh):
    source = mesh["workspace"].domain_order()[0].name
    with s3_server("contracts") as (env, _):
        uri = "s3://contracts/mesh"
        run = run_mesh("registry", "publish", "-d", source, "--registry", uri, home=mesh["home"], cwd=mesh["repo"],
                       env_extra={**env, **CI})
        assert run.returncode == 0, run.stdout + run.stderr
        assert f"{source} published to {uri} as entry 1" in run.stdout
        shown = mesh_json("registry", "show", source, "--registry", uri, mesh=mesh, env_extra=env)
        assert set(shown["products"]) == {ref.product for ref in mesh["workspace"].location(source).products}
        missing = run_mesh("registry", "show", "--registry", "s3://no-such-bucket/mesh", home=mesh["home"],
                           cwd=mesh["repo"], env_extra=env)
        assert missing.returncode == 2 and "s3://no-such-bucket/mesh" in missing.stderr
        assert len(missing.stderr.strip().splitlines()) == 1, missing.stderr
    nobody = {**env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_MAX_ATTEMPTS": "1"}
    for command in (["registry", "show"], ["registry", "publish", "-d", source], ["catalog"]):
        run = run_mesh(*command, "--registry", uri, home=mesh["home"], cwd=mesh["repo"], env_extra={**nobody, **CI},
                       timeout=120)
        assert run.returncode == 2 and uri in run.stderr, (command, run.stdout, run.stderr)
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_a_corrupt_or_missing_registry_is_exit_2_naming_it(mesh, tmp_path):
    registry = tmp_path / "registry"
    (registry / "log").mkdir(parents=True)
    (registry / "log" / f"{1:012d}.json").write_text('{"format": "mesh-registry/1", "seq": 1, "wri')
    for command in (["registry", "show"], ["registry", "history"], ["catalog"], ["status"]):
        run = run_mesh(*command, "--registry", str(registry), home=mesh["home"], cwd=mesh["repo"])
        assert run.returncode == 2 and str(registry) in run.stderr, (command, run.stderr)
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    missing = run_mesh("registry", "show", "--registry", str(tmp_path / "nowhere"), home=mesh["home"], cwd=mesh["repo"])
    assert missing.returncode == 2 and str(tmp_path / "nowhere") in missing.stderr
    unnamed = run_mesh("registry", "history", home=mesh["home"], cwd=mesh["repo"],
                       env_extra={"MESH_REGISTRY_URI": ""})
    assert unnamed.returncode == 2 and "--registry URI" in unnamed.stderr and "MESH_REGISTRY_URI" in unnamed.stderr


@pytest.mark.parametrize("edit", [
    lambda doc, domain: doc["domains"][domain].update(reads={"a": 1}),
    lambda doc, domain: doc["domains"][domain].update(products="x", reads="y"),
    lambda doc, domain: doc["domains"][domain]["products"].update(x={"contracts": {"1": "x"}, "owners": 5}),
    lambda doc, domain: doc["written"].update(changes=3, by=[], at={}),
], ids=["reads-object", "strings", "product-fields", "written-fields"])
def test_a_hand_edited_entry_is_shown_or_one_line_naming_the_domain_and_registry(mesh, tmp_path, edit):
    registry = shutil.copytree(mesh["registry"], tmp_path / "registry")
    newest = sorted((registry / "log").glob("*.json"))[-1]
    doc = json.loads(newest.read_text())
    domain = sorted(doc["domains"])[0]
    edit(doc, domain)
    newest.write_text(json.dumps(doc))
    for command in (["registry", "show"], ["registry", "show", domain], ["registry", "show", f"{domain}.x"],
                    ["registry", "history"]):
        run = run_mesh(*command, "--registry", str(registry), home=mesh["home"], cwd=mesh["repo"])
        assert run.returncode in (0, 2) and "(run with -v for the traceback)" not in run.stderr, (command, run.stderr)
        if run.returncode == 2:
            assert len(run.stderr.strip().splitlines()) == 1 and str(registry) in run.stderr, (command, run.stderr)
            assert f"publish -d {domain}" in run.stderr or "has no product" in run.stderr, (command, run.stderr)


def test_a_change_a_registered_reader_relies_on_is_refused_by_the_cli(mesh, tmp_path):
    """From the registry alone: a producer's column some other domain's product relies on (and a reader of
    it), found in what the registry holds; the producer's code edited in a fresh copy to drop it."""
    shown = mesh_json("registry", "show", "--registry", str(mesh["registry"]), mesh=mesh)
    relied = [(read["product"], column, read) for entry in shown["domains"].values() for read in entry["reads"]
              if read["major"] is None and read["columns"] and read["product"].split(".")[0] != read["consumer"].split(".")[0]
              for column in read["columns"]]
    if not relied:
        pytest.skip("no product of this mesh relies on a named column of another domain's")
    product, column, read = relied[0]
    repo = copy_repository(tmp_path / "mesh")
    location, _ = mesh["workspace"].products()[ref_of(product)]
    folder = Path(importlib.util.find_spec(location.module).origin).parent  # the domain's code, in this repository
    edited = [path for path in sorted(folder.rglob("*.py")) if f"\n    {column}: " in path.read_text()]
    if not edited:
        pytest.skip(f"column {column} of {product} is not declared as a contract field under {folder}")
    for path in edited:  # as its team would: the field deleted from the contract
        target = repo / path.relative_to(REPO)
        target.write_text("".join(line for line in target.read_text().splitlines(keepends=True)
                                  if not line.startswith(f"    {column}: ")))
    registry = tmp_path / "registry"
    shutil.copytree(mesh["registry"], registry)
    run = run_mesh("registry", "publish", "-d", location.name, "--registry", str(registry), home=mesh["home"], cwd=repo,
                   env_extra=CI)
    assert run.returncode == 1, run.stdout + run.stderr
    assert read["consumer"] in run.stdout and all(owner in run.stdout for owner in read["owners"]), run.stdout
    assert f"{location.name} was not published to {registry}" in run.stdout
    assert len(list((registry / "log").glob("*.json"))) == len(list((mesh["registry"] / "log").glob("*.json")))
