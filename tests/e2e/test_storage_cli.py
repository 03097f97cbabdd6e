"""`mesh read`, `mesh history` and `mesh repair`, and a corrupt port met by a consumer, through the CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from mesh_core import DomainStorage, ProductRef, StorageError
from tests.support import FIXTURES, WORKSPACES, make_dagster_home, run_mesh

WORKSPACE = str(WORKSPACES / "source_sink.yaml")
READINGS = ProductRef("source", "readings")


def mesh(*args, home):
    return run_mesh(*args, "-w", WORKSPACE, home=home, cwd=FIXTURES)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A home where source.readings was published twice (versions 0 and 1)."""
    home = make_dagster_home(tmp_path_factory.mktemp("published"))
    for _ in range(2):
        run = mesh("materialize", "-d", "source", home=home)
        assert run.returncode == 0, run.stdout + run.stderr
    return home


@pytest.fixture
def home(published, tmp_path):
    """A private copy, for tests that break things."""
    return Path(shutil.copytree(published, tmp_path / "home"))


def test_history_lists_versions_and_read_time_travels(published):
    home = published
    history = mesh("history", "source.readings", "--json", home=home)
    assert history.returncode == 0, history.stderr
    versions = json.loads(history.stdout)
    assert [v["version"] for v in versions] == [1, 0] and {v["rows"] for v in versions} == {1000}
    assert all(v["contract_fingerprint"] and v["run_id"] for v in versions)
    table = mesh("history", "source.readings", home=home)
    assert table.returncode == 0 and table.stdout.splitlines()[1].split()[0] == "1"

    storage = DomainStorage(home / "data", "source")
    for version in (0, 1):
        read = mesh("read", "source.readings", "--version", str(version), "--limit", "3", "--json", home=home)
        assert read.returncode == 0, read.stderr
        data = json.loads(read.stdout)
        assert data["version"] == version and data["rows"] == 1000 and len(data["records"]) == 3
        assert data["records"][0]["generation"] == int(storage.read(READINGS, version=version)["generation"].iloc[0])
    plain = mesh("read", "source.readings", "--limit", "2", home=home)
    assert plain.returncode == 0 and "source.readings version 1: 1,000 rows, showing 2" in plain.stdout


@pytest.mark.parametrize("args, expected", [
    (("read", "source.readings", "--version", "7"), "source.readings has no published version 7"),
    (("read", "source.readings", "--version", "-1"), "'-1' is not a version: versions are whole numbers >= 0"),
    (("read", "source.nothing"), "source.nothing has no published version yet"),
    (("history", "not-a-ref"), "Invalid product reference 'not-a-ref'"),
    (("read", "source.readings", "--limit", "-1"), "--limit must be 0 (all rows) or more"),
    (("history", "source.readings", "--dagster-home", "/nonexistent/typo"), "DAGSTER_HOME /nonexistent/typo does not exist"),
])
def test_bad_reads_exit_2_with_the_reason(published, args, expected):
    run = mesh(*args, home=published)
    assert run.returncode == 2 and expected in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert not Path("/nonexistent/typo").exists()


def test_a_bad_ports_uri_is_refused_before_anything_runs(published):
    env_run = run_mesh("materialize", "-w", WORKSPACE, home=published, cwd=FIXTURES,
                       env_extra={"MESH_PORTS_URI": "ftp://example/ports"})
    assert env_run.returncode == 2 and "MESH_PORTS_URI='ftp://example/ports' is not a location" in env_run.stderr


def test_history_marks_the_versions_retention_removed(home):
    from mesh_core import Retention

    storage = DomainStorage(home / "data", "source", retention=Retention(keep_versions=2, keep_hours=0))
    storage.publish("readings", storage.read(READINGS), version="1.0.0", access="public", run_id="manual")
    versions = json.loads(mesh("history", "source.readings", "--json", home=home).stdout)
    assert [(v["version"], v["stored"]) for v in versions] == [(2, True), (1, True), (0, False)]
    assert "no" in mesh("history", "source.readings", home=home).stdout.splitlines()[-1].split()


