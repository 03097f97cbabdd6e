"""`mesh new`: a domain and a product scaffolded into a temp copy of the repository lint clean,
materialize, pass their own tests, and keep the framework's own workspace tests green."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys

import pytest

from mesh_core.governance.workspace import MeshWorkspace
from tests.support import FIXTURES, REPO, free_name, helm_deployments, make_dagster_home, run_mesh

pytestmark = pytest.mark.workspace


@pytest.fixture
def copy(tmp_path):
    root = tmp_path / "mesh"
    ignore = shutil.ignore_patterns("__pycache__", ".pytest_cache")
    for folder in ("domains", "tests", "deploy"):
        shutil.copytree(REPO / folder, root / folder, ignore=ignore)
    for name in ("workspace.yaml", "governance.yaml", "pyproject.toml"):
        shutil.copy(REPO / name, root / name)
    return root


def standard_location(root):
    """A domain in the layout `mesh new product` extends (products.py and definitions.py in its folder)."""
    locations = MeshWorkspace.load(root / "workspace.yaml").locations
    return next(loc for loc in locations if {"products.py", "definitions.py"} <= {
        p.name for p in (root / "domains" / loc.name).glob("*.py")})


def free_product(location, stem: str) -> str:
    taken = {ref.product for ref in location.products}
    return next(name for name in (stem, *(f"{stem}_{i}" for i in range(2, 1000))) if name not in taken)


def tree(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def mesh(*args, copy, home):
    return run_mesh(*args, "-w", str(copy / "workspace.yaml"), home=home, cwd=copy)


def test_bad_scaffolding_input_is_refused_and_changes_nothing(copy, tmp_path):
    home = make_dagster_home(tmp_path)
    existing = standard_location(copy)
    fresh, thing = free_name(copy / "workspace.yaml", "birds"), free_product(existing, "things")
    (tmp_path / "garbage.parquet").write_bytes(b"\x00not parquet")
    before = tree(copy)
    cases = [
        (["new", "domain", existing.name, "--owner", "team:x"], f"domains/{existing.name} already exists"),
        (["new", "domain", "Bad-Name", "--owner", "team:x"], "'Bad-Name' is not a valid domain name"),
        (["new", "domain", fresh, "--owner", "bob"], "owner 'bob' is not an owner"),
        (["new", "domain", fresh, "--owner", "team:"], "owner 'team:' is not an owner"),
        (["new", "product", free_name(copy / "workspace.yaml", existing.name + "x"), thing], "No domain '"),
        (["new", "product", existing.name, next(iter(existing.products)).product], "already exists"),
        (["new", "product", existing.name, "9lives"], "'9lives' is not a valid product name"),
        (["new", "product", existing.name, thing, "--from", str(tmp_path / "nosuch.csv")], "no such file"),
        (["new", "product", existing.name, thing, "--from", str(tmp_path / "garbage.parquet")], "cannot read it as parquet"),
        (["new", "product", existing.name, thing, "--owner", "bob"], "owner 'bob' is not an owner"),
        (["new", "product", existing.name, "import"], "'import' is a Python keyword"),
        (["new", "product", existing.name, "pd"], "'pd' is already a name in the domain's modules"),
        (["new", "domain", "quarantine", "--owner", "team:x"], "the domain name 'quarantine' is reserved"),
    ]
    for args, message in cases:
        run = mesh(*args, copy=copy, home=home)
        assert run.returncode == 2 and message in run.stderr, (args, run.stdout, run.stderr)
        assert tree(copy) == before, f"{args} changed the tree"


def test_a_scaffolded_domain_and_product_lint_materialize_and_pass_every_workspace_test(copy, tmp_path):
    home = make_dagster_home(tmp_path)
    domain = free_name(copy / "workspace.yaml", "penguins")  # the README's name, unless the mesh has it already
    created = mesh("new", "domain", domain, "--owner", "team:penguins", "--description", "Palmer penguins.",
                   copy=copy, home=home)
    assert created.returncode == 0, created.stdout + created.stderr
    assert f"  - python_module:\n      module_name: domains.{domain}.definitions\n" in (copy / "workspace.yaml").read_text()
    assert (copy / "workspace.yaml").read_text().startswith((REPO / "workspace.yaml").read_text())  # comments, order kept
    assert helm_deployments(copy)[domain] == ["--module-name", f"domains.{domain}.definitions", "--location-name", domain]
    product = mesh("new", "product", domain, "observations", "--from", str(FIXTURES / "data" / "penguins.csv"),
                   copy=copy, home=home)
    assert product.returncode == 0, product.stdout + product.stderr
    assert "warning  column 'body_mass_g' has 1 null(s) of 12: declared nullable" in product.stdout
    contract = (copy / "domains" / domain / "contracts.py").read_text()
    assert "species: Series[str] = pa.Field(isin=['Adelie', 'Chinstrap', 'Gentoo']" in contract
    assert "body_mass_g: Series[float] = pa.Field(nullable=True, ge=3250.0, le=5700.0" in contract

    lint = mesh("lint", copy=copy, home=home)
    assert lint.returncode == 0 and "0 violation(s)" in lint.stdout, lint.stdout + lint.stderr
    run = mesh("materialize", "-d", domain, copy=copy, home=home)
    assert run.returncode == 0 and "2/2 products published" in run.stdout, run.stdout + run.stderr
    derived = mesh("new", "product", domain, "by_island", "--from", f"{domain}.observations", copy=copy, home=home)
    assert derived.returncode == 0, derived.stdout + derived.stderr

    # The scaffolded tests, and the framework's own workspace tests, on the grown mesh.
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/domains",
         "tests/mesh_core/governance/test_workspace.py", "tests/integration/test_workspace_graph.py"],
        cwd=copy, capture_output=True, text=True, timeout=600)
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert "3 passed" in tests.stdout or "passed" in tests.stdout.splitlines()[-1]


def test_a_built_wheel_ships_each_domains_data_and_snapshots(tmp_path):
    import zipfile

    source = tmp_path / "source"  # built from a copy: setuptools writes build/ beside the sources
    for folder in ("mesh_core", "domains"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(source)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    snapshots = {str(p.relative_to(REPO)) for p in (REPO / "domains").glob("*/snapshots/*.yaml")}
    data = {str(p.relative_to(REPO)) for p in (REPO / "domains").glob("*/data/*")}
    assert snapshots and snapshots | data <= names, sorted((snapshots | data) - names)
