"""A consumer run while its producer republishes, with Dagster's multiprocess executor.

Every step of one consumer run must read the same version of the producer's product, and the
consumer's materializations must record which."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

import dagster as dg
import pytest

from mesh_core import DomainStorage, ProductRef
from tests.support import FIXTURES, WORKSPACES, make_dagster_home, mesh_env, run_dagster, run_mesh

READINGS = ProductRef("source", "readings")
CONSUMER_RUNS = 3


@pytest.fixture
def home(tmp_path):
    home = make_dagster_home(tmp_path)
    first = run_mesh("materialize", "-w", str(WORKSPACES / "source_sink.yaml"), home=home, cwd=FIXTURES)
    assert first.returncode == 0, first.stdout + first.stderr
    return home


def test_every_step_of_a_consumer_run_reads_one_version_while_the_producer_republishes(home, tmp_path, monkeypatch):
    stop = tmp_path / "stop"
    env = {**mesh_env(home), "MESH_TEST_ROWS": "300000", "PYTHONPATH": str(FIXTURES)}
    out, err = tmp_path / "producer.out", tmp_path / "producer.err"
    with out.open("w") as stdout, err.open("w") as stderr:  # files, not pipes: Dagster logs a lot
        producer = subprocess.Popen([sys.executable, str(FIXTURES / "drivers" / "republish.py"), str(stop), "300"],
                                    cwd=FIXTURES, env=env, stdout=stdout, stderr=stderr)
    try:
        while not out.read_text() and producer.poll() is None:  # wait for its first publish
            time.sleep(0.2)
        assert out.read_text(), err.read_text()[-3000:]
        consumer_runs = []
        for _ in range(CONSUMER_RUNS):
            # The real dagster CLI: multiprocess executor, one process per step.
            run = run_dagster("asset", "materialize", "-m", "fixture_domains.sink", "--select", 'key:"sink/*"',
                              home=home, cwd=FIXTURES)
            assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
            consumer_runs.append(run)
    finally:
        stop.touch()
        producer.wait(timeout=120)
    assert producer.returncode == 0, err.read_text()[-3000:]

    monkeypatch.setenv("DAGSTER_HOME", str(home))
    storage = DomainStorage(home / "data", "sink")
    report = []
    with dg.DagsterInstance.get() as instance:
        sink_runs = [r for r in instance.get_runs()  # the dagster CLI's runs, not the first `mesh materialize`
                     if "mesh/launched_by" not in r.tags and {k.path[0] for k in r.asset_selection or ()} == {"sink"}]
        assert len(sink_runs) == CONSUMER_RUNS
        for run in sink_runs:
            records = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
            assert len(records) == 3
            pinned = {r.asset_materialization.metadata["mesh/input_versions"].value["source.readings"] for r in records}
            seen = {
                int(storage.read(ProductRef.from_asset_key(r.asset_key), version=r.asset_materialization.metadata["mesh/port_version"].value)["generation"].iloc[0])
                for r in records
            }
            assert len(pinned) == 1 and len(seen) == 1, (pinned, seen)
            [version] = pinned
            # The recorded provenance names the version whose data the steps really read.
            assert seen == set(storage.read(READINGS, version=version)["generation"].unique())
            loaded = [
                r.event_log_entry.dagster_event.event_specific_data.metadata["mesh/port_version"].value
                for r in instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.LOADED_INPUT).records
            ]
            assert loaded == [version] * 3
            start, end = run_window(instance, run.run_id)
            republished = Counter(
                start < rec.timestamp < end
                for rec in instance.fetch_materializations(READINGS.asset_key, limit=1000).records
            )[True]
            report.append((run.run_id[:8], version, republished))
    # The race was real: the producer published new versions while consumer runs were going.
    assert sum(n for _, _, n in report) >= CONSUMER_RUNS, report
    print(f"{CONSUMER_RUNS} multiprocess consumer runs (run, pinned version, producer publishes during it): {report}")


def run_window(instance, run_id):
    record = instance.get_run_record_by_id(run_id)
    return record.start_time, record.end_time
