"""The breaking-change gate, end to end on a temp copy of the example mesh (only its domains: the
edits below are to its products, whatever domains a user has added beside them)."""

from __future__ import annotations

import json
import shutil

import dagster as dg
import pytest
import yaml

from mesh_core import ProductRef
from mesh_core.governance.workspace import MeshWorkspace
from tests.support import EXAMPLE_DOMAINS, REPO, make_dagster_home, needs_example, run_dagster, run_mesh

FLIGHTS = ProductRef("operations", "flights")
pytestmark = needs_example()


@pytest.fixture
def mesh_copy(tmp_path):
    copy = tmp_path / "mesh"
    ignore = shutil.ignore_patterns("__pycache__")
    for domain in EXAMPLE_DOMAINS:
        shutil.copytree(REPO / "domains" / domain, copy / "domains" / domain, ignore=ignore)
    shutil.copy(REPO / "domains" / "__init__.py", copy / "domains" / "__init__.py")
    shutil.copy(REPO / "governance.yaml", copy / "governance.yaml")
    entries = yaml.safe_load((REPO / "workspace.yaml").read_text())["load_from"]
    (copy / "workspace.yaml").write_text(yaml.safe_dump({"load_from": [
        e for e in entries if e["python_module"]["location_name"] in EXAMPLE_DOMAINS]}, sort_keys=False))
    return copy


def mesh(*args, copy, home):
    return run_mesh(*args, "-w", str(copy / "workspace.yaml"), home=home, cwd=copy)


def edit(path, old, new):
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def test_a_breaking_change_end_to_end_lint_names_who_relies_on_it_then_a_major_bump_publishes_both_majors(mesh_copy, tmp_path):
    """Rename flights.air_time in a temp copy of the repository: lint fails naming exactly the products
    (and owners) that rely on it; bump the major keeping major 1 published, pin those readers to @1,
    and the whole mesh materializes with both majors, the pinned reader still reading the old one."""
    home = make_dagster_home(tmp_path)
    workspace = MeshWorkspace.load(REPO / "workspace.yaml")
    workspace = MeshWorkspace(workspace.path, tuple(l for l in workspace.locations if l.name in EXAMPLE_DOMAINS))
    owners = {ref: spec.owners for ref, (_, spec) in workspace.products().items()}
    reads = [(consumer, spec) for loc in workspace.locations for consumer, _, spec in loc.reads() if spec.ref == FLIGHTS]
    relying = {c for c, spec in reads if spec.relied_on() is None or "air_time" in spec.relied_on()}
    others = {c for c, _ in reads} - relying
    assert relying == {ProductRef("insights", "fleet_utilisation")} and others, "the example mesh this test edits"

    operations, insights = mesh_copy / "domains" / "operations", mesh_copy / "domains" / "insights"
    shutil.copy(operations / "contracts.py", operations / "contracts_v1.py")  # major 1's contract, kept
    edit(operations / "contracts.py", "air_time:", "air_minutes:")
    edit(operations / "products.py", 'air_time="air_time"', 'air_minutes="air_time"')
    broken = mesh("lint", copy=mesh_copy, home=home)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    [gate] = [line for line in broken.stdout.splitlines() if "[contract-compatible]" in line]
    assert ("[contract-compatible] operations.flights: breaking change(s) to major 1 without a major version bump: "
            "column 'air_time' was removed.") in gate
    assert "Read by: " + ", ".join(f"{c} ({', '.join(owners[c])})" for c in sorted(relying)) + "." in gate
    assert not [c for c in others if str(c) in gate], "only readers that rely on air_time are named"
    assert "Fix: bump the major version (version='2.0.0') and run `mesh contracts update`" in gate
    assert mesh("contracts", "check", copy=mesh_copy, home=home).returncode == 1

    # adapt() derives an older major from pandas: the Polars product returns pandas while major 1 is kept.
    edit(operations / "products.py", "def flights() -> pl.LazyFrame:",
         "def flights():\n    return lazy_flights().collect().to_pandas()\n\n\ndef lazy_flights() -> pl.LazyFrame:")
    edit(operations / "products.py", 'version="1.0.0",', """version="2.0.0",
    previous_majors=[PreviousMajor("1.0.0", contract=FlightsContractV1, until="2099-12-31",
                                   adapt=lambda flights: flights.rename(columns={"air_minutes": "air_time"}))],""")
    edit(operations / "products.py", "from mesh_core import ", "from domains.operations.contracts_v1 import FlightsContract as FlightsContractV1\n"
                                                            "from mesh_core import PreviousMajor, ")
    unpinned = mesh("lint", copy=mesh_copy, home=home)
    assert unpinned.returncode == 1
    assert ("[relies-on-published-columns] insights.fleet_utilisation: input 'flights' relies on column(s) air_time of "
            "operations.flights, which operations.flights does not publish at major 2") in unpinned.stdout
    edit(insights / "products.py", 'Input("operations.flights", columns=["carrier", "tailnum"',
         'Input("operations.flights@1", columns=["carrier", "tailnum"')
    updated = mesh("contracts", "update", copy=mesh_copy, home=home)
    assert updated.returncode == 0 and "operations.flights.v2.odcs.yaml" in updated.stdout
    clean = mesh("lint", copy=mesh_copy, home=home)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert ("warning  [old-major-readers] operations.flights: publishes major 1 beside major 2 until 2099-12-31; still "
            "pinned to it: insights.fleet_utilisation (team:network-insights).") in clean.stdout
    snapshots = sorted(p.name for p in (operations / "snapshots").glob("*.odcs.yaml"))
    assert snapshots == ["operations.flights.v1.odcs.yaml", "operations.flights.v2.odcs.yaml"]

    run = mesh("materialize", copy=mesh_copy, home=home)
    assert run.returncode == 0, run.stdout + run.stderr
    current = json.loads(mesh("read", "operations.flights", "--json", "--limit", "1", copy=mesh_copy, home=home).stdout)
    old = json.loads(mesh("read", "operations.flights@1", "--json", "--limit", "1", copy=mesh_copy, home=home).stdout)
    assert "air_minutes" in current["records"][0] and "air_time" not in current["records"][0]
    assert old["records"][0]["air_time"] == current["records"][0]["air_minutes"]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(["insights", "fleet_utilisation"]))
        read = event.asset_materialization.metadata["mesh/input_versions"].value
    assert read == {"operations.flights@1": old["version"], "fleet.aircraft": 0}, read


