"""The deployment profile: the whole example mesh materialized against a real PostgreSQL instance
(MESH_INSTANCE=postgres, credentials only in the environment), publishing its ports to and reading
them from an S3-protocol server on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from dagster import DagsterEventType

from mesh_core import DomainStorage
from mesh_core.governance.workspace import MeshWorkspace
from mesh_core.instance.home import DEFAULT_DAGSTER_YAML, POSTGRES_VARIABLES, instance_yaml
from tests.deploy.servers import launch, mesh_serving, pg_database, pg_query, postgres_server, s3_server, wait_for_runs
from tests.support import FIXTURES, REPO, WORKSPACES, mesh_env, run_mesh

BUCKET = "lake"


@pytest.fixture(scope="module")
def postgres():
    with postgres_server() as env:
        yield env


@pytest.fixture(scope="module")
def workspace():
    return MeshWorkspace.load(REPO / "workspace.yaml")


def test_the_postgres_profile_passes_dagsters_instance_schema_with_every_credential_from_the_environment(tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    (tmp_path / "dagster.yaml").write_text(instance_yaml("postgres"))
    for name in POSTGRES_VARIABLES:
        monkeypatch.setenv(name, "5432" if name.endswith("PORT") else f"value-of-{name}")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["storage"]["postgres"]["postgres_db"] == {
        "hostname": {"env": "DAGSTER_PG_HOST"}, "port": {"env": "DAGSTER_PG_PORT"}, "username": {"env": "DAGSTER_PG_USERNAME"},
        "password": {"env": "DAGSTER_PG_PASSWORD"}, "db_name": {"env": "DAGSTER_PG_DB"}, "scheme": "postgresql+psycopg2"}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator" and config["sensors"]["use_threads"] is True


def test_the_postgres_profile_without_credentials_names_the_missing_variables(tmp_path):
    home = tmp_path / "dagster_home"
    env = {"MESH_INSTANCE": "postgres", **{name: "" for name in POSTGRES_VARIABLES}}
    env["DAGSTER_PG_HOST"] = "127.0.0.1"
    run = run_mesh("materialize", home=home, env_extra=env, timeout=300)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert ("reads DAGSTER_PG_PORT, DAGSTER_PG_USERNAME, DAGSTER_PG_PASSWORD, DAGSTER_PG_DB from the environment, "
            "but they are not set. Export DAGSTER_PG_PORT=...") in run.stderr, run.stderr
    assert "storage:\n  postgres:" in (home / "dagster.yaml").read_text()  # the profile was written, with no secret in it
    assert "mesh-test" not in (home / "dagster.yaml").read_text()


def test_a_wrong_password_is_reported_with_the_server_and_user_not_a_traceback(tmp_path, postgres):
    home = tmp_path / "dagster_home"
    run = run_mesh("materialize", home=home, env_extra={"MESH_INSTANCE": "postgres", **postgres, "DAGSTER_PG_PASSWORD": "wrong"})
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert (f"Cannot open the instance database of {home / 'dagster.yaml'} (127.0.0.1:{postgres['DAGSTER_PG_PORT']}, "
            "user mesh): ") in run.stderr and "password authentication failed" in run.stderr, run.stderr


def test_an_embedded_home_under_the_postgres_profile_is_refused(tmp_path, postgres):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # an embedded (sqlite) instance
    run = run_mesh("materialize", home=home, env_extra={"MESH_INSTANCE": "postgres", **postgres})
    assert run.returncode == 2, run.stdout + run.stderr
    assert "MESH_INSTANCE=postgres, but" in run.stderr and "keeps its storage in sqlite" in run.stderr, run.stderr


@pytest.mark.workspace
def test_the_whole_mesh_materializes_on_postgres_and_publishes_every_port_to_s3(tmp_path, postgres, workspace, monkeypatch):
    home = tmp_path / "dagster_home"
    with s3_server(BUCKET) as (s3_env, client):
        env = {"MESH_INSTANCE": "postgres", **postgres, **s3_env}
        run = run_mesh("materialize", "--json", home=home, env_extra=env)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        summary = json.loads(run.stdout)
        products = workspace.products()
        assert summary["published"] == len(products) and len(summary["domains"]) == len(workspace.locations)

        # Run, event and schedule storage are in Postgres; nothing went to a local sqlite database.
        assert not list(home.rglob("*.db")), list(home.rglob("*.db"))
        runs = dict(pg_query(postgres, "SELECT run_id, status FROM runs"))
        by_domain = {d["domain"]: d["run_id"] for d in summary["domains"]}
        assert set(by_domain) == {loc.name for loc in workspace.locations}
        assert {runs[run_id] for run_id in by_domain.values()} == {"SUCCESS"}
        materialized = {tuple(json.loads(key)) for (key,) in pg_query(
            postgres, "SELECT DISTINCT asset_key FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")}
        assert materialized == {tuple(ref.asset_key.path) for ref in products}
        assert pg_query(postgres, "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_CHECK_EVALUATION'")[0][0] > 0
        tables = {name for (name,) in pg_query(postgres, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"runs", "event_logs", "jobs", "job_ticks", "asset_keys"} <= tables  # schedule storage too

        # Every product's port is on the S3 server, and every one reads back from there.
        keys = {item["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="mesh/")
                for item in page.get("Contents", [])}
        rows = {p["product"]: p["rows"] for d in summary["domains"] for p in d["products"]}
        for key, value in s3_env.items():
            monkeypatch.setenv(key, value)
        for ref in products:
            assert any(k.startswith(f"mesh/{ref.domain}/ports/{ref.product}/_delta_log/") for k in keys), ref
            assert len(DomainStorage(home / "data", ref.domain).read(ref)) == rows[str(ref)], ref
        assert not any((home / "data" / loc.name / "ports").exists() for loc in workspace.locations)


# Dagster's own PostgreSQL settings, as its deployment docs write them: no scheme, no Mesh class.
STANDARD_POSTGRES_YAML = """\
telemetry:
  enabled: false
