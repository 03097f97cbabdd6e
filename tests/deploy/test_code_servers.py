"""`mesh up`: one real `dagster code-server start` per domain, the webserver and the daemon on a
PostgreSQL instance; runs launched through GraphQL, domains of a wave running concurrently."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import psutil
import pytest
import yaml

from mesh_core.governance.workspace import MeshWorkspace
from mesh_core.operate.code_servers import grpc_workspace_yaml, plan_code_servers
from tests.deploy.servers import (code_server_pids, launch_mesh_in_waves, mesh_serving, pg_query, postgres_server, process_tree_rss, stop_group,
                                  wait_until)
from tests.support import MESH, REPO, make_dagster_home, mesh_env


FAST_SENSORS = {"MESH_FAILURE_SENSOR_INTERVAL_SECONDS": "5", "MESH_AUTOMATION_INTERVAL_SECONDS": "5"}


@pytest.fixture(scope="module")
def workspace():
    return MeshWorkspace.load(REPO / "workspace.yaml")


@pytest.mark.workspace
def test_the_grpc_workspace_names_one_server_per_domain_on_consecutive_ports(workspace):
    servers = plan_code_servers(REPO / "workspace.yaml", first_port=5000)
    entries = yaml.safe_load(grpc_workspace_yaml(servers))["load_from"]
    assert [e["grpc_server"] for e in entries] == [
        {"host": "127.0.0.1", "port": 5000 + i, "location_name": loc.name} for i, loc in enumerate(workspace.locations)]
    assert [s.module for s in servers] == [loc.module for loc in workspace.locations]


def test_runs_launched_through_the_webserver_succeed_on_separate_code_servers_against_postgres(tmp_path, workspace, capsys):
    home = tmp_path / "dagster_home"
    with postgres_server() as pg:
        with mesh_serving("up", home, {"MESH_INSTANCE": "postgres", **pg, **FAST_SENSORS}, tmp_path / "up.log") as (port, process):
            # One code server process per domain, each a child of `mesh up`, each serving only its domain.
            servers = code_server_pids(process.pid)
            assert sorted(servers) == sorted(loc.name for loc in workspace.locations)
            written = yaml.safe_load((home / "mesh" / "workspace.grpc.yaml").read_text())["load_from"]
            assert sorted(e["grpc_server"]["location_name"] for e in written) == sorted(servers)

            with capsys.disabled():  # idle, before any run worker is a child of a code server
                rss = {name: process_tree_rss(pid) / 2**20 for name, pid in servers.items()}
                print("\ncode server RSS (MiB, process tree, idle):", {k: round(v) for k, v in sorted(rss.items())})
            results = launch_mesh_in_waves(port, workspace, timeout=900)
            assert {status for _, status in results.values()} == {"SUCCESS"}, (results, (tmp_path / "up.log").read_text()[-3000:])

            # Postgres holds the runs, their events, and the daemon's instigator ticks (schedule storage).
            rows = dict(pg_query(pg, "SELECT run_id, status FROM runs"))
            assert all(rows[run_id] == "SUCCESS" for run_id, _ in results.values())
            materialized = {run_id for (run_id,) in pg_query(
                pg, "SELECT DISTINCT run_id FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")}
            assert {run_id for run_id, _ in results.values()} <= materialized
            sensors = {f"{loc.name}_failures" for loc in workspace.locations}
            wait_until("the daemon to record every domain's sensor ticks in Postgres", lambda: sensors <= {
                json.loads(body).get("job_name") for (body,) in pg_query(pg, "SELECT tick_body FROM job_ticks")}, 120)

            # Domains of the first wave ran at the same time (the coordinator limits one run per domain, not one in all).
            spans = pg_query(pg, "SELECT start_time, end_time FROM runs WHERE start_time IS NOT NULL ORDER BY start_time")
            first_wave = [loc.name for loc in workspace.locations if not {u.domain for _, u in loc.inputs()} - {loc.name}]
            if len(first_wave) > 1:
                assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:])), spans

        assert process.poll() is not None


@pytest.mark.workspace
def test_mesh_up_servers_serves_each_domain_over_grpc_and_sigterm_stops_them_all(tmp_path, workspace):
    """`mesh up --servers`: only the code servers, for a webserver and daemon that run elsewhere."""
    from dagster._grpc.client import DagsterGrpcClient
    from dagster._serdes import deserialize_value

    target = tmp_path / "grpc.yaml"
    log = open(tmp_path / "up.log", "w")
    home = make_dagster_home(tmp_path)
    process = subprocess.Popen([str(MESH), "up", "--servers", "--first-port", "0", "--grpc-workspace", str(target)],
                               cwd=REPO, env=mesh_env(home), stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        wait_until("the gRPC workspace", target.exists, 300, alive=lambda: process.poll() is None, log=tmp_path / "up.log")
        entries = [e["grpc_server"] for e in yaml.safe_load(target.read_text())["load_from"]]
        assert sorted(e["location_name"] for e in entries) == sorted(loc.name for loc in workspace.locations)
        modules = {loc.name: loc.module for loc in workspace.locations}
        for entry in entries:  # each server answers, and serves its own domain's module only
            client = DagsterGrpcClient(port=entry["port"], host=entry["host"])
            assert client.ping("mesh")["echo"] == "mesh"
            served = deserialize_value(client.list_repositories()).repository_code_pointer_dict
            assert [pointer.module for pointer in served.values()] == [modules[entry["location_name"]]]
        started = psutil.Process(process.pid).children(recursive=True)
        assert len(started) >= 2 * len(entries)  # per domain, a code server and the process it loads code in
        process.send_signal(signal.SIGTERM)  # to `mesh up` alone: it stops what it started
        process.wait(timeout=90)
        wait_until("every code server and its child to stop",
                   lambda: not [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], 30)
        for entry in entries:  # the server and the child running the domain's code both stopped by the interrupt,
            # not left to notice a missing heartbeat (30 s, then up to 60 s for RPCs) or to be killed at the deadline
            log_text = (home / "mesh" / "logs" / f"code-server-{entry['location_name']}.log").read_text()
            assert "Code proxy server was interrupted" in log_text and "Code server was interrupted" in log_text, log_text[-2000:]
            assert "No heartbeat received" not in log_text, log_text[-2000:]
    finally:
        stop_group(process)
        log.close()


def test_a_domain_with_its_own_interpreter_gets_a_code_server_from_that_interpreter(tmp_path):
    python = tmp_path / "python"
    python.symlink_to(sys.executable)
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n"
        f"  - python_module: {{module_name: a.definitions, location_name: a, working_directory: {tmp_path}}}\n"
        f"  - python_module: {{module_name: b.definitions, location_name: b, working_directory: {tmp_path}, "
        f"executable_path: {python}}}\n")
    a, b = plan_code_servers(tmp_path / "workspace.yaml", first_port=5000)
    assert a.command()[0] == sys.executable and b.command()[0] == str(python)
    assert b.command()[1:5] == ["-m", "dagster", "code-server", "start"] and b.command()[-2:] == ["--location-name", "b"]
