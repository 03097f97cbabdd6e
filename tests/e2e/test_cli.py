"""The `mesh` command and the real `dagster` CLI, run as a user runs them."""

from __future__ import annotations

import json

import pytest

from mesh_core.governance.workspace import MeshWorkspace
from tests.support import FIXTURES, REPO, WORKSPACES, free_name, make_dagster_home, run_dagster, run_mesh


@pytest.fixture
def home(tmp_path):
    return make_dagster_home(tmp_path)


def test_no_command_prints_usage_and_exits_2(home):
    run = run_mesh(home=home)
    assert run.returncode == 2 and "materialize" in run.stdout


def test_unknown_option_is_a_usage_error(home):
    run = run_mesh("materialize", "--bogus", home=home)
    assert run.returncode == 2 and "unrecognized arguments: --bogus" in run.stderr


@pytest.mark.parametrize(
    "workspace, expected",
    [
        ("missing_owner", "[owners-required] missing_owner.orphan_items: no owners declared. Fix: pass owners="),
        ("bad_owner", "[owners-valid] bad_owner.badly_owned_items: invalid owner 'gold tier'. Fix:"),
        ("private_dependency", "[read-public-only] snoop.copied_items: reads vault.secret_items, whose access is 'internal'."),
    ],
)
def test_a_broken_definition_is_refused_before_anything_runs(home, workspace, expected):
    run = run_mesh("materialize", "-w", str(WORKSPACES / f"{workspace}.yaml"), home=home, cwd=FIXTURES)
    assert run.returncode == 2
    assert expected in run.stderr
    assert "Traceback" not in run.stderr
    assert not (home / "data").exists()


def test_verbose_shows_the_traceback(home):
    run = run_mesh("materialize", "-v", "-w", str(WORKSPACES / "missing_owner.yaml"), home=home, cwd=FIXTURES)
    assert run.returncode == 2 and "Traceback" in run.stderr


def test_blocked_data_exits_1_and_says_which_product_and_check(home):
    run = run_mesh("materialize", "-w", str(WORKSPACES / "broken_data.yaml"), home=home, cwd=FIXTURES)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "[1/1] broken_data: 1 product(s)" in run.stdout
    assert "  BLOCKED broken_data.negative_items\n          broken_data.negative_items was not published: " in run.stdout
    assert "- Contract ItemsContract failed: item_id: greater_than_or_equal_to(0) (1 failures)" in run.stdout
    assert "0/1 products published from 1 domains" in run.stdout and "1 blocked" in run.stdout


def test_json_summary_for_machines(home):
    run = run_mesh("materialize", "--json", "-w", str(WORKSPACES / "broken_data.yaml"), home=home, cwd=FIXTURES)
    summary = json.loads(run.stdout)
    assert run.returncode == 1 and summary["ok"] is False and summary["blocked"] == 1
    [product] = summary["domains"][0]["products"]
    contract = next(c for c in product["checks"] if c["name"] == "contract")
    assert product["status"] == "blocked" and contract["passed"] is False and contract["severity"] == "ERROR"


@pytest.mark.workspace
def test_an_unknown_domain_is_named(home):
    unknown = free_name(REPO / "workspace.yaml", "sales")
    run = run_mesh("materialize", "-d", unknown, home=home)
    assert run.returncode == 2 and f"No domain '{unknown}'" in run.stderr


@pytest.mark.parametrize("workspace, rule", [("missing_owner", "owners-required"), ("bad_owner", "owners-valid")])
def test_dagster_itself_refuses_to_load_a_broken_location(home, workspace, rule):
    run = run_dagster("definitions", "validate", "-w", str(WORKSPACES / f"{workspace}.yaml"), home=home, cwd=FIXTURES)
    assert run.returncode == 1
    assert f"[{rule}] {workspace}." in run.stdout + run.stderr


@pytest.mark.workspace
def test_dagster_validates_the_example_workspace(home):
    run = run_dagster("definitions", "validate", "-w", "workspace.yaml", home=home)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "All code locations passed validation" in run.stdout + run.stderr


@pytest.mark.workspace
def test_a_consumer_whose_inputs_were_never_published_says_what_to_run(home):
    workspace = MeshWorkspace.load(REPO / "workspace.yaml")
    consumers = [(loc, {up.domain for _, up in loc.inputs()} - {loc.name}) for loc in workspace.locations]
    consumers = [(loc, upstream) for loc, upstream in consumers if upstream]
    if not consumers:
        pytest.skip("no domain of this mesh reads another's product")
    location, upstream = consumers[-1]
    run = run_mesh("materialize", "-d", location.name, home=home)
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"FAILED  {location.name}." in run.stdout and "had no published version when run" in run.stdout, run.stdout
    assert any(f"mesh materialize --domain {domain}" in run.stdout for domain in upstream), (upstream, run.stdout)
