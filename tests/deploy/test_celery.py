"""The distributed executor: MESH_EXECUTOR=celery with a real Redis broker and real Celery workers.
The whole example mesh runs through the webserver and daemon (on code servers, on PostgreSQL), and
every step executes in a Celery worker process, not in the run's own process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import psutil
import pytest

from mesh_core.governance.workspace import MeshWorkspace
from tests.deploy.servers import (launch_mesh_in_waves, mesh_serving, postgres_server, redis_server, stop_group,
                                  wait_until)
from tests.support import REPO, mesh_env


@pytest.fixture(scope="module")
def workspace():
    return MeshWorkspace.load(REPO / "workspace.yaml")


@pytest.fixture
def stack(tmp_path):
    """PostgreSQL, Redis and one Celery worker (two processes in its pool), all on 127.0.0.1."""
    home = tmp_path / "dagster_home"
    with postgres_server() as pg, redis_server() as broker:
        env = {"MESH_INSTANCE": "postgres", **pg, "MESH_EXECUTOR": "celery", "MESH_CELERY_BROKER": broker}
        # The worker opens the instance as it starts: Mesh creates it (the Postgres profile) first.
        subprocess.run([sys.executable, "-c", "import sys; from mesh_core.instance.home import prepare_instance; prepare_instance(sys.argv[1])",
                        str(home)], env={**mesh_env(home), **env}, check=True, timeout=120)
        config = tmp_path / "celery.yaml"
        config.write_text(f"execution:\n  config:\n    broker: {broker}\n    backend: {broker}\n")
        bin_dir = Path(sys.executable).parent
        name = f"mesh-test-{uuid.uuid4().hex[:6]}"
        log = open(tmp_path / "worker.log", "w")
        worker = subprocess.Popen(
            [str(bin_dir / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", str(config), "-n", name,
             "--", "--concurrency=2"],
            cwd=REPO, env={**mesh_env(home), **env, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until("the Celery worker to be ready", lambda: "ready." in (tmp_path / "worker.log").read_text(), 120,
                       alive=lambda: worker.poll() is None, log=tmp_path / "worker.log")
            yield home, env, worker, pg
        finally:
            stop_group(worker)
            log.close()


def test_every_step_of_the_mesh_runs_on_a_celery_worker_and_the_runs_succeed(stack, workspace, tmp_path, monkeypatch, capsys):
    home, env, worker, pg = stack
    pool = {p.pid for p in psutil.Process(worker.pid).children(recursive=True)}
    with mesh_serving("up", home, env, tmp_path / "up.log") as (port, up):
        started = time.monotonic()
        results = launch_mesh_in_waves(port, workspace, timeout=1200)
        seconds = time.monotonic() - started
        assert {status for _, status in results.values()} == {"SUCCESS"}, (
            results, (tmp_path / "worker.log").read_text()[-4000:])
    pool |= {p.pid for p in psutil.Process(worker.pid).children(recursive=True)}
    with capsys.disabled():
        print(f"\nwhole mesh through the webserver on Celery: {seconds:.1f} s")

    for key, value in {**env, "DAGSTER_HOME": str(home)}.items():
        monkeypatch.setenv(key, value)
    with dg.DagsterInstance.get() as instance:
        for domain, (run_id, _) in results.items():
            records = instance.all_logs(run_id)
            [run_pid] = {r.dagster_event.pid for r in records if r.dagster_event and r.dagster_event.event_type == dg.DagsterEventType.RUN_START}
            steps = {r.step_key: r.dagster_event.pid for r in records
                     if r.dagster_event and r.dagster_event.event_type == dg.DagsterEventType.STEP_START}
            assert sorted(steps) == sorted("__".join(ref.asset_key.path) for ref in workspace.location(domain).products)
            # Each step ran in a process of the worker's pool, never in the run worker that launched it.
            assert run_pid not in steps.values()
            assert set(steps.values()) <= pool, (domain, steps, pool)
            delegated = [r for r in records if r.dagster_event and r.dagster_event.event_type == dg.DagsterEventType.ENGINE_EVENT
                         and "in celery worker" in (r.message or "")]
            assert len(delegated) == len(steps), domain
