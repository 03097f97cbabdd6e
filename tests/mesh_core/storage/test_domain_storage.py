import os
import re
from datetime import datetime, timedelta, timezone

import duckdb
import pandas as pd
import pytest
from deltalake import DeltaTable

from mesh_core import (
    AccessDeniedError,
    DomainStorage,
    MeshError,
    ProductNotPublishedError,
    ProductRef,
    Retention,
    VersionNotFoundError,
)
from mesh_core.storage.domain_storage import resolve_data_dir, resolve_ports_uri

REF = ProductRef("sales", "orders")


def publish(storage, frame, product="orders", access="public", run_id="run00001-xyz", **kwargs):
    return storage.publish(product, frame, version="1.0.0", access=access, run_id=run_id, **kwargs)


def table(storage, name="orders", schema=None):
    with duckdb.connect(str(storage.database_path), read_only=True) as con:
        return con.execute(f'SELECT * FROM "{schema or storage.domain}"."{name}"').df()


def held_version(storage, name="orders"):
    with duckdb.connect(str(storage.database_path), read_only=True) as con:
        return con.execute("SELECT port_version FROM mesh_meta.port_versions WHERE product = ?", [name]).fetchone()[0]


def test_a_publish_is_one_delta_commit_that_records_its_run_and_the_duckdb_table_follows(tmp_path):
    storage = DomainStorage(tmp_path, "sales")
    frame = pd.DataFrame({"order_id": [1, 2], "amount": [9.5, 3.0]})
    publication = publish(storage, frame, contract_fingerprint="abc123")
    assert publication.warehouse_synced and publication.version.version == 0
    delta = DeltaTable(str(tmp_path / "sales" / "ports" / "orders"))
    assert delta.version() == 0
    [commit] = delta.history()
    assert commit["mesh.run_id"] == "run00001-xyz" and commit["mesh.product_version"] == "1.0.0"
    assert commit["mesh.contract_fingerprint"] == "abc123" and commit["mesh.rows"] == "2"
    [data_file] = publication.version.files
    assert publication.version.files[data_file] in data_file  # the checksum is in the file name too
    pd.testing.assert_frame_equal(delta.to_pandas(), frame)  # a plain Delta table for any engine
    pd.testing.assert_frame_equal(table(storage), frame)
    assert held_version(storage) == 0
    assert storage.database_path.name == "warehouse.duckdb"  # not named like its schema


@pytest.mark.parametrize("frame, problem", [
    (pd.DataFrame(index=range(3)), "it has 3 row(s) but no columns"),
    (pd.DataFrame({"order_id": [1], 0: [2]}), "column label(s) [0] are not strings"),
    (pd.DataFrame([[1, 2]], columns=["order_id", "order_id"]), "column(s) ['order_id'] appear more than once"),
    (pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("order", "id"), ("order", "amount")])),
     "its columns have 2 levels"),
])
def test_a_frame_no_reader_could_open_is_refused_before_anything_is_written(tmp_path, frame, problem):
    from mesh_core import ProductOutputError

    storage = DomainStorage(tmp_path, "sales")
    good = pd.DataFrame({"order_id": [1, 2], "amount": [9.5, 3.0]})
    publish(storage, good)
    port = tmp_path / "sales" / "ports" / "orders"
    files = sorted(port.rglob("*"))
    with pytest.raises(ProductOutputError, match=re.escape(f"sales.orders cannot be published: its output is not a table "
                                                           f"a reader can open: {problem}")):
        publish(storage, frame, run_id="run00002-bad")
    assert sorted(port.rglob("*")) == files  # nothing staged, no commit
    pd.testing.assert_frame_equal(storage.read(REF), good)
    pd.testing.assert_frame_equal(table(storage), good)


def test_versions_are_monotonic_and_every_kept_version_can_be_read(tmp_path):
    storage = DomainStorage(tmp_path, "sales")
    versions = [publish(storage, pd.DataFrame({"n": [i] * (i + 1)}), run_id=f"run{i}").version.version for i in range(4)]
    assert versions == sorted(versions) and len(set(versions)) == 4
    reader = DomainStorage(tmp_path, "reports")
    for i, version in enumerate(versions):
        assert reader.read(REF, version=version)["n"].tolist() == [i] * (i + 1)
    assert reader.read(REF)["n"].tolist() == [3] * 4
    assert [v.version for v in reader.history(REF)] == versions[::-1]
    assert [v.run_id for v in reader.history(REF)] == ["run3", "run2", "run1", "run0"]


