"""`mesh remove domain` and `mesh deploy helm` on a copy of the repository, as a user runs them."""

from __future__ import annotations

import hashlib
import re

import pytest
import yaml

from mesh_core.governance.workspace import MeshWorkspace
from tests.support import REPO, copy_repository, free_name, helm_deployments, make_dagster_home, run_mesh

pytestmark = pytest.mark.workspace


@pytest.fixture
def copy(tmp_path):
    return copy_repository(tmp_path / "mesh")


def mesh(*args, copy, home):
    return run_mesh(*args, "-w", str(copy / "workspace.yaml"), home=home, cwd=copy)


def tree(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def test_a_domain_others_read_is_refused_naming_each_reader_and_its_owners(copy, tmp_path):
    home = make_dagster_home(tmp_path)
    workspace = MeshWorkspace.load(REPO / "workspace.yaml")
    readers = {}
    for location in workspace.locations:
        for consumer, upstream in location.inputs():
            if upstream.domain != location.name:
                readers.setdefault(upstream.domain, []).append((consumer, upstream, location.products[consumer].owners))
    if not readers:
        pytest.skip("no domain of this mesh reads another's product")
    domain, reads = next(iter(readers.items()))
    before = tree(copy)
    run = mesh("remove", "domain", domain, copy=copy, home=home)
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"cannot remove domain '{domain}': other domains read its products" in run.stderr
    for consumer, upstream, owners in reads:
        assert f"{consumer} reads {upstream} (owners: {', '.join(owners)})" in run.stderr, run.stderr
    assert tree(copy) == before


def test_new_then_remove_leaves_the_repository_as_it_was_and_keeps_the_data_unless_asked(copy, tmp_path):
    home = make_dagster_home(tmp_path)
    before = tree(copy)
    name = free_name(copy / "workspace.yaml", "penguins")
    assert mesh("new", "domain", name, "--owner", "team:penguins", copy=copy, home=home).returncode == 0
    assert helm_deployments(copy)[name] == ["--module-name", f"domains.{name}.definitions", "--location-name", name]
    published = mesh("materialize", "-d", name, copy=copy, home=home)
    assert published.returncode == 0, published.stdout + published.stderr

    removed = mesh("remove", "domain", name, copy=copy, home=home)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert f"removed domains/{name}\n" in removed.stdout
    assert re.search(rf"removed tests/domains(/test_{name}\.py)?\n", removed.stdout), removed.stdout  # its tests
    assert f"kept    {home / 'data' / name}" in removed.stdout
    assert (home / "data" / name / "ports" / "records" / "_delta_log").is_dir()
    assert tree(copy) == before
    lint = mesh("lint", copy=copy, home=home)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    # A domain whose name starts like another's keeps its tests when the other goes.
    other = free_name(copy / "workspace.yaml", f"{name}__b")
    for domain in (name, other):
        assert mesh("new", "domain", domain, "--owner", "team:penguins", copy=copy, home=home).returncode == 0
    gone = mesh("remove", "domain", name, "--delete-data", copy=copy, home=home)
    assert gone.returncode == 0 and not (home / "data" / name).exists(), gone.stdout + gone.stderr
    assert (copy / "tests" / "domains" / f"test_{other}.py").exists() and (copy / "domains" / other).is_dir()
    assert not list((home / "data").glob(".mesh-removed-*")) and not list((copy / "domains").glob(".mesh-removed-*"))


@pytest.mark.parametrize(("args", "message"), [
    (["nosuch_domain"], "No domain 'nosuch_domain'"),
])
def test_an_unknown_domain_is_a_usage_error_that_changes_nothing(copy, tmp_path, args, message):
    before = tree(copy)
    run = mesh("remove", "domain", *args, copy=copy, home=make_dagster_home(tmp_path))
    assert run.returncode == 2 and message in run.stderr, run.stderr
    assert tree(copy) == before


def test_the_last_domain_cannot_be_removed(tmp_path):
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n  - python_module: {module_name: domains.only.definitions, location_name: only}\n")
    run = run_mesh("remove", "domain", "only", "-w", str(tmp_path / "workspace.yaml"), home=make_dagster_home(tmp_path),
                   cwd=tmp_path)
    assert run.returncode == 2 and "'only' is the only domain in workspace.yaml" in run.stderr, run.stderr


def test_deploy_helm_rewrites_a_stale_values_file_and_lint_names_the_command(copy, tmp_path):
    home = make_dagster_home(tmp_path)
    values = copy / "deploy" / "helm" / "values.yaml"
    original = values.read_text()
    first = MeshWorkspace.load(REPO / "workspace.yaml").locations[0].name
    start = original.index(f"    - name: {first}\n")
    end = original.index("    - name: ", start + 1) if "    - name: " in original[start + 1:] else None
    assert end is not None, "the values file lists more than one domain"
    values.write_text(original[:start] + original[end:])  # a domain's deployment deleted by hand

    lint = mesh("lint", copy=copy, home=home)
    assert lint.returncode == 1
    assert (f"[deployment-current] *: deploy/helm/values.yaml is stale: no user deployment for {first}. "
            "Fix: run `mesh deploy helm` and commit deploy/helm/values.yaml.") in lint.stdout, lint.stdout
    check = mesh("deploy", "helm", "--check", copy=copy, home=home)
    assert check.returncode == 1 and "is stale" in check.stdout
    assert values.read_text() == original[:start] + original[end:]  # --check writes nothing
    fixed = mesh("deploy", "helm", copy=copy, home=home)
    assert fixed.returncode == 0 and "updated deploy/helm/values.yaml" in fixed.stdout, fixed.stdout + fixed.stderr
    assert yaml.safe_load(values.read_text()) == yaml.safe_load(original)  # its entry is back
    assert [line for line in values.read_text().splitlines() if line.lstrip().startswith("#")] == \
        [line for line in original.splitlines() if line.lstrip().startswith("#")]  # and every comment kept
    assert mesh("deploy", "helm", "--check", copy=copy, home=home).returncode == 0
    assert mesh("lint", copy=copy, home=home).returncode == 0


def test_delete_data_also_deletes_ports_kept_in_a_local_ports_folder(copy, tmp_path):
    home, ports = make_dagster_home(tmp_path), tmp_path / "ports"
    name = free_name(copy / "workspace.yaml", "penguins")
    env = {"MESH_PORTS_URI": str(ports)}

    def run(*args):
        return run_mesh(*args, "-w", str(copy / "workspace.yaml"), home=home, cwd=copy, env_extra=env)
    assert run("new", "domain", name, "--owner", "team:penguins").returncode == 0
    assert run("materialize", "-d", name).returncode == 0
    assert (ports / name / "ports").is_dir() and (home / "data" / name).is_dir()
    kept = run("remove", "domain", name)
    assert kept.returncode == 0 and f"kept    {ports / name}" in kept.stdout, kept.stdout
    assert run("new", "domain", name, "--owner", "team:penguins").returncode == 0
    gone = run("remove", "domain", name, "--delete-data")
    assert gone.returncode == 0 and not (ports / name).exists() and not (home / "data" / name).exists(), gone.stdout


def test_a_values_file_mesh_cannot_rewrite_does_not_stop_new_or_remove_and_lint_names_it(copy, tmp_path):
    home = make_dagster_home(tmp_path)
    values = copy / "deploy" / "helm" / "values.yaml"
    values.write_text("dagster-user-deployments: {enabled: true}   # flow style: Mesh does not rewrite it\n")
    name = free_name(copy / "workspace.yaml", "penguins")
    created = mesh("new", "domain", name, "--owner", "team:penguins", copy=copy, home=home)
    assert created.returncode == 0 and "warning  the Helm values were not updated" in created.stdout, created.stdout
    lint = mesh("lint", copy=copy, home=home)
    assert lint.returncode == 1 and "[deployment-current]" in lint.stdout and "could not rewrite" in lint.stdout
    removed = mesh("remove", "domain", name, copy=copy, home=home)
    assert removed.returncode == 0 and "the Helm values were not updated" in removed.stderr, removed.stdout + removed.stderr
    assert values.read_text().startswith("dagster-user-deployments: {enabled: true}")