def test_non_breaking_changes_only_ask_for_the_snapshot_to_be_updated(mesh_copy, tmp_path):
    home = make_dagster_home(tmp_path)
    contracts = mesh_copy / "domains" / "operations" / "contracts.py"
    contracts.write_text(contracts.read_text().replace('description="Minutes in the air;', 'description="Minutes airborne;'))
    run = mesh("lint", copy=mesh_copy, home=home)
    assert run.returncode == 0, run.stdout + run.stderr
    assert ("warning  [contract-snapshot-current] operations.flights: the snapshot operations.flights.v1.odcs.yaml is "
            "behind the code: column 'air_time' description changed.") in run.stdout


def test_a_broken_governance_file_is_one_load_error(mesh_copy, tmp_path):
    (mesh_copy / "governance.yaml").write_text("policies:\n  grain-in-description: fatal\n")
    run = mesh("lint", copy=mesh_copy, home=make_dagster_home(tmp_path))
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.count("policy 'grain-in-description' has level 'fatal'; use error, warn or off") == 1, run.stderr


def test_a_snapshot_left_behind_by_a_removed_product_is_named_whatever_its_name(mesh_copy, tmp_path):
    snapshots = mesh_copy / "domains" / "reference" / "snapshots"
    shutil.copy(snapshots / "reference.airlines.v1.odcs.yaml", snapshots / "reference.vendors.v1.odcs.yaml")
    run = mesh("lint", copy=mesh_copy, home=make_dagster_home(tmp_path))
    assert run.returncode == 1, run.stdout + run.stderr
    assert ("[contract-compatible] reference.vendors: was removed, but its contract reference.vendors.v1.odcs.yaml is "
            "still published.") in run.stdout


def flights_version(copy, home):
    return json.loads(mesh("read", str(FLIGHTS), "--json", "--limit", "1", copy=copy, home=home).stdout)["version"]


def rename_air_time(copy):
    operations = copy / "domains" / "operations"
    edit(operations / "contracts.py", "air_time:", "air_minutes:")
    edit(operations / "products.py", 'air_time="air_time"', 'air_minutes="air_time"')


def relying_on(column):
    """The readers of operations.flights that rely on `column`, with their owners, as the workspace declares them."""
    workspace = MeshWorkspace.load(REPO / "workspace.yaml")
    products = workspace.products()
    relying = {consumer for loc in workspace.locations for consumer, _, spec in loc.reads()
               if spec.ref == FLIGHTS and (spec.relied_on() is None or column in spec.relied_on())}
    return ", ".join(f"{c} ({', '.join(products[c][1].owners)})" for c in sorted(relying))