def test_a_corrupt_data_file_fails_the_consumer_every_time_naming_product_version_and_file(home):
    storage = DomainStorage(home / "data", "source")
    current = storage.current(READINGS)
    [name] = current.files
    path = home / "data" / "source" / "ports" / "readings" / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    for _ in range(2):
        run = mesh("materialize", "-d", "sink", home=home)
        assert run.returncode == 1
        assert f"{path} of source.readings version {current.version} is corrupt" in run.stdout, run.stdout
        assert "ok      sink" not in run.stdout


def test_repair_rebuilds_a_corrupt_duckdb_store_from_the_ports(home):
    storage = DomainStorage(home / "data", "source")
    storage.database_path.write_bytes(b"not a database" * 100)
    broken = mesh("materialize", "-d", "source", home=home)  # the port publish still works
    assert broken.returncode == 0, broken.stdout + broken.stderr
    # ...and the operator is told the store lags, where, and how it heals.
    assert "note: The DuckDB store was not updated to version 2" in broken.stdout, broken.stdout
    assert f"{storage.database_path}" in broken.stdout and "mesh repair --domain source" in broken.stdout
    repaired = mesh("repair", "--json", home=home)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    results = json.loads(repaired.stdout)
    assert any("moved the damaged DuckDB store" in r["message"] for r in results)
    current = storage.current(READINGS).version
    assert {"domain": "source", "product": "source.readings", "ok": True,
            "message": f"port and DuckDB store at version {current}"} in results
    assert storage.warehouse.recorded_version("readings") == current
    assert list(storage.database_path.parent.glob("warehouse.duckdb.broken-*"))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:20_000])  # a copy cut short, e.g. by a full disk or a killed rsync


def _overwrite(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[8192:11192] = b"\xab" * 3000  # bytes flipped inside a block: DuckDB's checksum catches it
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _overwrite], ids=["truncated", "overwritten"])
def test_repair_recovers_a_truncated_or_overwritten_duckdb_store(home, damage):
    storage = DomainStorage(home / "data", "source")
    damage(storage.database_path)
    with pytest.raises(StorageError) as caught:  # what a reader of the store meets: told to run repair
        storage.warehouse.recorded_version("readings")
    assert "mesh repair --domain source" in str(caught.value) and "close the other program" not in str(caught.value)
    repaired = mesh("repair", "--domain", "source", "--json", home=home)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    results = json.loads(repaired.stdout)
    [moved] = [r for r in results if r["product"] is None]
    assert moved["ok"] and "moved the damaged DuckDB store" in moved["message"], results
    current = storage.current(READINGS).version
    assert storage.warehouse.recorded_version("readings") == current
    assert storage.warehouse.damage() is None
    assert len(list(storage.database_path.parent.glob("warehouse.duckdb.broken-*"))) == 1


