import sqlite3
import subprocess
import sys
import time

import dagster as dg
import pytest
import yaml

from mesh_core import MeshError
from mesh_core.instance.home import DEFAULT_DAGSTER_YAML, fail_dead_runs, prepare_instance, run_tags
from tests.support import REPO

INIT = """
import sys, time
from pathlib import Path
home, go = Path(sys.argv[1]), Path(sys.argv[2])
from mesh_core.instance.home import prepare_instance
import dagster as dg
while not go.exists():
    time.sleep(0.005)
prepare_instance(home)
with dg.DagsterInstance.from_config(str(home)) as instance:
    instance.get_runs(limit=1)
"""


def test_a_new_home_gets_meshs_dagster_yaml_with_telemetry_off(tmp_path):
    home = prepare_instance(tmp_path / "new_home")
    assert yaml.safe_load((home / "dagster.yaml").read_text())["telemetry"] == {"enabled": False}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert not instance.telemetry_enabled and instance.run_monitoring_enabled
    # The repository's own home is the same file, so the two never drift apart.
    assert (REPO / "dagster_home" / "dagster.yaml").read_text() == DEFAULT_DAGSTER_YAML


def test_an_existing_dagster_yaml_is_left_alone(tmp_path):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    prepare_instance(tmp_path)
    assert (tmp_path / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


def test_a_dagster_home_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "home").write_text("")
    with pytest.raises(MeshError, match=r"DAGSTER_HOME .*home is a file, not a folder"):
        prepare_instance(tmp_path / "home")


def test_two_processes_creating_a_fresh_instance_at_once_never_corrupt_it(tmp_path):
    tries = 6
    for attempt in range(tries):
        home, go = tmp_path / f"home{attempt}", tmp_path / f"go{attempt}"
        processes = [subprocess.Popen([sys.executable, "-c", INIT, str(home), str(go)], stderr=subprocess.PIPE, text=True)
                     for _ in range(2)]
        time.sleep(1.5)  # both have imported Dagster and wait on the same start signal
        go.touch()
        for process in processes:
            assert process.wait(timeout=120) == 0, process.stderr.read()
        for database in home.rglob("*.db"):
            with sqlite3.connect(database) as con:
                tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if "alembic_version" in tables:
                    heads = con.execute("SELECT count(*) FROM alembic_version").fetchone()[0]
                    assert heads == 1, f"{database}: {heads} alembic heads"
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert instance.get_runs() == []
    print(f"{tries} fresh homes created by two processes at once: none corrupted")


def test_runs_whose_process_died_are_marked_failed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    home = prepare_instance(tmp_path)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        tags = {**run_tags(), "mesh/pid": dead.stdout.strip()}
        orphan = instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", run_id="a" * 36, status=dg.DagsterRunStatus.STARTED, tags=tags))
        never_started = instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", run_id="c" * 36,
                                                       status=dg.DagsterRunStatus.NOT_STARTED, tags=tags))
        alive = instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", run_id="b" * 36, status=dg.DagsterRunStatus.STARTED, tags=run_tags()))
        assert sorted(fail_dead_runs(instance)) == sorted([orphan.run_id, never_started.run_id])
        assert instance.get_run_by_id(orphan.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(never_started.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED
