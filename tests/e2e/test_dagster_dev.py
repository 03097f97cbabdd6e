"""The README's first command: materialize the mesh, then `dagster dev` serves it on 127.0.0.1."""

from __future__ import annotations

import signal
import subprocess
import time

import dagster as dg
import pytest

from mesh_core import Input
from mesh_core.governance.workspace import MeshWorkspace
from tests.support import (FIXTURES, LOCATIONS, MESH, REPO, STARTUP_SECONDS, free_port, graphql, is_live,
                           make_dagster_home, mesh_env, stop, wait_for_locations)

ASSET = """query($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) { ... on AssetNode {
  groupName owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
  dependencyKeys { path } assetChecksOrError { ... on AssetChecks { checks { name } } }
  assetMaterializations(limit: 1) { runId } } } }"""
LAUNCH = """mutation($params: ExecutionParams!) { launchPipelineExecution(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
RUN = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
INSTIGATORS = """{ repositoriesOrError { ... on RepositoryConnection { nodes {
  schedules { name state: scheduleState { status } } sensors { name state: sensorState { status } } } } } }"""
DAEMONS = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"


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


@pytest.mark.workspace
def test_mesh_dev_materializes_then_serves_every_domain_with_lineage(dev_server):
    port, process, log_path, home = dev_server
    workspace = MeshWorkspace.load(REPO / "workspace.yaml")
    entries = wait_for_locations(port, process, log_path)
    assert sorted(e["name"] for e in entries) == sorted(loc.name for loc in workspace.locations)
    assert all(e["locationOrLoadError"]["__typename"] == "RepositoryLocation" for e in entries), entries
    count = sum(is_live(spec) for _, spec in workspace.products().values())
    assert f"{count}/{count} products published" in log_path.read_text()

    # A product that reads another domain's (else any product that reads one; else any product):
    # its node in the UI has the lineage, owners and checks.
    consumer_location, ref, spec = choose_consumer(workspace)
    node = graphql(port, ASSET, path=list(ref.asset_key.path))["assetNodeOrError"]
    assert node["groupName"] == ref.domain
    assert sorted(next(iter(o.values())) for o in node["owners"]) == sorted(o.removeprefix("team:") for o in spec.owners)
    assert {tuple(k["path"]) for k in node["dependencyKeys"]} == {tuple(dep.asset_key.path) for dep in spec.deps}
    checks = {key.name for key in consumer_location.defs.resolve_assets_def(ref.asset_key).check_keys}
    assert {c["name"] for c in node["assetChecksOrError"]["checks"]} == checks
    assert node["assetMaterializations"], "the materialization from `mesh dev` is visible in the UI"

    # Each domain's schedules and sensors, as its own definitions declare them, are there and running:
    # its failure sensor always, its automation sensor when a product reads another, its cadence
    # schedule only when the domain set one (cadence= is optional).
    instigators = {item["name"]: item["state"]["status"]
                   for repo in graphql(port, INSTIGATORS)["repositoriesOrError"]["nodes"]
                   for kind in ("schedules", "sensors") for item in repo[kind]}
    for location in workspace.locations:
        declared = [s.name for s in location.defs.schedules or []] + [s.name for s in location.defs.sensors or []]
        assert f"{location.name}_failures" in declared
        assert (f"{location.name}_automation" in declared) == any(p.deps for p in location.products.values())
        assert {name: instigators.get(name) for name in declared} == dict.fromkeys(declared, "RUNNING"), location.name

    # A run launched as the UI launches it (queued, then started by the daemon): every step reads
    # the version of each input pinned for the run, and records it.
    selection = [{"path": list(ref.asset_key.path)} for ref in consumer_location.products]
    params = {"selector": {"repositoryLocationName": consumer_location.name, "repositoryName": "__repository__",
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
        latest = {str(spec): instance.get_latest_materialization_event(spec.ref.asset_key).asset_materialization.metadata["mesh/port_version"].value
                  for spec in {Input(ref) for inputs in built for ref in inputs} if spec.major is None}
    if any(spec.deps for spec in consumer_location.products.values()):
        assert latest and all(inputs[ref] == latest[ref] for inputs in built for ref in inputs if ref in latest), (built, latest)

    daemons = {d["daemonType"]: d for d in graphql(port, DAEMONS)["instance"]["daemonHealth"]["allDaemonStatuses"]}
    assert "SCHEDULER" in daemons and "QUEUED_RUN_COORDINATOR" in daemons


def choose_consumer(workspace: MeshWorkspace):
    """(location, product, spec): one that reads another domain's product if the mesh has one, else
    one that reads any product, else any product; from the last domain in dependency order first."""
    candidates = [(loc, ref, spec) for loc in reversed(workspace.domain_order()) for ref, spec in loc.products.items()]
    reads_other = lambda item: any(dep.asset_key.path[0] != item[1].domain for dep in item[2].deps)  # noqa: E731
    return next(filter(reads_other, candidates), None) or next((c for c in candidates if c[2].deps), candidates[0])


def test_sigterm_to_a_backgrounded_mesh_dev_stops_everything_it_started(tmp_path):
    """As `make run &` from a script: the shell starts it with SIGINT ignored."""
    home = make_dagster_home(tmp_path)
    port = free_port()
    log = open(tmp_path / "dev.log", "w+")
    process = subprocess.Popen([str(MESH), "dev", "--skip-materialize", "--port", str(port)], cwd=REPO, env=mesh_env(home),
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        wait_for_locations(port, process, tmp_path / "dev.log")
        before = group_members(process.pid)
        assert len(before) >= 3, before  # dagster dev, the webserver, the daemon (and code servers)
        process.send_signal(signal.SIGTERM)  # to mesh dev alone, as `kill %1` does
        process.wait(timeout=60)
        deadline = time.monotonic() + 60
        while group_members(process.pid) and time.monotonic() < deadline:
            time.sleep(1)
        assert group_members(process.pid) == [], f"still running after SIGTERM: {group_members(process.pid)}"
    finally:
        stop(process)
        log.close()


def group_members(pgid: int) -> list[str]:
    found = subprocess.run(["pgrep", "-g", str(pgid), "-a"], capture_output=True, text=True)
    return found.stdout.splitlines()


# -- one `mesh dev` on a small fixture mesh, shared by the tests below ------------------------------

RUN_TAGS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status tags { key value } } } }"
RELOAD = """mutation { reloadWorkspace { __typename ... on Workspace { locationEntries { name loadStatus } }
  ... on PythonError { message } } }"""
ASSET_KEYS = "{ assetNodes { assetKey { path } } }"
DEV_ROUNDS = 60  # bounded waits: 2 s apart


def entry(domain: str) -> str:
    return (f"  - python_module: {{module_name: fixture_domains.{domain}, location_name: {domain}, "
            f"working_directory: {FIXTURES}}}\n")


@pytest.fixture(scope="module")
def small_dev(tmp_path_factory):
    """`mesh dev` serving a copy of the source/sink fixture mesh's workspace with only `source` in it."""
    root = tmp_path_factory.mktemp("small_dev")
    home = make_dagster_home(root)
    workspace = root / "workspace.yaml"
    workspace.write_text("load_from:\n" + entry("source"))
    port = free_port()
    log = open(root / "dev.log", "w+")
    process = subprocess.Popen([str(MESH), "dev", "-w", str(workspace), "--port", str(port)], cwd=root,
                               env=mesh_env(home), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_locations(port, process, root / "dev.log")
        yield port, workspace, home, root / "dev.log"
    finally:
        stop(process)
        log.close()


def launch_as_the_ui_does(port: int, location) -> str:
    """The Materialize button: the location's implicit asset job on its products, queued for the daemon."""
    selection = [{"path": list(ref.asset_key.path)} for ref in location.products]
    params = {"selector": {"repositoryLocationName": location.name, "repositoryName": "__repository__",
                           "jobName": "__ASSET_JOB", "assetSelection": selection}, "runConfigData": {}}
    launched = graphql(port, LAUNCH, params=params)["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def test_a_run_launched_from_the_ui_carries_the_domain_tags_of_a_mesh_materialize_run(small_dev):
    from mesh_core.instance.home import HOST_TAG, LAUNCHED_BY, PID_TAG

    port, workspace_path, home, log_path = small_dev
    location = MeshWorkspace.load(workspace_path).locations[0]
    with dg.DagsterInstance.from_config(str(home)) as instance:  # `mesh dev` published it as `mesh materialize` does
        cli_run = instance.get_runs(filters=dg.RunsFilter(tags={LAUNCHED_BY: "mesh-materialize"}))[0]
    # What says which process ran a headless run is not the domain's; every other mesh/ tag is.
    expected = {k: v for k, v in cli_run.tags.items() if k.startswith("mesh/") and k not in (LAUNCHED_BY, HOST_TAG, PID_TAG)}
    assert expected, cli_run.tags
    run_id = launch_as_the_ui_does(port, location)
    for _ in range(DEV_ROUNDS):
        run = graphql(port, RUN_TAGS, id=run_id)["runOrError"]
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert run["status"] == "SUCCESS", log_path.read_text()[-5000:]
    tags = {tag["key"]: tag["value"] for tag in run["tags"]}
    assert {k: tags.get(k) for k in expected} == expected, tags


CONTRACT_SHOWN = """query($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) { ... on AssetNode {
  metadataEntries { label ... on TableSchemaMetadataEntry { schema { columns { name constraints { other } } } }
  ... on MarkdownMetadataEntry { mdStr } } } } }"""


def test_the_ui_shows_a_products_contract_as_readable_rules(small_dev):
    from fixture_domains.source import readings  # the product small_dev serves

    from mesh_core.declare.contract import column_specs

    port = small_dev[0]
    entries = {e["label"]: e for e in graphql(port, CONTRACT_SHOWN, path=list(readings.ref.asset_key.path))
               ["assetNodeOrError"]["metadataEntries"]}
    shown = {c["name"]: c["constraints"]["other"] for c in entries["dagster/column_schema"]["schema"]["columns"]}
    assert any(shown.values()), "the fixture's contract has checks to show"
    # Whole (the UI cuts a constraint after 27 characters), and not Pandera's repr.
    assert all(len(rule) <= 30 and not rule.startswith("<Check") for rules in shown.values() for rule in rules), shown
    declared = column_specs(readings.contract)
    assert shown == {c["name"]: c["rules"] for c in declared}
    for column in declared:
        assert f"- `{column['name']}` ({column['type']}): " in entries["mesh/contract_rules"]["mdStr"]


def test_a_domain_added_to_workspace_yaml_appears_on_reload_without_republishing_the_others(small_dev):
    port, workspace_path, home, log_path = small_dev
    before = MeshWorkspace.load(workspace_path)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs_before = {run.run_id for run in instance.get_runs()}
        published_before = {ref: latest_publish(instance, ref) for loc in before.locations for ref in loc.products}
    workspace_path.write_text(workspace_path.read_text() + entry("sink"))
    added = MeshWorkspace.load(workspace_path).location("sink")
    wanted = {tuple(ref.asset_key.path) for ref in added.products}
    reloaded = graphql(port, RELOAD)["reloadWorkspace"]
    assert reloaded["__typename"] == "Workspace", reloaded
    for _ in range(DEV_ROUNDS):  # the mutation answers once every location is loaded again; allow for a slow one
        entries = {e["name"]: e["loadStatus"] for e in graphql(port, LOCATIONS)["workspaceOrError"]["locationEntries"]}
        shown = {tuple(node["assetKey"]["path"]) for node in graphql(port, ASSET_KEYS)["assetNodes"]}
        if entries.get("sink") == "LOADED" and wanted <= shown:
            break
        time.sleep(2)
    assert entries == dict.fromkeys([*(loc.name for loc in before.locations), "sink"], "LOADED"), log_path.read_text()[-5000:]
    assert wanted <= shown, sorted(shown)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        # The new domain's automation may run it now that it is loaded; nothing ran for the others.
        new_runs = [run for run in instance.get_runs() if run.run_id not in runs_before]
        assert [run.tags.get("mesh/domain") for run in new_runs if run.tags.get("mesh/domain") != "sink"] == []
        assert {ref: latest_publish(instance, ref) for ref in published_before} == published_before


def latest_publish(instance: dg.DagsterInstance, ref) -> int | None:
    records = instance.fetch_materializations(ref.asset_key, limit=1).records
    return records[0].storage_id if records else None
