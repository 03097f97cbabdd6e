import os
import subprocess
import sys
import time

import pyarrow as pa
import pytest

from mesh_core import StorageError
from mesh_core.storage import warehouse as warehouse_module
from mesh_core.storage.warehouse import Warehouse

TABLE = pa.table({"n": [1, 2, 3]})


def test_a_corrupt_store_fails_at_once_with_its_path_the_cause_and_the_repair(tmp_path):
    store = Warehouse(tmp_path / "warehouse.duckdb")
    store.path.write_bytes(b"\x00garbage" * 1000)
    started = time.monotonic()
    with pytest.raises(StorageError) as caught:
        store.replace("sales", "orders", TABLE, port_version=0)
    message = str(caught.value)
    assert str(store.path) in message and "not a valid DuckDB database file" in message
    assert "mesh repair --domain" in message
    # Not the ~110 s backoff that dagster-duckdb applies to every IOException.
    assert time.monotonic() - started < 10
    assert store.damage() is not None


def test_a_healthy_store_records_the_port_version_each_table_holds(tmp_path):
    store = Warehouse(tmp_path / "warehouse.duckdb")
    assert store.recorded_version("orders") is None
    store.replace("sales", "orders", TABLE, port_version=4)
    store.replace("quarantine", "orders", TABLE)  # quarantine holds no port version
    assert store.recorded_version("orders") == 4
    assert store.damage() is None


def test_another_program_holding_the_file_is_waited_for_briefly_then_named(tmp_path, monkeypatch):
    monkeypatch.setattr(warehouse_module, "FOREIGN_LOCK_SECONDS", 1.0)
    store = Warehouse(tmp_path / "warehouse.duckdb")
    store.replace("sales", "orders", TABLE, port_version=0)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('open', flush=True); time.sleep(60)",
         str(store.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StorageError, match=r"close the other program that has the file open"):
            store.replace("sales", "orders", TABLE, port_version=1)
    finally:
        holder.kill()
        holder.wait()
    store.replace("sales", "orders", TABLE, port_version=1)
    assert store.recorded_version("orders") == 1


def test_a_table_is_loaded_from_local_parquet_files_or_a_stream_without_a_pandas_copy(tmp_path):
    import duckdb
    import pyarrow.parquet as pq

    parts = []
    for number, chunk in enumerate([pa.table({"n": [1, 2]}), pa.table({"n": [3]})]):
        parts.append(str(tmp_path / f"it's part {number}.parquet"))  # a quote in the path reaches no SQL text
        pq.write_table(chunk, parts[-1])
    store = Warehouse(tmp_path / "warehouse.duckdb")
    store.replace("sales", "orders", parts, port_version=2)
    store.replace("quarantine", "orders", pa.table({"n": [7]}).to_reader(), constants={"_mesh_run_id": "r1"})
    with duckdb.connect(str(store.path), read_only=True) as con:
        assert con.execute("SELECT n FROM sales.orders ORDER BY n").fetchall() == [(1,), (2,), (3,)]
        assert con.execute("SELECT * FROM quarantine.orders").fetchall() == [(7, "r1")]
    assert store.recorded_version("orders") == 2


def test_a_missing_parquet_file_fails_the_load_whole_and_names_the_store(tmp_path):
    store = Warehouse(tmp_path / "warehouse.duckdb")
    store.replace("sales", "orders", TABLE, port_version=0)
    with pytest.raises(StorageError, match=rf"Could not replace sales\.orders in the DuckDB store {store.path}: .*gone\.parquet"):
        store.replace("sales", "orders", [str(tmp_path / "gone.parquet")], port_version=1)
    assert store.recorded_version("orders") == 0  # one transaction: the old table and its version stay


LOAD_PROBE = """
import sys
from pathlib import Path
from mesh_core.storage.warehouse import Warehouse
store = Warehouse(Path(sys.argv[1]) / "warehouse.duckdb")
store.replace("shop", "big", sys.argv[2:], port_version=1)
# VmHWM: this process's own peak (ru_maxrss would start from the forking test worker's)
print(round(int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024))
"""


def test_the_store_loads_a_table_within_the_engine_memory_limit(tmp_path):
    """3M rows (~190 MB) loaded under a 128 MB limit and under an 8 GB one: DuckDB spills instead of
    holding the table, so the limited load peaks well below the other (~400 against ~660 MB here)."""
    import numpy as np
    import pyarrow.parquet as pq

    from mesh_core.storage.duckdb_memory import MEMORY_LIMIT_ENV

    rng = np.random.default_rng(0)
    parts = []
    for number in range(3):
        parts.append(str(tmp_path / f"part-{number}.parquet"))
        pq.write_table(pa.table({f"v{i}": rng.random(1_000_000) for i in range(8)}), parts[-1])
    peaks = {}
    for limit in ("128MB", "8GB"):
        (tmp_path / limit).mkdir()
        probe = subprocess.run([sys.executable, "-c", LOAD_PROBE, str(tmp_path / limit), *parts], capture_output=True,
                               text=True, timeout=300, env={**os.environ, MEMORY_LIMIT_ENV: limit})
        assert probe.returncode == 0, probe.stderr[-2000:]
        peaks[limit] = int(probe.stdout.split()[-1])
    print(f"store load of 3M rows (~190 MB): peak {peaks} MB")
    assert peaks["128MB"] < peaks["8GB"] - 100, peaks


def test_a_memory_limit_duckdb_cannot_read_names_the_setting_and_loses_nothing(tmp_path, monkeypatch):
    from mesh_core.errors import MeshError
    from mesh_core.storage.duckdb_memory import MEMORY_LIMIT_ENV

    store = Warehouse(tmp_path / "warehouse.duckdb")
    store.replace("sales", "orders", TABLE, port_version=0)
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "lots")
    with pytest.raises(MeshError, match=rf"cannot start DuckDB with memory limit 'lots' \(\${MEMORY_LIMIT_ENV}\).*e\.g\. {MEMORY_LIMIT_ENV}=4GB"):
        store.replace("sales", "orders", pa.table({"n": [9]}), port_version=1)
    assert store.recorded_version("orders") == 0