def test_publish_replaces_by_column_name_not_position(tmp_path):
    storage = DomainStorage(tmp_path, "sales")
    publish(storage, pd.DataFrame({"a": [1, 2], "b": [10, 20]}))
    publish(storage, pd.DataFrame({"b": [30, 40], "a": [3, 4]}), run_id="run00002")
    reread = DomainStorage(tmp_path, "reports").read(REF)
    assert reread["a"].tolist() == [3, 4] and reread["b"].tolist() == [30, 40]
    assert table(storage)[["a", "b"]].values.tolist() == [[3, 30], [4, 40]]


def test_publish_with_changed_columns_replaces_the_table_whole_and_keeps_old_versions_readable(tmp_path):
    storage = DomainStorage(tmp_path, "sales")
    first = publish(storage, pd.DataFrame({"a": [1]})).version
    publish(storage, pd.DataFrame({"a": ["x"], "c": [True]}), run_id="run00002")
    assert table(storage).to_dict("records") == [{"a": "x", "c": True}]
    assert storage.read(REF, version=first.version).to_dict("records") == [{"a": 1}]


def test_timestamps_and_nulls_survive_the_round_trip(tmp_path):
    frame = pd.DataFrame({
        "at": pd.to_datetime(["2013-01-01 05:15", None]),
        "utc": pd.to_datetime(["2013-01-01 10:00", "2013-06-01 11:00"], utc=True),
        "delay": [1.5, None], "tail": ["N1", None],
    })
    storage = DomainStorage(tmp_path, "sales")
    publish(storage, frame)
    pd.testing.assert_frame_equal(storage.read(REF), frame)


def test_retention_keeps_the_newest_versions_and_those_in_use_and_says_what_was_removed(tmp_path):
    storage = DomainStorage(tmp_path, "sales", retention=Retention(keep_versions=2, keep_hours=0))
    # A long consumer run pinned version 0 while four more were published.
    versions = [publish(storage, pd.DataFrame({"n": [i]}), run_id=f"run{i}", in_use=[0]).version.version for i in range(4)]
    assert versions == [0, 1, 2, 3]
    assert storage.read(REF, version=versions[0])["n"].tolist() == [0]  # pinned by a running consumer
    assert storage.read(REF, version=versions[2])["n"].tolist() == [2]  # among the newest two
    assert [v.version for v in storage.history(REF)][:1] == [3]
    with pytest.raises(VersionNotFoundError, match=r"Version 1 of sales\.orders is no longer stored.*removed by retention"):
        storage.read(REF, version=versions[1])
    assert storage.read(REF)["n"].tolist() == [3]


def test_a_clock_stepped_back_or_forward_never_deletes_what_the_current_version_needs(tmp_path):
    now = datetime.now(timezone.utc)
    clock = {"now": now}
    storage = DomainStorage(tmp_path, "sales", retention=Retention(keep_versions=2, keep_hours=24),
                            clock=lambda: clock["now"])
    tried = []
    for step, offset in enumerate([timedelta(0), timedelta(days=-3), timedelta(days=-400), timedelta(days=30),
                                   timedelta(hours=-1), timedelta(days=365)]):
        clock["now"] = now + offset
        publish(storage, pd.DataFrame({"n": [step]}), run_id=f"run{step}")
        assert storage.read(REF)["n"].tolist() == [step]  # the current version is whole
        assert table(storage)["n"].tolist() == [step]
        tried.append(offset)
    # Stepped back, every commit looks young and is kept; far forward, only the newest two.
    assert [v.version for v in storage.history(REF)][0] == storage.current(REF).version
    print(f"clock offsets tried: {[str(o) for o in tried]}; all current versions readable")


