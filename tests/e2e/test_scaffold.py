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

    # Dates and timestamps a CSV holds as text are typed, and the product parses them.
    (tmp_path / "sightings.csv").write_text("sighting_id,day,seen\n1,2024-01-05,2024-01-05T10:15:00Z\n"
                                            "2,2024-01-06,2024-01-06T11:40:00Z\n3,2024-01-07,2024-01-07T12:05:00Z\n")
    dated = mesh("new", "product", domain, "sightings", "--from", str(tmp_path / "sightings.csv"), copy=copy, home=home)
    assert dated.returncode == 0, dated.stdout + dated.stderr
    contract = (copy / "domains" / domain / "contracts.py").read_text()
    assert "    day: Series[pd.Timestamp] = pa.Field(" in contract
    assert '    seen: Series[pd.DatetimeTZDtype("ns", "UTC")] = pa.Field(' in contract

    lint = mesh("lint", copy=copy, home=home)
    assert lint.returncode == 0 and "0 violation(s)" in lint.stdout, lint.stdout + lint.stderr
    run = mesh("materialize", "-d", domain, copy=copy, home=home)
    assert run.returncode == 0 and "3/3 products published" in run.stdout, run.stdout + run.stderr
    for derived_name, upstream in (("by_island", "observations"), ("sighting_hours", "sightings")):
        derived = mesh("new", "product", domain, derived_name, "--from", f"{domain}.{upstream}", copy=copy, home=home)
        assert derived.returncode == 0, derived.stdout + derived.stderr
    products = copy / "domains" / domain / "products.py"
    assert (f"inputs={{\"source\": Input('{domain}.sightings', columns=['sighting_id', 'day', 'seen'])}}"
            in products.read_text())
    # An ordinary edit of each derived product: its scaffolded test still passes (the sample keeps its types).
    text = products.read_text().replace("def by_island(source: pd.DataFrame) -> pd.DataFrame:\n    return source  # TODO: the transform",
                                        "def by_island(source: pd.DataFrame) -> pd.DataFrame:\n    return source.dropna()")
    text = text.replace("def sighting_hours(source: pd.DataFrame) -> pd.DataFrame:\n    return source  # TODO: the transform",
                        "def sighting_hours(source: pd.DataFrame) -> pd.DataFrame:\n    return source[source[\"seen\"].dt.hour >= 11]")
    assert text.count("# TODO: the transform") == 0
    products.write_text(text)

    # The scaffolded tests, and the framework's own workspace tests, on the grown mesh.
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/domains",
         "tests/mesh_core/governance/test_workspace.py", "tests/integration/test_workspace_graph.py"],
        cwd=copy, capture_output=True, text=True, timeout=600)
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert "3 passed" in tests.stdout or "passed" in tests.stdout.splitlines()[-1]


def edit(path, old, new):
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def test_a_scaffolded_product_promises_nothing_until_its_todos_are_done_and_it_is_made_active(copy, tmp_path):
    """The placeholder of `mesh new domain` deleted leaves no snapshot behind; a product made active
    with the scaffold's TODOs is refused; once written and active it is snapshotted and gated (its
    removal, or a break its reader relies on, is caught), and a product derived from it takes over
    its column descriptions."""
    home = make_dagster_home(tmp_path)
    domain = free_name(copy / "workspace.yaml", "penguins")
    folder = copy / "domains" / domain
    assert mesh("new", "domain", domain, "--owner", "team:penguins", copy=copy, home=home).returncode == 0
    created = mesh("new", "product", domain, "observations", "--from", str(FIXTURES / "data" / "penguins.csv"),
                   copy=copy, home=home)
    assert created.returncode == 0, created.stdout + created.stderr
    assert not list(folder.glob("snapshots/*.odcs.yaml"))  # drafts: no promise yet

    # The engineer deletes the placeholder: nothing dangles.
    products = folder / "products.py"
    text = products.read_text()
    start = text.index("@data_product(")
    products.write_text(text[:start] + text[text.index("@data_product(", start + 1):])
    edit(folder / "definitions.py", "import records, observations\n", "import observations\n")
    edit(folder / "definitions.py", "[observations, records]", "[observations]")
    lint = mesh("lint", "-d", domain, copy=copy, home=home)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    # Made active with the scaffold's TODOs: refused, naming what is left to write.
    edit(products, '    status="draft",  # make it active once the TODOs are done\n', "")
    lint = mesh("lint", "-d", domain, copy=copy, home=home)
    assert lint.returncode == 1, lint.stdout + lint.stderr
    assert f"[descriptions-written] {domain}.observations: the description is still the scaffold's text" in lint.stdout
    assert (f"[descriptions-written] {domain}.observations: columns still described by the scaffold's TODO text: "
            "species, island,") in lint.stdout

    # Written: it loads, is snapshotted, and a product derived from it takes over what its columns mean.
    contracts = folder / "contracts.py"
    columns = ["species", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]
    text = contracts.read_text()
    for column in columns:
        line = next(line for line in text.splitlines() if line.startswith(f"    {column}: Series"))
        text = text.replace(line, line.replace("'TODO: what this column means.'", repr(f"The penguin's {column}.")))
    contracts.write_text(text)
    edit(products, "which the domain ships. TODO: name the grain.", "one per penguin seen in the field.")
    updated = mesh("contracts", "update", copy=copy, home=home)
    assert updated.returncode == 0 and (folder / "snapshots" / f"{domain}.observations.v1.odcs.yaml").exists(), \
        updated.stdout + updated.stderr
    assert mesh("materialize", "-d", domain, copy=copy, home=home).returncode == 0
    derived = mesh("new", "product", domain, "by_island", "--from", f"{domain}.observations", copy=copy, home=home)
    assert derived.returncode == 0, derived.stdout + derived.stderr
    by_island = contracts.read_text().split("class ByIslandContract", 1)[1]
    for column in columns:
        assert f"description=\"The penguin's {column}.\")" in by_island, (column, by_island)
    assert f"inputs={{\"source\": Input('{domain}.observations', columns={columns!r})}}" in products.read_text()
    lint = mesh("lint", "-d", domain, copy=copy, home=home)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    # Back to draft, it is still gated: the snapshot is a promise its reader relies on.
    edit(products, "    version=\"1.0.0\",\n)\ndef observations", "    version=\"1.0.0\",\n    status=\"draft\",\n)\ndef observations")
    text = contracts.read_text()
    year = next(line for line in text.splitlines() if line.startswith("    year: Series"))
    contracts.write_text(text.replace(year + "\n", "", 1))
    lint = mesh("lint", "-d", domain, copy=copy, home=home)
    assert lint.returncode == 1 and f"[contract-compatible] {domain}.observations: breaking change(s)" in lint.stdout, lint.stdout
    assert f"column 'year' was removed. Read by: {domain}.by_island (team:penguins)" in lint.stdout

    # Deleted with its snapshot left: the removal of a published product is still caught.
    edit(folder / "definitions.py", "[by_island, observations]", "[]")
    lint = mesh("lint", "-d", domain, copy=copy, home=home)
    assert lint.returncode == 1, lint.stdout + lint.stderr
    assert (f"[contract-compatible] {domain}.observations: was removed, but its contract {domain}.observations.v1.odcs.yaml "
            "is still published") in lint.stdout
