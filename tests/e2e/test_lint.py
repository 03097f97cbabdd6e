"""`mesh lint`: every rule over the whole mesh in one run, without materializing anything."""

from __future__ import annotations

import json

import pytest

from mesh_core.governance.workspace import MeshWorkspace
from tests.support import FIXTURES, REPO, WORKSPACES, make_dagster_home, run_mesh


@pytest.fixture
def home(tmp_path):
    return make_dagster_home(tmp_path)


def lint(*args, home, workspace=None):
    where = ("-w", str(WORKSPACES / f"{workspace}.yaml")) if workspace else ()
    return run_mesh("lint", *where, *args, home=home, cwd=FIXTURES if workspace else REPO)


@pytest.mark.workspace
def test_the_example_mesh_lints_clean_without_materializing(home):
    run = lint("--json", home=home)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["ok"] and report["violations"] == [] and report["warnings"] == [] and report["waived"] == []
    assert report["domains"] == sorted(loc.name for loc in MeshWorkspace.load(REPO / "workspace.yaml").locations)
    assert not (home / "data").exists()


def test_every_violation_of_every_domain_is_reported_in_one_run(home):
    run = lint(home=home, workspace="many_violations")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "[owners-required] missing_owner.orphan_items: no owners declared. Fix: pass owners=" in run.stdout
    assert "[owners-valid] bad_owner.badly_owned_items: invalid owner 'gold tier'. Fix:" in run.stdout
    assert "[read-public-only] snoop.copied_items: reads vault.secret_items, whose access is 'internal'." in run.stdout
    # The domains that load also report their warnings (the fixtures' contracts describe no column).
    assert "warning  [column-descriptions] snoop.copied_items: contract columns without a description: item_id, label." in run.stdout
    assert "3 violation(s), 3 warning(s), 0 waived in 4 domain(s)" in run.stdout
    violations = json.loads(lint("--json", home=home, workspace="many_violations").stdout)["violations"]
    assert {(v["domain"], v["product"], v["rule"]) for v in violations} == {
        ("missing_owner", "orphan_items", "owners-required"), ("bad_owner", "badly_owned_items", "owners-valid"),
        ("snoop", "copied_items", "read-public-only")}
    assert all(v["message"] and v["fix"] for v in violations)


def test_a_domain_filter_shows_only_that_domains_violations(home):
    run = lint("--json", "-d", "snoop", home=home, workspace="many_violations")
    assert run.returncode == 1
    assert [v["domain"] for v in json.loads(run.stdout)["violations"]] == ["snoop"]
    unknown = lint("-d", "nosuch", home=home, workspace="many_violations")
    assert unknown.returncode == 2 and "No domain 'nosuch'" in unknown.stderr


def test_cycles_between_domains_are_violations(home):
    run = lint(home=home, workspace="cycle")
    assert run.returncode == 1 and "[no-domain-cycles]" in run.stdout, run.stdout


def test_code_that_cannot_be_imported_is_a_load_error_not_a_violation(home):
    run = lint(home=home, workspace="broken_import")
    assert run.returncode == 2
    assert "code location 'broken_import' (fixture_domains.broken_import): ModuleNotFoundError" in run.stderr
    assert "Traceback" not in run.stderr


def test_waivers_are_shown_with_their_reason_and_do_not_fail_lint(home):
    run = lint(home=home, workspace="waived")
    assert run.returncode == 0, run.stdout + run.stderr
    assert ("waived   [grain-in-description] waived.legacy_items: the description does not state the grain: "
            "'Items, as the legacy feed sends them.'...") in run.stdout
    assert "Waived because: legacy feed; its grain is documented in docs/feed.md" in run.stdout


def test_mesh_dev_refuses_to_serve_a_mesh_that_lint_rejects(home):
    run = run_mesh("dev", "--skip-materialize", "-w", str(WORKSPACES / "private_dependency.yaml"), "--port", "1",
                   home=home, cwd=FIXTURES, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "[read-public-only] snoop.copied_items" in run.stdout and "Starting Dagster" not in run.stdout


def test_lint_warns_about_deprecated_inputs_and_fails_on_drafts_and_retired_ones(home):
    warned = lint(home=home, workspace="lifecycle")
    assert warned.returncode == 0, warned.stdout + warned.stderr
    assert "warning  [reads-no-deprecated] reader.old_copy: reads legacy.old_items, deprecated on 2099-01-01" in warned.stdout
    failed = lint(home=home, workspace="lifecycle_errors")
    assert failed.returncode == 1
    assert "error    [reads-no-drafts] careless_reader.draft_copy" in failed.stdout
    assert "error    [reads-no-retired] careless_reader.gone_copy" in failed.stdout