def test_a_killed_publish_leaves_garbage_that_the_next_publish_removes(tmp_path):
    storage = DomainStorage(tmp_path, "sales")
    publish(storage, pd.DataFrame({"n": [1]}))
    port = tmp_path / "sales" / "ports" / "orders"
    orphan = port / f"part-{'0' * 16}-{'a' * 64}.parquet"
    orphan.write_bytes(b"half a file")
    staged_commit = port / "_delta_log" / "_commit_1234.json.tmp"
    staged_commit.write_text("{}")
    staged_checkpoint = port / "_delta_log" / "00000000000000000099.checkpoint.parquet#1"
    staged_checkpoint.write_text("")
    again = publish(storage, pd.DataFrame({"n": [2]}), run_id="run2")
    assert not orphan.exists() and not staged_commit.exists() and not staged_checkpoint.exists()
    assert set(again.removed_files) >= {orphan.name, "_delta_log/_commit_1234.json.tmp", f"_delta_log/{staged_checkpoint.name}"}
    assert storage.read(REF)["n"].tolist() == [2]


def test_reconcile_brings_a_lagging_duckdb_store_to_the_port(tmp_path):
    storage = DomainStorage(tmp_path, "sales")
    publish(storage, pd.DataFrame({"n": [1]}))
    # A publish that committed its port and died before the DuckDB write.
    import pyarrow as pa

    committed = storage.port(REF).publish(pa.table({"n": [7, 8]}), run_id="crashed", product_version="1.0.0",
                                          contract_fingerprint="", access="public")
    assert held_version(storage) == 0
    assert storage.reconcile("orders")[0].version == committed.version
    assert held_version(storage) == committed.version and table(storage)["n"].tolist() == [7, 8]
    assert storage.reconcile("never_published") == []


def test_reading_before_any_publish_says_what_to_run(tmp_path):
    with pytest.raises(ProductNotPublishedError, match=r"sales\.orders has no published version.*mesh materialize --domain sales"):
        DomainStorage(tmp_path, "reports").read(REF)


def test_internal_products_are_readable_only_by_their_own_domain(tmp_path):
    publish(DomainStorage(tmp_path, "sales"), pd.DataFrame({"n": [1]}), access="internal")
    assert DomainStorage(tmp_path, "sales").read(REF)["n"].tolist() == [1]
    for version in (None, 0):
        with pytest.raises(AccessDeniedError, match=r"Domain 'reports' may not read sales\.orders: \[read-public-only\] .*whose access is 'internal'"):
            DomainStorage(tmp_path, "reports").read(REF, version=version)


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
    assert not (tmp_path / "escape").exists()


def test_published_files_are_readable_by_other_users(tmp_path):
    old = os.umask(0o022)
    try:
        publish(DomainStorage(tmp_path, "sales"), pd.DataFrame({"n": [1]}))
    finally:
        os.umask(old)
    port = tmp_path / "sales" / "ports" / "orders"
    files = [p for p in port.rglob("*") if p.is_file()]
    assert files and all(p.stat().st_mode & 0o044 == 0o044 for p in files), [oct(p.stat().st_mode) for p in files]


