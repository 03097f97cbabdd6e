"""A read-through port root: a sandbox reads the real mesh's ports and can never write them."""

import hashlib
import os
from pathlib import Path

import pandas as pd
import pytest

from mesh_core import AccessDeniedError, DomainStorage, MeshError, ProductRef
from mesh_core.storage.domain_storage import READ_THROUGH_ENV

REF = ProductRef("sales", "orders")


def files(root: Path) -> dict[str, str]:
    """Every file under `root` with its SHA-256 and mode: what a write would change."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() + oct(p.stat().st_mode)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def real(tmp_path):
    storage = DomainStorage(tmp_path / "real", "sales")
    storage.publish("orders", pd.DataFrame({"order_id": [1, 2], "amount": [9.5, 3.0]}), version="1.0.0",
                    access="internal", run_id="run00001-real")
    return storage


def test_a_product_the_sandbox_lacks_is_read_through_at_its_real_version(tmp_path, real):
    sandbox = DomainStorage(tmp_path / "sandbox", "sales", read_through=real.ports_uri)
    assert sandbox.reading_port(REF).read_only and sandbox.reading_port(REF).uri.startswith(real.ports_uri)
    assert sandbox.current(REF).version == real.current(REF).version
    assert sandbox.read(REF)["order_id"].tolist() == [1, 2]
    # Once the sandbox publishes its own version, reads go to it, and the real port is untouched.
    before = files(tmp_path / "real")
    sandbox.publish("orders", pd.DataFrame({"order_id": [7], "amount": [1.0]}), version="1.0.0", access="internal",
                    run_id="run00002-sandbox")
    assert not sandbox.reading_port(REF).read_only
    assert sandbox.read(REF)["order_id"].tolist() == [7]
    assert real.read(REF)["order_id"].tolist() == [1, 2]
    assert files(tmp_path / "real") == before


def test_every_write_to_a_read_through_port_is_refused_and_changes_nothing(tmp_path, real):
    port = DomainStorage(tmp_path / "sandbox", "sales", read_through=real.ports_uri).reading_port(REF)
    before = files(tmp_path / "real")
    history = port.history()
    writes = {
        "publish": lambda: port.publish(pd.DataFrame({"order_id": [3]}).pipe(__import__("pyarrow").Table.from_pandas),
                                        run_id="r", product_version="1.0.0", contract_fingerprint="", access="public"),
        "apply retention to": lambda: port.vacuum([]),
        "set aside versions of": port.set_aside_unreadable,
        "change the file modes of": port.keep_private,
        "clean up": lambda: port.remove_uncommitted(history),
    }
    for action, write in writes.items():
        with pytest.raises(AccessDeniedError, match=rf"Cannot {action} sales.orders at .*read-through port \(read-only\)"):
            write()
    assert files(tmp_path / "real") == before
    assert [v.version for v in port.history()] == [v.version for v in history]


def test_the_read_through_root_comes_from_the_environment_and_is_never_the_root_written(tmp_path, real, monkeypatch):
    monkeypatch.setenv(READ_THROUGH_ENV, real.ports_uri)
    sandbox = DomainStorage(tmp_path / "sandbox", "sales")
    assert sandbox.read_through == real.ports_uri and sandbox.reading_port(REF).read_only
    with pytest.raises(MeshError, match="is the port root this storage writes"):
        DomainStorage(tmp_path / "real", "sales")
    monkeypatch.delenv(READ_THROUGH_ENV)
    assert DomainStorage(tmp_path / "sandbox", "sales").read_through is None
