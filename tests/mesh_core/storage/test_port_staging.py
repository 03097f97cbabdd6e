"""Staging killed or broken part-way: the old version stays whole and no staged file outlives the next publish.

Real subprocesses SIGKILLed (at a failpoint, or while a stream is still being staged), real Delta
files, the real DuckDB store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from mesh_core import DomainStorage, ProductRef
from mesh_core.storage.failpoints import ENV as FAILPOINT

REF = ProductRef("sales", "orders")
ROWS = 50_000

# Publishes generation 1 of sales.orders as a stream of small batches into ~16 KiB files; with a
# delay, slowly (one batch per delay), so a test can kill it while files are being staged.
STAGE = """
import sys, time
import numpy as np, pyarrow as pa
from mesh_core import DomainStorage

data_dir, rows, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
schema = pa.schema([("order_id", pa.int64()), ("generation", pa.int64())])

def batches():
    for start in range(0, rows, 1000):
        yield pa.record_batch([pa.array(np.arange(start, min(start + 1000, rows))), pa.array(np.full(min(1000, rows - start), 1))],
                              schema=schema)
        time.sleep(delay)

with DomainStorage(data_dir, "sales").publishing("orders") as publisher:
    staged = publisher.stage(pa.RecordBatchReader.from_batches(schema, batches()), access="public", target_file_size=16 * 2**10)
    publisher.commit(staged, version="1.0.0", access="public", run_id="generation-1")
print("published", flush=True)
"""


def staged_garbage(storage: DomainStorage) -> list[str]:
    port = storage.port(REF)
    committed = {name for version in port.history() for name in version.files}
    return sorted(name for name in port.data_files() if name.startswith("part-") and name not in committed)


def assert_old_version_whole(storage: DomainStorage) -> None:
    current = storage.current(REF)
    frame = storage.read(REF)
    assert current.version == 0 and current.run_id == "generation-0"
    assert len(frame) == ROWS and frame["generation"].unique().tolist() == [0]


@pytest.fixture
def storage(tmp_path):
    storage = DomainStorage(tmp_path, "sales")
    storage.publish("orders", pd.DataFrame({"order_id": range(ROWS), "generation": 0}), version="1.0.0",
                    access="public", run_id="generation-0")
    return storage


def stage_in_child(storage, *, delay=0.0, failpoint=None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    if failpoint:
        env[FAILPOINT] = failpoint
    return subprocess.Popen([sys.executable, "-c", STAGE, str(storage.data_dir), str(ROWS), str(delay)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("failpoint, garbage_left", [("port:before-data-file", False), ("port:before-commit", True)])
def test_a_publish_killed_before_its_commit_leaves_the_old_version_whole(storage, failpoint, garbage_left):
    child = stage_in_child(storage, failpoint=failpoint)
    _, err = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL, err
    assert_old_version_whole(storage)
    left = staged_garbage(storage)
    print(f"killed at {failpoint}: {len(left)} staged file(s) left uncommitted")
    assert bool(left) == garbage_left and (not garbage_left or len(left) > 3)  # every part of the stream was staged
    storage.publish("orders", pd.DataFrame({"order_id": range(ROWS), "generation": 2}), version="1.0.0",
                    access="public", run_id="generation-2")
    assert staged_garbage(storage) == [] and storage.current(REF).version == 1


def test_a_publish_killed_while_its_stream_is_being_staged_leaves_the_old_version_whole(storage):
    child = stage_in_child(storage, delay=0.05)
    deadline = time.monotonic() + 60
    try:
        while len(staged_garbage(storage)) < 3 and time.monotonic() < deadline:  # some files staged, more to come
            time.sleep(0.02)
        staged = len(staged_garbage(storage))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    print(f"killed mid-stage after {staged} staged file(s)")
    assert staged >= 3 and child.returncode == -signal.SIGKILL
    assert_old_version_whole(storage)
    storage.reconcile("orders")  # what the next run does first
    assert staged_garbage(storage) == []
    assert_old_version_whole(storage)


def test_the_same_publish_left_alone_commits_every_staged_file(storage):
    child = stage_in_child(storage)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0 and out.strip() == "published", err
    current = storage.current(REF)
    assert current.version == 1 and current.rows == ROWS and len(current.files) > 3
    assert storage.read(REF)["generation"].unique().tolist() == [1] and staged_garbage(storage) == []


def test_staging_a_stream_40_times_the_file_size_holds_about_one_file_in_memory(tmp_path):
    target, budget = 4 * 2**20, 40 * 2**20  # the stream is ~160 MiB: collecting it could not stay under budget
    # A fresh process: Arrow's memory pool high-water mark and tracemalloc's peak then measure the staging alone.
    code = """
