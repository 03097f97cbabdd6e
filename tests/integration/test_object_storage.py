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