def test_every_run_path_refuses_to_publish_a_breaking_change_and_the_port_keeps_its_version(mesh_copy, tmp_path):
    """Lint is not the only gate: `mesh materialize` and Dagster's own `dagster asset materialize` (the path
    the UI and the daemon take: the asset itself) refuse a contract that breaks the committed major, before
    computing anything, naming the change and who relies on it; the port keeps its version."""
    home = make_dagster_home(tmp_path)
    first = mesh("materialize", "-d", "operations", copy=mesh_copy, home=home)
    assert first.returncode == 0, first.stdout + first.stderr
    published = flights_version(mesh_copy, home)

    rename_air_time(mesh_copy)
    refused = mesh("materialize", "-d", "operations", copy=mesh_copy, home=home)
    output = refused.stdout + refused.stderr
    assert refused.returncode == 1, output
    assert ("operations.flights was not published: breaking change(s) to major 1 without a major version bump: "
            f"column 'air_time' was removed. Read by: {relying_on('air_time')}. The port keeps its current version."
            ) in " ".join(output.split()), output
    assert "Fix: bump the major version (version='2.0.0'" in output and "--accept-breaking operations.flights --by NAME" in output
    assert flights_version(mesh_copy, home) == published

    module = next(e["python_module"]["module_name"] for e in yaml.safe_load((mesh_copy / "workspace.yaml").read_text())["load_from"]
                  if e["python_module"]["location_name"] == "operations")
    stock = run_dagster("asset", "materialize", "-m", module, "--select", "operations/flights", home=home, cwd=mesh_copy)
    assert stock.returncode != 0 and "BreakingChangeError" in stock.stdout + stock.stderr, stock.stdout + stock.stderr
    assert "column 'air_time' was removed" in stock.stdout + stock.stderr
    assert flights_version(mesh_copy, home) == published

    edit(mesh_copy / "domains" / "operations" / "contracts.py", "air_minutes:", "air_time:")  # undo: publishes again
    edit(mesh_copy / "domains" / "operations" / "products.py", 'air_minutes="air_time"', 'air_time="air_time"')
    edit(mesh_copy / "domains" / "operations" / "contracts.py", "dep_delay: Series[float]", "dep_delay: Series[int]")
    typed = mesh("materialize", "-d", "operations", copy=mesh_copy, home=home)
    assert typed.returncode == 1 and "column 'dep_delay' changed type float64 -> Int64" in typed.stdout + typed.stderr, typed.stdout
    assert flights_version(mesh_copy, home) == published


def test_a_break_readers_rely_on_reaches_the_snapshot_only_when_someone_accepts_it_by_name(mesh_copy, tmp_path):
    home = make_dagster_home(tmp_path)
    snapshot = mesh_copy / "domains" / "operations" / "snapshots" / "operations.flights.v1.odcs.yaml"
    promised = snapshot.read_text()
    rename_air_time(mesh_copy)

    refused = mesh("contracts", "update", copy=mesh_copy, home=home)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"column 'air_time' was removed. Read by: {relying_on('air_time')}." in refused.stdout, refused.stdout
    assert snapshot.read_text() == promised
    assert mesh("contracts", "update", "--accept-breaking", str(FLIGHTS), "--by", "ops-lead", copy=mesh_copy, home=home).returncode == 2
    assert mesh("contracts", "update", "--by", "ops-lead", "--reason", "r", copy=mesh_copy, home=home).returncode == 2
    other = mesh("contracts", "update", "--accept-breaking", "fleet.aircraft", "--by", "ops-lead", "--reason", "r",
                 copy=mesh_copy, home=home)  # accepting another product's break accepts nothing here
    assert other.returncode == 1 and snapshot.read_text() == promised, other.stdout + other.stderr

    accepted = mesh("contracts", "update", "--accept-breaking", str(FLIGHTS), "--by", "ops-lead", "--reason",
                    "fleet reads air_minutes now", copy=mesh_copy, home=home)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "air_time" not in yaml.safe_load(snapshot.read_text())["schema"][0]["properties"].__repr__()
    record = yaml.safe_load((snapshot.parent / "operations.accepted.yaml").read_text())[-1]  # appended to the history
    assert {k: record[k] for k in ("product", "major", "changes", "by", "reason")} == {
        "product": "flights", "major": "1", "changes": ["column 'air_time' was removed"], "by": "ops-lead",
        "reason": "fleet reads air_minutes now"}
    run = mesh("materialize", "-d", "operations", copy=mesh_copy, home=home)
    assert run.returncode == 0, run.stdout + run.stderr
    row = json.loads(mesh("read", str(FLIGHTS), "--json", "--limit", "1", copy=mesh_copy, home=home).stdout)["records"][0]
    assert "air_minutes" in row and "air_time" not in row


def test_making_a_public_product_internal_is_a_break_for_lint_the_run_and_update(mesh_copy, tmp_path):
    home = make_dagster_home(tmp_path)
    edit(mesh_copy / "domains" / "operations" / "products.py", 'access="public",', 'access="internal",')
    snapshot = mesh_copy / "domains" / "operations" / "snapshots" / "operations.flights.v1.odcs.yaml"
    lint = mesh("lint", "-d", "operations", copy=mesh_copy, home=home)
    assert lint.returncode == 1 and "[contract-compatible] operations.flights: breaking change(s) to major 1 without a " \
        "major version bump: the product was made internal." in lint.stdout, lint.stdout
    run = mesh("materialize", "-d", "operations", copy=mesh_copy, home=home)
    assert run.returncode == 1 and "operations.flights was not published" in run.stdout, run.stdout + run.stderr
    assert "the product was made internal" in run.stdout
    assert mesh("contracts", "update", "-d", "operations", copy=mesh_copy, home=home).returncode == 1 and snapshot.exists()
    accepted = mesh("contracts", "update", "-d", "operations", "--accept-breaking", str(FLIGHTS), "--by", "team:operations",
                    "--reason", "nobody outside operations may read it", copy=mesh_copy, home=home)
    assert accepted.returncode == 0 and f"removed {snapshot}" in accepted.stdout, accepted.stdout + accepted.stderr
    assert not snapshot.exists()