import sys, tracemalloc
import numpy as np, pyarrow as pa
from mesh_core import OutputPort, ProductRef

target, rows = int(sys.argv[2]), 2**17  # 2 MiB per batch of random (incompressible) numbers
schema = pa.schema([("a", pa.float64()), ("b", pa.int64())])
rng = np.random.default_rng(1)
batches = (pa.record_batch([pa.array(rng.normal(size=rows)), pa.array(rng.integers(0, 2**62, rows))], schema=schema)
           for _ in range(80))
port = OutputPort(ProductRef("operations", "flights"), sys.argv[1])
pool = pa.default_memory_pool()
before = pool.max_memory()
tracemalloc.start()
staged = port.stage(pa.RecordBatchReader.from_batches(schema, batches), access="public", target_file_size=target)
print(len(staged.files), staged.rows, max(staged.sizes.values()), pool.max_memory() - before, tracemalloc.get_traced_memory()[1])
"""
    child = subprocess.run([sys.executable, "-c", code, str(tmp_path / "port"), str(target)], capture_output=True, text=True,
                           timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert child.returncode == 0, child.stderr
    files, rows, largest, arrow_peak, python_peak = map(int, child.stdout.split())
    print(f"staged 80 x 2 MiB batches into {files} files of at most {largest} bytes (target {target}); peak memory: "
          f"Arrow {arrow_peak} bytes, Python {python_peak} bytes (budget {budget})")
    assert rows == 80 * 2**17 and files >= 30 and largest <= target
    assert arrow_peak + python_peak < budget


def test_on_s3_staged_files_commit_once_load_the_store_quarantine_and_scan(tmp_path, monkeypatch):
    import duckdb
    import pyarrow as pa

    from mesh_core import IntegrityError
    from tests.deploy.servers import s3_server

    with s3_server("lake") as (env, client):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        storage = DomainStorage(tmp_path, "sales")
        frame = pd.DataFrame({"order_id": range(20_000), "amount": [float(i % 13) for i in range(20_000)]})
        arrow = pa.Table.from_pandas(frame, preserve_index=False)
        with storage.publishing("orders") as publisher:
            staged = publisher.stage(arrow.to_reader(max_chunksize=1_000), access="public", target_file_size=32 * 2**10)
            assert staged.paths()[0].startswith("s3://lake/mesh/sales/ports/orders/part-")
            publication = publisher.commit(staged, version="1.0.0", access="public", run_id="run1")
            blocked = publisher.stage(pa.table({"order_id": [-1], "amount": [0.0]}), access="public")
            assert publisher.quarantine(blocked, run_id="run2") == "quarantine.orders"
            publisher.discard(blocked)
        keys = {item["Key"].rsplit("/", 1)[-1] for item in client.list_objects_v2(Bucket="lake", Prefix="mesh/")["Contents"]}
        assert set(staged.files) <= keys and not set(blocked.files) & keys
        assert len(staged.files) > 3 and publication.warehouse_synced and publication.version.rows == 20_000
        with duckdb.connect(str(storage.database_path), read_only=True) as con:
            assert con.execute("SELECT count(*), sum(order_id) FROM sales.orders").fetchone() == (20_000, sum(range(20_000)))
            assert con.execute("SELECT * FROM quarantine.orders").fetchall() == [(-1, 0.0, "run2")]
        scanned = storage.scan(REF, columns=["amount"]).to_table()
        assert scanned.column("amount").to_pylist() == frame["amount"].tolist()

        name = list(staged.files)[1]
        body = bytearray(client.get_object(Bucket="lake", Key=f"mesh/sales/ports/orders/{name}")["Body"].read())
        body[10] ^= 1
        client.put_object(Bucket="lake", Key=f"mesh/sales/ports/orders/{name}", Body=bytes(body))
        with pytest.raises(IntegrityError, match=rf"Data file s3://lake/mesh/sales/ports/orders/{name} of sales\.orders "
                                                 "version 0 is corrupt"):
            storage.scan(REF)