def _cut_mid_action(lines: list[str]) -> list[str]:
    return lines[:-1] + [lines[-1][: len(lines[-1]) // 2]]  # the commitInfo line whole, the last action cut off


def _garbage(lines: list[str]) -> list[str]:
    return ["\x00\xff garbage \x13" * 20]


def _invalid_action(lines: list[str]) -> list[str]:
    return ['{"add": {"path": 5}}\n' if line.startswith('{"add"') else line for line in lines]  # JSON, but not Delta


@pytest.mark.parametrize("damage", [_cut_mid_action, _garbage, _invalid_action], ids=["truncated", "garbage", "not-delta"])
def test_a_damaged_delta_commit_is_named_with_its_version_and_no_rust_backtrace(home, damage):
    storage = DomainStorage(home / "data", "source")
    version = storage.current(READINGS).version
    commit = home / "data" / "source" / "ports" / "readings" / "_delta_log" / f"{version:020d}.json"
    commit.write_text("".join(damage(commit.read_text().splitlines(True))))
    rust = {"RUST_BACKTRACE": "1", "RUST_LIB_BACKTRACE": "1"}
    read = run_mesh("read", "source.readings", "--version", str(version), home=home, cwd=FIXTURES, env_extra=rust)
    consumer = run_mesh("materialize", "-w", WORKSPACE, "-d", "sink", home=home, cwd=FIXTURES, env_extra=rust)
    for run in (read, consumer):
        output = run.stdout + run.stderr
        assert run.returncode != 0, output
        assert str(commit) in output and f"version {version}" in output, output
        assert not any(frame in output for frame in ("<unknown>", "pthread", "backtrace", "Traceback")), output


def _commit_an_empty_schema(port) -> None:
    """What a product returning rows but no columns committed before publishes refused it: a version
    whose schema is empty, which no Delta reader can scan. Committed with deltalake itself."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from deltalake import CommitProperties, DeltaTable, Schema
    from deltalake.transaction import AddAction

    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({}), sink)
    data = sink.getvalue()
    name = f"part-{'0' * 16}-{hashlib.sha256(data).hexdigest()}.parquet"
    (Path(port.uri) / name).write_bytes(data.to_pybytes())
    metadata = {"mesh.run_id": "an-old-bad-run", "mesh.product_version": "0.1.0", "mesh.access": "public",
                "mesh.rows": "3", "mesh.columns": "[]", "mesh.files": json.dumps({name: name[22:86]})}
    try:  # delta-rs commits, then fails to load what it committed
        DeltaTable(port.uri).create_write_transaction([AddAction(name, data.size, {}, 0, True, None)], "overwrite",
                                                      Schema([]), commit_properties=CommitProperties(custom_metadata=metadata))
    except Exception:
        pass


def _corrupt_the_data_file(port) -> None:
    [name] = port.latest().files
    path = Path(port.uri) / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_commit_an_empty_schema, _corrupt_the_data_file], ids=["empty-schema", "corrupt-file"])
def test_repair_sets_an_unreadable_current_version_aside_and_rolls_the_port_back(home, damage):
    storage = DomainStorage(home / "data", "source")
    port = storage.port(READINGS)
    good = storage.current(READINGS)
    damage(port)
    bad = port.latest()
    assert bad.version > good.version or bad.run_id == good.run_id
    with pytest.raises(StorageError):
        storage.read(READINGS, version=bad.version)

    repaired = mesh("repair", "--domain", "source", "--json", home=home)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    [moved] = [r for r in json.loads(repaired.stdout) if "set aside" in r["message"]]
    [folder] = (Path(port.uri) / "_mesh_set_aside").iterdir()
    assert f"version(s) {bad.version} in {folder}" in moved["message"], moved
    assert f"back at version {good.version - (bad.run_id == good.run_id)}" in moved["message"], moved
    # Kept, not deleted: its commit, its data file and why.
    assert (folder / "_delta_log" / f"{bad.version:020d}.json").exists() and set(bad.files) <= {p.name for p in folder.iterdir()}
    assert json.loads((folder / "set_aside.json").read_text())["set_aside"] == [bad.version]
    restored = storage.current(READINGS)
    assert restored.version < bad.version and len(storage.read(READINGS)) == restored.rows
    # The consumer reads the restored version, and the producer publishes again on top of it.
    consumer = mesh("materialize", "-d", "sink", home=home)
    assert consumer.returncode == 0, consumer.stdout + consumer.stderr
    producer = mesh("materialize", "-d", "source", home=home)
    assert producer.returncode == 0, producer.stdout + producer.stderr
    assert storage.current(READINGS).version > restored.version and (folder / "set_aside.json").exists()


def test_a_storage_failure_in_a_run_shows_meshs_message_not_the_library_error(published):
    run = run_mesh("materialize", "-w", WORKSPACE, "-d", "source", home=published, cwd=FIXTURES,
                   env_extra={"MESH_PORTS_URI": "/dev/null/ports"})
    assert run.returncode == 1
    assert "FAILED  source.readings" in run.stdout
    assert "Could not write /dev/null/ports/source/ports/readings/part-" in run.stdout, run.stdout
    assert "for source.readings:" in run.stdout
