"""SIGKILL a publish at random moments and at every boundary inside it.

Afterwards the port must hold a complete old or new version, the DuckDB store must converge to
it on the next run, no garbage may remain, and the next run must succeed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import dagster as dg
import duckdb
import pyarrow.fs as pafs
import pytest

from mesh_core import DomainStorage, ProductRef
from mesh_core.storage.failpoints import ENV as FAILPOINT
from tests.support import FIXTURES, WORKSPACES, make_dagster_home, mesh_env, run_mesh

READINGS = ProductRef("source", "readings")
DRIVER = FIXTURES / "drivers" / "publish_loop.py"
ROWS = 1_000_000  # a publish of ~0.5 s here, so most kills land inside one
BOUNDARIES = ["port:before-data-file", "port:before-commit", "port:after-commit", "warehouse:before-commit",
              "storage:before-retention"]


def garbage(storage: DomainStorage) -> list[str]:
    """Files in the port that no version references, and staged log commits."""
    port = storage.port(READINGS)
    committed = {name for version in port.history() for name in version.files}
    fs, root = pafs.FileSystem.from_uri(port.uri)
    found = []
    for info in fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True)):
        if info.type != pafs.FileType.File:
            continue
        relative = info.path[len(root) + 1:]
        if relative.startswith("_delta_log/"):
            if relative.endswith(".tmp") or "#" in relative:
                found.append(relative)
        elif relative not in committed:
            found.append(relative)
    return found


def assert_whole(storage: DomainStorage, rows: int) -> int:
    """The current version reads back verified, with one generation and every row; returns it."""
    current = storage.current(READINGS)
    frame = storage.read(READINGS, version=current.version)
    assert len(frame) == rows, f"version {current.version} has {len(frame)} rows"
    assert frame["generation"].nunique() == 1
    return int(frame["generation"].iloc[0])


def assert_store_matches_port(storage: DomainStorage) -> None:
    current = storage.current(READINGS)
    with duckdb.connect(str(storage.database_path), read_only=True) as con:
        held = con.execute("SELECT port_version FROM mesh_meta.port_versions WHERE product = 'readings'").fetchone()[0]
        generations = con.execute("SELECT DISTINCT generation FROM source.readings").fetchall()
    assert held == current.version
    assert [g for (g,) in generations] == storage.read(READINGS)["generation"].unique().tolist()


def test_sigkill_at_20_random_moments_of_a_publish_leaves_a_whole_version(tmp_path):
    data_dir = tmp_path / "data"
    storage = DomainStorage(data_dir, "source")
    rng = random.Random(5)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FIXTURES.parent.parent), *sys.path])}

    # One uninterrupted run to learn how long a publish takes here.
    probe = subprocess.Popen([sys.executable, str(DRIVER), str(data_dir), str(ROWS)], stdout=subprocess.PIPE, text=True, env=env)
    assert probe.stdout.readline().strip() == "ready"
    started = time.monotonic()
    for _ in range(3):
        probe.stdout.readline()
    publish_seconds = (time.monotonic() - started) / 3
    probe.kill()
    probe.wait()

    outcomes: Counter[str] = Counter()
    for trial in range(20):
        before = storage.current(READINGS).version
        child = subprocess.Popen([sys.executable, str(DRIVER), str(data_dir), str(ROWS)], stdout=subprocess.PIPE, text=True, env=env)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, 2.5 * publish_seconds))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        generation = assert_whole(storage, ROWS)
        assert storage.current(READINGS).run_id == f"generation-{generation}"
        outcomes["new version" if storage.current(READINGS).version != before else "old version"] += 1
        left = garbage(storage)
        outcomes["kills that left garbage"] += bool(left)
        storage.reconcile("readings")  # what the next run does first
        assert garbage(storage) == []
        assert_store_matches_port(storage)

    after = subprocess.run([sys.executable, "-c", (
        "import sys, numpy as np, pandas as pd; from mesh_core import DomainStorage;"
        "s = DomainStorage(sys.argv[1], 'source');"
        f"s.publish('readings', pd.DataFrame({{'reading_id': np.arange({ROWS}), 'generation': 0, 'value': 0.5}}),"
        "version='1.0.0', access='public', run_id='generation-0')"), str(data_dir)], env=env, capture_output=True, text=True)
    assert after.returncode == 0, after.stderr
    assert assert_whole(storage, ROWS) == 0 and garbage(storage) == []
    assert_store_matches_port(storage)
    print(f"20 SIGKILLs over ~{2.5 * publish_seconds:.2f} s windows (publish ~{publish_seconds:.2f} s): {dict(outcomes)}; "
          "every time the port was whole and the store converged")


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_sigkill_at_each_boundary_of_a_real_domain_publish(tmp_path, monkeypatch, boundary):
    home = make_dagster_home(tmp_path)
    workspace = str(WORKSPACES / "source_sink.yaml")
    first = run_mesh("materialize", "-w", workspace, "-d", "source", home=home, cwd=FIXTURES)
    assert first.returncode == 0, first.stdout + first.stderr
    storage = DomainStorage(home / "data", "source")
    old = storage.current(READINGS)

    env = {**mesh_env(home), FAILPOINT: boundary}
    killed = subprocess.run([sys.executable, "-m", "mesh_core.cli", "materialize", "-w", workspace, "-d", "source"],
                            cwd=FIXTURES, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    now = storage.current(READINGS)
    committed = now.version != old.version
    assert committed == (boundary not in ("port:before-data-file", "port:before-commit")), boundary
    assert_whole(storage, 1000)
    left = garbage(storage)
    assert bool(left) == (boundary == "port:before-commit"), left  # a data file nobody committed

    again = run_mesh("materialize", "-w", workspace, home=home, cwd=FIXTURES)
    assert again.returncode == 0, again.stdout + again.stderr
    assert garbage(storage) == []
    assert_store_matches_port(storage)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"mesh/domain": "source"}))
        statuses = Counter(run.status for run in runs)
        # The killed run no longer claims to be running.
        assert statuses == {dg.DagsterRunStatus.SUCCESS: 2, dg.DagsterRunStatus.FAILURE: 1}, statuses
        recorded = [
            record.asset_materialization.metadata["mesh/port_version"].value
            for record in instance.fetch_materializations(READINGS.asset_key, limit=10).records
        ]
    if committed:
        # The version the killed run committed is published: Dagster has a record of it.
        assert now.version in recorded, (now.version, recorded)
    print(f"killed at {boundary}: port {'new' if committed else 'old'} version {now.version}, whole, "
          f"{len(left)} uncommitted file(s) left and then removed; "
          f"next run reconciled the store and recorded versions {sorted(recorded)}")