run_storage:
  module: dagster_postgres.run_storage
  class: PostgresRunStorage
  config:
    postgres_db: &db
      hostname: {env: DAGSTER_PG_HOST}
      port: {env: DAGSTER_PG_PORT}
      username: {env: DAGSTER_PG_USERNAME}
      password: {env: DAGSTER_PG_PASSWORD}
      db_name: {env: DAGSTER_PG_DB}
event_log_storage:
  module: dagster_postgres.event_log
  class: PostgresEventLogStorage
  config:
    postgres_db: *db
schedule_storage:
  module: dagster_postgres.schedule_storage
  class: PostgresScheduleStorage
  config:
    postgres_db: *db
"""


def test_dagsters_standard_postgres_settings_work_without_a_scheme(tmp_path, postgres, monkeypatch):
    env = pg_database(postgres, "standard_settings")  # its own database: the whole-mesh test counts what is in its own
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(STANDARD_POSTGRES_YAML)
    run = run_mesh("materialize", "--json", "-w", "workspaces/source_sink.yaml", home=home, cwd=FIXTURES, env_extra=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads(run.stdout)
    monkeypatch.chdir(FIXTURES)  # the fixture workspace's paths are relative to where it runs
    workspace = MeshWorkspace.load(WORKSPACES / "source_sink.yaml")
    by_domain = {d["domain"]: d["run_id"] for d in summary["domains"]}
    assert set(by_domain) == {loc.name for loc in workspace.locations}

    # The runs, their events and the schedule tables are in PostgreSQL; no sqlite file was written.
    runs = dict(pg_query(env, "SELECT run_id, status FROM runs"))
    assert {runs[run_id] for run_id in by_domain.values()} == {"SUCCESS"}
    materialized = {tuple(json.loads(key)) for (key,) in pg_query(
        env, "SELECT DISTINCT asset_key FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")}
    assert materialized == {tuple(ref.asset_key.path) for ref in workspace.products()}
    tables = {name for (name,) in pg_query(env, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"runs", "event_logs", "jobs", "job_ticks"} <= tables
    assert not list(home.rglob("*.db")), list(home.rglob("*.db"))

    # Dagster's own processes (webserver, daemon, run workers) do not import Mesh: they open the same settings
    # through the instance_class Mesh writes into its homes, as the real `dagster` CLI does here.
    instance_class = yaml.safe_load(DEFAULT_DAGSTER_YAML)["instance_class"]
    (home / "dagster.yaml").write_text(STANDARD_POSTGRES_YAML + yaml.safe_dump({"instance_class": instance_class}))
    listed = subprocess.run([sys.executable, "-m", "dagster", "run", "list"], env={**mesh_env(home), **env},
                            capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert all(run_id in listed.stdout for run_id in by_domain.values()), listed.stdout


@pytest.mark.parametrize("command", ["up", "dev"])
def test_mesh_up_and_dev_serve_a_home_on_dagsters_standard_postgres_settings(tmp_path, postgres, monkeypatch, command):
    # The webserver, the daemon, code servers and run workers are Dagster's own processes: none imports Mesh
    # before it opens this dagster.yaml, which names no scheme and no Mesh instance_class.
    env = pg_database(postgres, f"standard_{command}")
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(STANDARD_POSTGRES_YAML)
    monkeypatch.chdir(FIXTURES)  # the fixture workspace's paths are relative to where it runs
    workspace = MeshWorkspace.load(WORKSPACES / "source_sink.yaml")
    location = workspace.domain_order()[0]  # reads no other domain's product: it runs on an empty lake
    skip = ["--skip-materialize"] if command == "dev" else []
    with mesh_serving(command, home, env, tmp_path / f"{command}.log", "-w", "workspaces/source_sink.yaml", *skip,
                      cwd=FIXTURES) as (port, _):
        # Launched as the UI launches it.
        run_id = launch(port, location.name, [list(ref.asset_key.path) for ref in location.products])
        assert wait_for_runs(port, [run_id], timeout=300) == {run_id: "SUCCESS"}

    assert pg_query(env, "SELECT status FROM runs WHERE run_id = %s", run_id) == [("SUCCESS",)]
    events = {kind for (kind,) in pg_query(env, "SELECT DISTINCT dagster_event_type FROM event_logs WHERE run_id = %s", run_id)}
    # Queued by the webserver, taken from the queue by the daemon (a queued run starts no other way), run (and its
    # products materialized) by a run worker.
    stages = [DagsterEventType.RUN_ENQUEUED, DagsterEventType.RUN_STARTING, DagsterEventType.RUN_START,
              DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.RUN_SUCCESS]
    assert {stage.value for stage in stages} <= events, events
    assert not list(home.rglob("*.db")), list(home.rglob("*.db"))