def test_locations_come_from_the_environment_at_run_time(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert resolve_data_dir() == tmp_path / "home" / "data"
    monkeypatch.setenv("MESH_DATA_DIR", str(tmp_path / "lake"))
    assert resolve_data_dir() == tmp_path / "lake"
    assert resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert resolve_ports_uri(None, tmp_path / "lake") == str(tmp_path / "lake")
    monkeypatch.setenv("MESH_PORTS_URI", "s3://bucket/mesh/")
    assert resolve_ports_uri(None, tmp_path / "lake") == "s3://bucket/mesh"
    assert DomainStorage(tmp_path, "sales").port(REF).uri == "s3://bucket/mesh/sales/ports/orders"
    monkeypatch.delenv("MESH_DATA_DIR")
    monkeypatch.delenv("DAGSTER_HOME")
    with pytest.raises(MeshError, match="set DAGSTER_HOME"):
        resolve_data_dir()


@pytest.mark.parametrize("value, expected", [
    ("relative/ports", "{cwd}/relative/ports"),
    ("file:///srv/ports/", "/srv/ports"),
    ("s3://bucket/mesh/", "s3://bucket/mesh"),
    ("gs://bucket", "gs://bucket"),
])
def test_port_locations_are_normalised(tmp_path, monkeypatch, value, expected):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MESH_PORTS_URI", value)
    assert resolve_ports_uri(None, tmp_path) == expected.format(cwd=tmp_path)


@pytest.mark.parametrize("value, match", [
    ("ftp://x/y", "MESH_PORTS_URI='ftp://x/y' is not a location Mesh can publish to"),
    ("s3://", "MESH_PORTS_URI='s3://' names no bucket"),
    ("   ", "is not a location Mesh can publish to"),
])
def test_bad_port_locations_are_refused_with_what_works(tmp_path, monkeypatch, value, match):
    monkeypatch.setenv("MESH_PORTS_URI", value)
    with pytest.raises(MeshError, match=re.escape(match)):
        resolve_ports_uri(None, tmp_path)


def test_a_relative_data_folder_reads_and_writes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    publish(DomainStorage("data", "sales"), pd.DataFrame({"n": [1]}))
    assert DomainStorage("data", "reports").read(REF)["n"].tolist() == [1]


def test_an_older_major_has_its_own_port_beside_the_current_one_and_no_duckdb_table(tmp_path):
    storage = DomainStorage(tmp_path, "sales")
    publish(storage, pd.DataFrame({"order_id": [1], "amount": [2.0]}))
    storage.publish("orders", pd.DataFrame({"order_id": [1], "total": [2.0]}), version="1.3.0", access="public",
                    run_id="run00001-xyz", major=1)
    assert list(storage.read(REF, major=1).columns) == ["order_id", "total"]
    assert list(storage.read(REF).columns) == ["order_id", "amount"]
    assert storage.port(REF, 1).uri.endswith("/sales/ports/orders.v1")
    assert list(table(storage).columns) == ["order_id", "amount"]  # the DuckDB store holds current majors only


def test_asking_for_a_major_that_is_not_published_says_why(tmp_path):
    storage = DomainStorage(tmp_path, "sales")
    storage.publish("orders", pd.DataFrame({"order_id": [1]}), version="2.0.0", access="public", run_id="run00001-xyz")
    assert storage.port_major(REF, 2) is None and storage.port_major(REF, None) is None
    with pytest.raises(ProductNotPublishedError, match=r"sales\.orders is at major 2; it has never published major 3\."):
        storage.port_major(REF, 3)
    with pytest.raises(ProductNotPublishedError, match=r"does not publish major 1 beside major 2: .*previous_majors"):
        storage.port_major(REF, 1)


def test_a_reader_gets_only_the_columns_it_declares_and_a_missing_one_is_named(tmp_path):
    storage = DomainStorage(tmp_path, "sales")
    publish(storage, pd.DataFrame({"order_id": [1, 2], "amount": [9.5, 3.0], "note": ["a", "b"]}))
    assert list(storage.read(REF, columns=["amount", "order_id"]).columns) == ["amount", "order_id"]
    with pytest.raises(ProductNotPublishedError, match=r"sales\.orders has no column\(s\) \['colour'\] at version 0; "
                                                       r"its columns: order_id, amount, note"):
        storage.read(REF, columns=["order_id", "colour"])


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_an_internal_products_port_is_owner_only_whatever_the_umask(tmp_path, umask):
    storage = DomainStorage(tmp_path, "sales", retention=Retention(keep_versions=2, keep_hours=0))
    frame = pd.DataFrame({"order_id": [1, 2], "amount": [9.5, 3.0]})
    previous = os.umask(umask)
    try:
        for run in range(3):  # the third publish runs retention, which writes commits of its own
            publish(storage, frame, product="ledger", access="internal", run_id=f"run{run}")
            publish(storage, frame, product="orders", access="public", run_id=f"run{run}")
    finally:
        os.umask(previous)

    def modes(ref):
        root = storage.port(ref).uri
        found = {root: os.stat(root).st_mode & 0o777}
        for folder, dirs, files in os.walk(root):
            found.update({os.path.join(folder, n): os.stat(os.path.join(folder, n)).st_mode & 0o777 for n in dirs + files})
        return found

    private = modes(ProductRef("sales", "ledger"))
    assert any(path.endswith(".parquet") for path in private) and any("_delta_log" in p for p in private)
    wrong = {path: oct(mode) for path, mode in private.items()
             if mode != (0o700 if os.path.isdir(path) else 0o600)}
    assert not wrong, wrong
    # A public port keeps the umask's modes: other domains' readers may run as other users.
    assert {mode for path, mode in modes(REF).items() if os.path.isfile(path)} == {0o666 & ~umask}
    assert len(storage.history(ProductRef("sales", "ledger"))) == 3


def port_files(storage, product="orders"):
    return sorted(p.name for p in (storage.data_dir / storage.domain / "ports" / product).glob("part-*.parquet"))


def test_a_staged_stream_is_committed_once_and_the_store_is_loaded_from_the_port_files(tmp_path):
    import pyarrow as pa

    storage = DomainStorage(tmp_path, "sales")
    frame = pd.DataFrame({"order_id": range(30_000), "amount": [float(i % 97) for i in range(30_000)]})
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    with storage.publishing("orders") as publisher:
        staged = publisher.stage(arrow.to_reader(max_chunksize=1_000), access="public", target_file_size=32 * 2**10)
        publication = publisher.commit(staged, version="1.0.0", access="public", run_id="run00001-xyz")
    assert len(staged.files) > 3 and publication.version.rows == 30_000 and publication.warehouse_synced
    assert port_files(storage) == sorted(staged.files)
    pd.testing.assert_frame_equal(table(storage), frame)
    pd.testing.assert_frame_equal(storage.read(REF), frame)
    assert held_version(storage) == 0


def test_a_blocked_output_is_quarantined_from_its_staged_files_and_leaves_nothing_in_the_port(tmp_path):
    import pyarrow as pa

    storage = DomainStorage(tmp_path, "sales")
    good = pd.DataFrame({"n": [1, 2]})
    publish(storage, good)
    before = port_files(storage)
    with storage.publishing("orders") as publisher:
        staged = publisher.stage(pa.table({"n": [-1, -2, -3]}), access="public", target_file_size=1)
        assert len(staged.files) >= 1 and port_files(storage) != before
        assert publisher.quarantine(staged, run_id="r2") == "quarantine.orders"
        publisher.discard(staged)
    assert port_files(storage) == before and storage.current(REF).version == 0
    assert table(storage, schema="quarantine").to_dict("records") == [
        {"n": -1, "_mesh_run_id": "r2"}, {"n": -2, "_mesh_run_id": "r2"}, {"n": -3, "_mesh_run_id": "r2"}]
    pd.testing.assert_frame_equal(table(storage), good)


def test_leaving_the_publishing_block_by_an_exception_deletes_what_was_staged(tmp_path):
    import pyarrow as pa

    storage = DomainStorage(tmp_path, "sales")
    publish(storage, pd.DataFrame({"n": [1]}))
    before = port_files(storage)
    with pytest.raises(RuntimeError, match="audit crashed"):
        with storage.publishing("orders") as publisher:
            publisher.stage(pa.table({"n": [5, 6]}), access="public")
            assert port_files(storage) != before
            raise RuntimeError("audit crashed")
    assert port_files(storage) == before and storage.current(REF).version == 0


def test_scan_is_a_lazy_verified_read_with_the_same_rules_as_read(tmp_path):
    storage = DomainStorage(tmp_path, "sales")
    frame = pd.DataFrame({"order_id": [1, 2, 3], "amount": [9.5, 3.0, 1.0]})
    publish(storage, frame)
    publish(storage, frame.head(1), product="ledger", access="internal")
    dataset = storage.scan(REF, columns=["amount"])
    assert dataset.schema.names == ["amount"]
    assert dataset.to_table().column("amount").to_pylist() == [9.5, 3.0, 1.0]
    with pytest.raises(ProductNotPublishedError, match=r"sales\.orders has no column\(s\) \['region'\] at version 0; "
                                                       r"its columns: order_id, amount"):
        storage.scan(REF, columns=["region"])
    with pytest.raises(AccessDeniedError, match=r"Domain 'reports' may not read sales\.ledger"):
        DomainStorage(tmp_path, "reports").scan(ProductRef("sales", "ledger"))
    assert storage.scan(ProductRef("sales", "ledger")).count_rows() == 1
