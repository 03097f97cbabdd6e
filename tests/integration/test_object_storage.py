"""Ports on object storage: a real S3-protocol server (moto's standalone server) on 127.0.0.1.

The producer domain publishes there and a consumer domain reads from there, with credentials
and endpoint only in the environment, as in production."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import boto3
import pytest

from mesh_core import DomainStorage, IntegrityError, ProductRef
from tests.support import FIXTURES, WORKSPACES, free_port, make_dagster_home, mesh_env

BUCKET = "lake"


@pytest.fixture(scope="module")
def s3():
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("moto's S3 server did not start")
            time.sleep(0.2)
    env = {"AWS_ACCESS_KEY_ID": "mesh-test", "AWS_SECRET_ACCESS_KEY": "mesh-test", "AWS_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "MESH_PORTS_URI": f"s3://{BUCKET}/mesh"}
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="mesh-test", aws_secret_access_key="mesh-test")
    client.create_bucket(Bucket=BUCKET)
    yield env, client
    server.terminate()
    server.wait(timeout=30)


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
