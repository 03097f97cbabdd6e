"""The README's first command: materialize the mesh, then `dagster dev` serves it on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request

import dagster as dg
import pytest

from mesh_core import ProductRef
from mesh_core.workspace import MeshWorkspace
from tests.support import MESH, REPO, free_port, make_dagster_home, mesh_env

STARTUP_SECONDS = 300

LOCATIONS = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
ASSET = """query($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) { ... on AssetNode {
  groupName owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
  dependencyKeys { path } assetChecksOrError { ... on AssetChecks { checks { name } } }
  assetMaterializations(limit: 1) { runId } } } }"""
LAUNCH = """mutation($params: ExecutionParams!) { launchPipelineExecution(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
RUN = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
DAEMONS = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"


def graphql(port: int, query: str, **variables) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


@pytest.fixture
def dev_server(tmp_path):
    home = make_dagster_home(tmp_path)
    port = free_port()
    log = open(tmp_path / "dev.log", "w+")
    process = subprocess.Popen([str(MESH), "dev", "--port", str(port)], cwd=REPO, env=mesh_env(home),
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield port, process, tmp_path / "dev.log", home
    finally:
        stop(process)
        log.close()


def stop(process: subprocess.Popen) -> None:
    """Stop dagster dev and every process it started (webserver, daemon, code servers)."""
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def wait_for_locations(port, process, log_path) -> list[dict]:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, log_path.read_text()
        try:
            entries = graphql(port, LOCATIONS)["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                return entries
        except OSError:
            pass
        time.sleep(2)
    raise AssertionError(f"dagster dev did not load every location in {STARTUP_SECONDS}s:\n{log_path.read_text()}")


def test_mesh_dev_materializes_then_serves_every_domain_with_lineage(dev_server):
    port, process, log_path, home = dev_server
    entries = wait_for_locations(port, process, log_path)
    assert sorted(e["name"] for e in entries) == ["fleet", "insights", "operations", "reference", "weather"]
    assert all(e["locationOrLoadError"]["__typename"] == "RepositoryLocation" for e in entries), entries
    count = len(MeshWorkspace.load(REPO / "workspace.yaml").products())
    assert f"{count}/{count} products published" in log_path.read_text()

    node = graphql(port, ASSET, path=["insights", "fleet_utilisation"])["assetNodeOrError"]
    assert node["groupName"] == "insights" and node["owners"] == [{"team": "network-insights"}]
    assert {tuple(k["path"]) for k in node["dependencyKeys"]} == {("operations", "flights"), ("fleet", "aircraft")}
    assert "tail_number_in_fleet_registry" in {c["name"] for c in node["assetChecksOrError"]["checks"]}
    assert node["assetMaterializations"], "the materialization from `mesh dev` is visible in the UI"

    # A run launched as the UI launches it (queued, then started by the daemon, multiprocess
    # executor): every step reads the version of each input pinned for the run, and records it.
    selection = [{"path": list(ref.asset_key.path)} for ref in MeshWorkspace.load(REPO / "workspace.yaml").location("insights").products]
    params = {"selector": {"repositoryLocationName": "insights", "repositoryName": "__repository__",
                           "jobName": "__ASSET_JOB", "assetSelection": selection}, "runConfigData": {}}
    launched = graphql(port, LAUNCH, params=params)["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + STARTUP_SECONDS
    while (status := graphql(port, RUN, id=run_id)["runOrError"]["status"]) not in ("SUCCESS", "FAILURE", "CANCELED"):
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        time.sleep(2)
    assert status == "SUCCESS", log_path.read_text()[-5000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        built = [r.asset_materialization.metadata["mesh/input_versions"].value
                 for r in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records]
        assert len(built) == len(selection)
        latest = {str(ProductRef.from_asset_key(key)): instance.get_latest_materialization_event(key).asset_materialization.metadata["mesh/port_version"].value
                  for key in {dg.AssetKey(ref.split(".")) for inputs in built for ref in inputs}}
    assert all(inputs == {ref: latest[ref] for ref in inputs} for inputs in built), (built, latest)

    daemons = {d["daemonType"]: d for d in graphql(port, DAEMONS)["instance"]["daemonHealth"]["allDaemonStatuses"]}
    assert "SCHEDULER" in daemons and "QUEUED_RUN_COORDINATOR" in daemons
