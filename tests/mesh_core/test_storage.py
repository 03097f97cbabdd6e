import json

import duckdb
import pandas as pd
import pytest

from mesh_core import AccessDeniedError, DomainStorage, MeshError, ProductNotPublishedError, ProductRef
from mesh_core.storage import KEEP_SNAPSHOTS, POINTER, resolve_data_dir


def publish(storage, frame, product="orders", access="public", run_id="run00001-xyz"):
    return storage.publish(product, frame, version="1.0.0", access=access, run_id=run_id)


def table(storage, name="orders", schema=None):
    with duckdb.connect(str(storage.database_path), read_only=True) as con:
        return con.execute(f'SELECT * FROM "{schema or storage.domain}"."{name}"').df()


def test_publish_writes_the_table_and_a_snapshot_the_pointer_names(tmp_path):
    storage = DomainStorage(tmp_path, "sales")
    frame = pd.DataFrame({"order_id": [1, 2], "amount": [9.5, 3.0]})
    published = publish(storage, frame)
    pd.testing.assert_frame_equal(table(storage), frame)
    pointer = json.loads((storage.port_dir(published.ref) / POINTER).read_text())
    assert pointer["snapshot"] == published.snapshot and pointer["rows"] == 2
    assert (storage.port_dir(published.ref) / published.snapshot).exists()
    assert storage.database_path.name == "warehouse.duckdb"  # not named like its schema


def test_publish_replaces_by_column_name_not_position(tmp_path):
    storage = DomainStorage(tmp_path, "sales")
    publish(storage, pd.DataFrame({"a": [1, 2], "b": [10, 20]}))
    publish(storage, pd.DataFrame({"b": [30, 40], "a": [3, 4]}), run_id="run00002")
    reread = DomainStorage(tmp_path, "reports").read(ProductRef("sales", "orders"))
    assert reread["a"].tolist() == [3, 4] and reread["b"].tolist() == [30, 40]
    assert table(storage)[["a", "b"]].values.tolist() == [[3, 30], [4, 40]]


def test_publish_with_changed_columns_replaces_the_table_whole(tmp_path):
    storage = DomainStorage(tmp_path, "sales")
    publish(storage, pd.DataFrame({"a": [1]}))
    publish(storage, pd.DataFrame({"a": ["x"], "c": [True]}), run_id="run00002")
    assert table(storage).to_dict("records") == [{"a": "x", "c": True}]


def test_only_the_newest_snapshots_are_kept(tmp_path):
    storage = DomainStorage(tmp_path, "sales")
    for i in range(KEEP_SNAPSHOTS + 2):
        last = publish(storage, pd.DataFrame({"n": [i]}), run_id=f"run{i:05d}")
    snapshots = sorted(p.name for p in storage.port_dir(last.ref).glob("*.parquet"))
    assert len(snapshots) == KEEP_SNAPSHOTS and snapshots[-1] == last.snapshot
    assert storage.read(last.ref)["n"].tolist() == [KEEP_SNAPSHOTS + 1]


def test_reading_before_any_publish_says_what_to_run(tmp_path):
    with pytest.raises(ProductNotPublishedError, match=r"sales\.orders has no published version.*mesh materialize --domain sales"):
        DomainStorage(tmp_path, "reports").read(ProductRef("sales", "orders"))


def test_internal_products_are_readable_only_by_their_own_domain(tmp_path):
    publish(DomainStorage(tmp_path, "sales"), pd.DataFrame({"n": [1]}), access="internal")
    ref = ProductRef("sales", "orders")
    assert DomainStorage(tmp_path, "sales").read(ref)["n"].tolist() == [1]
    with pytest.raises(AccessDeniedError, match=r"Domain 'reports' may not read sales\.orders: its access is 'internal'"):
        DomainStorage(tmp_path, "reports").read(ref)


def test_quarantine_keeps_the_blocked_rows_with_their_run(tmp_path):
    storage = DomainStorage(tmp_path, "sales")
    assert storage.quarantine("orders", pd.DataFrame({"n": [-1]}), run_id="r1") == "quarantine.orders"
    assert table(storage, schema="quarantine").to_dict("records") == [{"n": -1, "_mesh_run_id": "r1"}]


def test_invalid_names_never_reach_sql_or_paths(tmp_path):
    with pytest.raises(ValueError, match="Refusing to use"):
        DomainStorage(tmp_path, 'sales"; DROP TABLE x; --')
    with pytest.raises(ValueError, match="lower snake case"):
        publish(DomainStorage(tmp_path, "sales"), pd.DataFrame({"n": [1]}), product="../escape")
    with pytest.raises(ValueError, match="Refusing to use"):
        DomainStorage(tmp_path, "sales").quarantine('x" CASCADE', pd.DataFrame({"n": [1]}), run_id="r")
    assert not (tmp_path / "sales" / "warehouse.duckdb").exists()


def test_data_dir_comes_from_the_environment_at_run_time(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert resolve_data_dir() == tmp_path / "home" / "data"
    monkeypatch.setenv("MESH_DATA_DIR", str(tmp_path / "lake"))
    assert resolve_data_dir() == tmp_path / "lake"
    assert resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.delenv("MESH_DATA_DIR")
    monkeypatch.delenv("DAGSTER_HOME")
    with pytest.raises(MeshError, match="set DAGSTER_HOME"):
        resolve_data_dir()
