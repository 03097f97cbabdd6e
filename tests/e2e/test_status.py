"""`mesh status` on a real instance after a few runs, checked against the instance's event log."""

from __future__ import annotations

import pytest

import json
from datetime import datetime

import dagster as dg

from mesh_core.governance.workspace import MeshWorkspace
from tests.support import REPO, make_dagster_home, run_mesh

pytestmark = pytest.mark.workspace


def test_status_reports_what_the_event_log_holds(tmp_path):
    home = make_dagster_home(tmp_path)
    domain = MeshWorkspace.load(REPO / "workspace.yaml").domain_order()[0]  # one that reads no other domain
    for _ in range(2):
        assert run_mesh("materialize", "-d", domain.name, home=home).returncode == 0
    run = run_mesh("status", "--json", "-d", domain.name, home=home)
    assert run.returncode == 0, run.stdout + run.stderr
    [reported] = json.loads(run.stdout)["domains"]
    assert reported["domain"] == domain.name and reported["state"] == "met"
    scores = {score["product"]: score for score in reported["products"]}
    assert set(scores) == {str(ref) for ref in domain.products}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for ref in domain.products:
            events = instance.fetch_materializations(ref.asset_key, limit=10).records
            score = scores[str(ref)]
            assert (score["attempts"], score["published"], score["publish_rate"]) == (2, 2, 1.0)
            assert score["rows"] == [int(e.asset_materialization.metadata["dagster/row_count"].value) for e in reversed(events)]
            assert int(datetime.fromisoformat(score["last_publish"]).timestamp()) == int(events[0].timestamp)
            checks = len(domain.defs.resolve_assets_def(ref.asset_key).check_keys)
            assert score["checks_run"] == 2 * checks


def test_status_of_an_unknown_domain_is_a_usage_error(tmp_path):
    run = run_mesh("status", "-d", "nosuch", home=make_dagster_home(tmp_path))
    assert run.returncode == 2 and "No domain 'nosuch'" in run.stderr


def test_status_as_a_table_names_every_domain(tmp_path):
    run = run_mesh("status", home=make_dagster_home(tmp_path))
    assert run.returncode == 0, run.stderr
    for location in MeshWorkspace.load(REPO / "workspace.yaml").locations:
        assert f"{location.name}: no data" in run.stdout
