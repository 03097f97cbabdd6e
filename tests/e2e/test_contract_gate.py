"""The breaking-change gate, end to end on a temp copy of the repository's mesh."""

from __future__ import annotations

import shutil

import pytest

from mesh_core import ProductRef
from mesh_core.workspace import MeshWorkspace
from tests.support import REPO, make_dagster_home, run_mesh

FLIGHTS = ProductRef("operations", "flights")


@pytest.fixture
def mesh_copy(tmp_path):
    copy = tmp_path / "mesh"
    shutil.copytree(REPO / "domains", copy / "domains", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("workspace.yaml", "governance.yaml"):
        shutil.copy(REPO / name, copy / name)
    return copy


def mesh(*args, copy, home):
    return run_mesh(*args, "-w", str(copy / "workspace.yaml"), home=home, cwd=copy)


def test_a_breaking_change_fails_lint_naming_every_reader_until_the_major_is_bumped(mesh_copy, tmp_path):
    home = make_dagster_home(tmp_path)
    readers = [(consumer, spec.owners) for loc in MeshWorkspace.load(REPO / "workspace.yaml").locations
               for consumer, upstream in loc.inputs() if upstream == FLIGHTS
               for spec in [loc.products[consumer]]]
    assert readers, "the example mesh has consumers of operations.flights"

    contracts = mesh_copy / "domains" / "operations" / "contracts.py"
    contracts.write_text("\n".join(line for line in contracts.read_text().splitlines() if "air_time:" not in line) + "\n")
    broken = mesh("lint", copy=mesh_copy, home=home)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert ("[contract-compatible] operations.flights: breaking change(s) without a major version bump: "
            "column 'air_time' was removed.") in broken.stdout
    for consumer, owners in readers:
        assert f"{consumer} ({', '.join(owners)})" in broken.stdout
    assert "Fix: bump the major version (version='2.0.0') and run `mesh contracts update`" in broken.stdout
    assert mesh("contracts", "check", copy=mesh_copy, home=home).returncode == 1

    products = mesh_copy / "domains" / "operations" / "products.py"
    products.write_text(products.read_text().replace('version="1.0.0"', 'version="2.0.0"'))
    unsnapshotted = mesh("lint", copy=mesh_copy, home=home)
    assert unsnapshotted.returncode == 1 and "[contract-snapshotted] operations.flights" in unsnapshotted.stdout
    updated = mesh("contracts", "update", copy=mesh_copy, home=home)
    assert updated.returncode == 0 and "operations.flights.v2.odcs.yaml" in updated.stdout
    clean = mesh("lint", copy=mesh_copy, home=home)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    # Readers cannot pin a major yet: lint lists whom to check until the old snapshot is deleted.
    assert "warning  [contract-major-migrated] operations.flights: is at major version 2" in clean.stdout
    for consumer, owners in readers:
        assert f"{consumer} ({', '.join(owners)})" in clean.stdout
    snapshots = sorted(p.name for p in (mesh_copy / "domains" / "operations" / "snapshots").iterdir())
    assert snapshots == ["operations.flights.v1.odcs.yaml", "operations.flights.v2.odcs.yaml"]


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
