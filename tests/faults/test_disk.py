"""A full disk and a read-only data folder, on real (small tmpfs) file systems.

The previous version must stay intact and readable, the error must name the path and the
real cause, and publishing must recover once space (or write access) is back."""

from __future__ import annotations

import subprocess
import uuid

import numpy as np
import pandas as pd
import pytest

from mesh_core import DomainStorage, ProductRef, StorageError

REF = ProductRef("sales", "orders")
SMALL = pd.DataFrame({"n": np.arange(100), "x": 0.5})
BIG = pd.DataFrame({"n": np.arange(1_000_000), "x": np.random.default_rng(1).random(1_000_000)})  # ~16 MB


@pytest.fixture
def tmpfs(tmp_path):
    """Mount small tmpfs file systems; unmount them afterwards."""
    mounted = []

    def mount(size: str):
        path = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
        path.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


def publish(storage, frame, run_id):
    return storage.publish("orders", frame, version="1.0.0", access="public", run_id=run_id)


def test_a_full_disk_under_the_port_keeps_the_last_version_and_recovers(tmpfs):
    disk = tmpfs("3m")
    storage = DomainStorage(disk, "sales")
    first = publish(storage, SMALL, "run1").version
    with pytest.raises(StorageError) as caught:
        publish(storage, BIG, "run2")
    message = str(caught.value)
    assert str(disk / "sales" / "ports" / "orders") in message and "No space left on device" in message, message
    assert storage.current(REF).version == first.version
    pd.testing.assert_frame_equal(storage.read(REF), SMALL)
    remount(disk, "size=64m")
    again = publish(storage, BIG, "run3")
    assert again.warehouse_synced and len(storage.read(REF)) == len(BIG)
    print(f"full port disk: refused with '{message}...'; version {first.version} intact; recovered at {again.version.version}")


def test_a_full_disk_under_the_duckdb_store_is_reported_with_its_cause_and_reconciled_later(tmpfs):
    ports, data = tmpfs("64m"), tmpfs("3m")
    storage = DomainStorage(data, "sales", ports_uri=str(ports))
    publish(storage, SMALL, "run1")
    publication = publish(storage, BIG, "run2")
    # The port commit happened, so the publish did: consumers read the new version at once.
    assert not publication.warehouse_synced and len(storage.read(REF)) == len(BIG)
    [warning] = publication.warnings
    assert str(storage.database_path) in warning and "No space left on device" in warning, warning
    assert "no transaction is active" not in warning
    remount(data, "size=64m")
    assert storage.reconcile("orders")[0].version == publication.version.version
    assert storage.warehouse.recorded_version("orders") == publication.version.version
    print(f"full DuckDB disk: warning '{warning}...'; reconciled to version {publication.version.version}")


def test_a_read_only_data_folder_refuses_with_the_cause_and_recovers(tmpfs):
    disk = tmpfs("64m")
    storage = DomainStorage(disk, "sales")
    first = publish(storage, SMALL, "run1").version
    remount(disk, "ro")
    try:
        with pytest.raises(StorageError, match=rf"{disk}.*Read-only file system"):
            publish(storage, BIG, "run2")
        pd.testing.assert_frame_equal(DomainStorage(disk, "reports").read(REF), SMALL)
    finally:
        remount(disk, "rw")
    assert publish(storage, BIG, "run3").version.version > first.version


def test_a_full_disk_under_the_sqlite_instance_says_so_with_the_path(tmpfs):
    from mesh_core.instance.home import prepare_instance
    from tests.support import FIXTURES, WORKSPACES, make_dagster_home, run_mesh

    home = make_dagster_home(tmpfs("16m"))  # the default (embedded SQLite) instance
    prepare_instance(home)  # an instance in use: its database exists, then the disk fills up
    with open(home.parent / "filler", "wb") as filler, pytest.raises(OSError, match="No space left on device"):
        while True:
            filler.write(b"\0" * (1 << 16))
            filler.flush()
    run = run_mesh("materialize", "-w", str(WORKSPACES / "source_sink.yaml"), "-d", "source", home=home, cwd=FIXTURES)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "no space left on device" in run.stderr and str(home) in run.stderr, run.stderr
    assert "DAGSTER_PG" not in run.stderr and "Traceback" not in run.stderr, run.stderr
