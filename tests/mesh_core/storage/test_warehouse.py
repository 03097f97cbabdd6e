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
