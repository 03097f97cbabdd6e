"""Ports on object storage: a real S3-protocol server (moto's standalone server) on 127.0.0.1.

The producer domain publishes there and a consumer domain reads from there, with credentials
and endpoint only in the environment, as in production. tests/deploy/test_postgres.py does the same
for the whole example mesh on a PostgreSQL instance."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mesh_core import DomainStorage, IntegrityError, ProductRef
from mesh_core.storage.domain_storage import resolve_data_dir
from tests.deploy.servers import s3_server
from tests.support import FIXTURES, WORKSPACES, make_dagster_home, mesh_env

BUCKET = "lake"


@pytest.fixture(scope="module")
def s3():
    with s3_server(BUCKET) as (env, client):
        yield env, client


def test_a_producer_publishes_to_s3_and_a_consumer_in_another_domain_reads_it(s3, tmp_path, monkeypatch):
    env, client = s3
    home = make_dagster_home(tmp_path)
    run = subprocess.run([sys.executable,
                          "-m", "mesh_core.cli", "materialize", "--json", "-w", str(WORKSPACES / "source_sink.yaml")],
                         cwd=FIXTURES, env={**mesh_env(home), **env}, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads(run.stdout)["published"] == 4

    keys = [item["Key"] for item in client.list_objects_v2(Bucket=BUCKET, Prefix="mesh/")["Contents"]]
    for product in ("source/ports/readings", "sink/ports/first_seen"):
        assert any(k.startswith(f"mesh/{product}/_delta_log/") for k in keys), keys
        assert any(k.startswith(f"mesh/{product}/part-") for k in keys), keys
    assert not (home / "data" / "source" / "ports").exists()  # nothing went to local disk

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reader = DomainStorage(home / "data", "sink")
    readings = reader.read(ProductRef("source", "readings"))
    seen = reader.read(ProductRef("sink", "first_seen"))
    assert seen["generation"].tolist() == readings["generation"].unique().tolist()
    assert seen["rows"].tolist() == [len(readings)] == [1000]

    # Integrity holds on object storage too: a changed object is never read as data.
    [name] = reader.current(ProductRef("source", "readings")).files
    key = f"mesh/source/ports/readings/{name}"
    body = bytearray(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    body[100] ^= 0x01
    client.put_object(Bucket=BUCKET, Key=key, Body=bytes(body))
    with pytest.raises(IntegrityError, match=rf"Data file s3://{BUCKET}/mesh/source/ports/readings/{name} of source\.readings version 0 is corrupt"):
        reader.read(ProductRef("source", "readings"))


@pytest.mark.parametrize("producer, reader", [("polars", "sql"), ("duckdb", "polars"), ("arrow", "duckdb")])
def test_an_engine_product_on_s3_is_staged_audited_and_committed_there_and_bad_data_leaves_nothing(
        s3, instance, monkeypatch, tmp_path, producer, reader):
    """Engines read files by path: the audit of an output staged on S3 runs on a local copy, and the
    port on S3 holds only committed files afterwards, published or blocked."""
    from tests.integration.test_engine_products import GOOD, Ledger, assert_same, evaluations

    env, client = s3
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MESH_PORTS_URI", f"s3://{BUCKET}/{tmp_path.name}")  # this test's own ports
    domain = Ledger(producer, reader)
    assert domain.materialize(instance).success
    storage = DomainStorage(resolve_data_dir(), "audit")
    assert_same(storage.read(ProductRef("bank", "ledger")).sort_values("entry_id", ignore_index=True), GOOD)
    assert_same(storage.read(ProductRef("bank", "doubled")).sort_values("entry_id", ignore_index=True),
                GOOD.assign(amount=GOOD["amount"] * 2))
    prefix = f"{tmp_path.name}/bank/ports/ledger/"
    committed = {item["Key"] for item in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"] if "/part-" in item["Key"]}

    result = domain.materialize(instance, GOOD.assign(amount=[100, -5, 300]))
    assert not result.success and not evaluations(instance, result.run_id)[("ledger", "contract")].passed
    after = {item["Key"] for item in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"] if "/part-" in item["Key"]}
    assert after == committed  # the blocked output's staged objects were deleted
    assert_same(storage.read(ProductRef("bank", "ledger")).sort_values("entry_id", ignore_index=True), GOOD)
