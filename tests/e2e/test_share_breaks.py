"""Holes an attacker or a new user found in `mesh serve`, each closed: an older version published
internal read by time travel, file URLs outliving a rotated or re-created token, a damaged recipient
record, a query body nested too deep, naive timestamps the official client could not parse, and a
busy port. A real instance, ports published by `DomainStorage.publish`, a real uvicorn or `mesh serve`."""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pyarrow.parquet as pq
import pytest

from mesh_core.share.recipients import KEY, Recipients
from tests.mesh_core.share.conftest import call, make_app, running, write_workspace
from tests.support import MESH, free_port, make_dagster_home, mesh_env

DOMAINS = ["ops", "insights"]
# PROTOCOL.md, "Primitive Types": the types a shared table's schema may name.
PROTOCOL_TYPES = {"string", "long", "integer", "short", "byte", "float", "double", "boolean", "binary", "date", "timestamp"}


@pytest.fixture
def mesh(tmp_path):
    """ops.flights published internal (with a personal column), then public without it; a table
    with naive timestamps; recipients: the owner domain, another domain, an outsider."""
    import dagster as dg

    from mesh_core.instance.home import prepare_instance
    from mesh_core.storage.domain_storage import DomainStorage

    home = make_dagster_home(tmp_path)
    prepare_instance(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = DomainStorage(tmp_path / "data", "ops")
        internal = storage.publish("flights", pd.DataFrame({"flight": ["F1", "F2"], "passenger": ["ann", "bob"]}),
                                   version="1.0.0", access="internal", run_id="r1").version
        public = storage.publish("flights", pd.DataFrame({"flight": ["F1", "F2"]}), version="1.1.0", access="public",
                                 run_id="r2").version
        times = pd.DataFrame({"at": pd.to_datetime(["2026-01-01 06:30:00", "2026-01-02 23:59:59.123456"], format="ISO8601"), "n": [1, 2]})
        storage.publish("times", times, version="1.0.0", access="public", run_id="r3")
        recipients = Recipients(instance)
        tokens = {name: recipients.create(name, domains=DOMAINS)[1] for name in ("ops", "insights", "partner")}
        yield type("Mesh", (), dict(home=home, root=tmp_path, instance=instance, storage=storage, tokens=tokens,
                                    internal=internal, public=public, times=times, ports_uri=storage.ports_uri,
                                    workspace=write_workspace(tmp_path / "workspace.yaml", DOMAINS)))


def _query(endpoint, token, table="flights", body=None):
    return call(f"{endpoint}/shares/ops/schemas/ops/tables/{table}/query", token=token, method="POST",
                body=body if body is not None else {})


def test_an_older_version_published_internal_is_not_served_by_time_travel(mesh):
    """The product went public without its personal column: its internal versions stay internal."""
    with running(make_app(mesh)) as endpoint:
        assert _query(endpoint, mesh.tokens["partner"]).status == 200  # the current, public version
        at = mesh.internal.committed_at.isoformat()
        for reader in ("partner", "insights"):
            for body in ({"version": mesh.internal.version}, {"timestamp": at}):
                answer = _query(endpoint, mesh.tokens[reader], body=body)
                assert answer.status == 403, (reader, body, answer.body[:300])
                assert answer.json()["errorCode"] == "PERMISSION_DENIED" and "internal" in answer.json()["message"]
        owner = _query(endpoint, mesh.tokens["ops"], body={"version": mesh.internal.version})
        assert owner.status == 200 and owner.lines()[2]["file"]["version"] == mesh.internal.version


def test_file_urls_stop_working_when_their_token_is_rotated_or_re_created(mesh):
    recipients = Recipients(mesh.instance)
    with running(make_app(mesh)) as endpoint:
        url = _query(endpoint, mesh.tokens["partner"]).lines()[2]["file"]["url"]
        assert call(url).status == 200
        token = recipients.create("partner", domains=DOMAINS, rotate=True)[1]  # the old token leaked
        answer = call(url)
        assert answer.status == 403 and answer.json()["errorCode"] == "PERMISSION_DENIED", answer.body
        url = _query(endpoint, token).lines()[2]["file"]["url"]
        assert call(url).status == 200
        recipients.revoke("partner")
        recipients.create("partner", domains=DOMAINS)  # revoked, then a new token for the same name
        assert call(url).status == 403


def test_a_query_body_nested_too_deep_is_a_400(mesh):
    with running(make_app(mesh)) as endpoint:
        answer = _query(endpoint, mesh.tokens["partner"], body=b"[" * 30000 + b"]" * 30000)
        assert answer.status == 400 and answer.json()["errorCode"] == "INVALID_PARAMETER_VALUE", answer.body[:300]


def test_naive_timestamps_are_served_in_the_protocols_types(mesh):
    with running(make_app(mesh)) as endpoint:
        answer = _query(endpoint, mesh.tokens["partner"], table="times")
        schema = json.loads(answer.lines()[1]["metaData"]["schemaString"])
        assert {field["name"]: field["type"] for field in schema["fields"]} == {"at": "timestamp", "n": "long"}
        assert {field["type"] for field in schema["fields"]} <= PROTOCOL_TYPES
        served = pq.read_table(io.BytesIO(call(answer.lines()[2]["file"]["url"]).body)).to_pandas()
        pd.testing.assert_frame_equal(served, mesh.times, check_dtype=False)


def test_a_damaged_recipient_record_is_named_not_overwritten_and_locks_out_only_itself(mesh):
    def mesh_cli(*args):
        return subprocess.run([str(MESH), "share", "token", *args, "-w", str(mesh.workspace), "--dagster-home",
                               str(mesh.home)], capture_output=True, text=True, env=mesh_env(mesh.home), timeout=120)

    records = json.loads(mesh.instance.run_storage.get_cursor_values({KEY})[KEY])
    mesh.instance.run_storage.set_cursor_values({KEY: json.dumps({**records, "insights": "garbage"})})
    listed = mesh_cli("list")
    assert listed.returncode == 2 and "'insights'" in listed.stderr and "damaged" in listed.stderr, listed.stderr
    made = mesh_cli("create", "newcomer", "--profile", str(mesh.root / "n.share"))
    assert made.returncode == 2 and "'insights'" in made.stderr, made.stdout + made.stderr
    assert json.loads(mesh.instance.run_storage.get_cursor_values({KEY})[KEY])["insights"] == "garbage"
    with running(make_app(mesh)) as endpoint:  # the others still get in; the damaged one's token is unknown
        assert call(f"{endpoint}/shares", token=mesh.tokens["partner"]).status == 200
        answer = call(f"{endpoint}/shares", token=mesh.tokens["insights"])
        assert answer.status == 401 and answer.json()["errorCode"] == "UNAUTHENTICATED", answer.body
    fixed = mesh_cli("create", "insights", "--rotate", "--profile", str(mesh.root / "i.share"))
    assert fixed.returncode == 0, fixed.stderr
    assert [r.name for r in Recipients(mesh.instance).list()] == ["insights", "ops", "partner"]


def test_mesh_serve_on_a_busy_port_exits_2_naming_it(mesh):
    port = free_port()
    env = {**mesh_env(mesh.home), "MESH_DATA_DIR": str(mesh.root / "data")}
    command = [str(MESH), "serve", "-w", str(mesh.workspace), "--dagster-home", str(mesh.home), "--port", str(port)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert f":{port}/delta-sharing" in first.stdout.readline()
        endpoint = f"http://127.0.0.1:{port}/delta-sharing"
        assert call(f"{endpoint}/shares", token=mesh.tokens["partner"]).status == 200  # listening once it says so
        second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"127.0.0.1:{port}" in second.stderr and "--port" in second.stderr and "Serving" not in second.stdout
        first.send_signal(signal.SIGTERM)
        output = first.communicate(timeout=30)[0]
        # uvicorn shuts down, then re-raises the signal: the exit a service manager expects of SIGTERM
        assert first.returncode in (0, -signal.SIGTERM) and "Traceback" not in output, output
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)


def _peak_rss(pid: int) -> int:
    """The process's resident memory high-water mark, in bytes (Linux)."""
    status = open(f"/proc/{pid}/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_concurrent_downloads_of_a_large_file_do_not_each_hold_it_in_memory(mesh):
    """A data file larger than the server keeps in memory is verified once and streamed from disk:
    six readers at once cost the server far less than one copy of it (they cost six or more)."""
    import numpy as np

    from mesh_core.share.server import FILE_CACHE_BYTES

    frame = pd.DataFrame({"x": np.random.default_rng(7).random(FILE_CACHE_BYTES // 4 // 8 + 250_000)})
    mesh.storage.publish("large", frame, version="1.0.0", access="public", run_id="large1")
    [path] = glob.glob(str(mesh.root / "data/ops/ports/large/part-*.parquet"))
    size = os.path.getsize(path)
    assert size > FILE_CACHE_BYTES // 4  # random doubles do not compress
    port = free_port()
    env = {**mesh_env(mesh.home), "MESH_DATA_DIR": str(mesh.root / "data")}
    server = subprocess.Popen([str(MESH), "serve", "-w", str(mesh.workspace), "--dagster-home", str(mesh.home),
                               "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert "Serving" in server.stdout.readline()
        endpoint = f"http://127.0.0.1:{port}/delta-sharing"
        [line] = _query(endpoint, mesh.tokens["partner"], table="large").lines()[2:]
        url, sha256 = line["file"]["url"], line["file"]["id"]
        assert hashlib.sha256(call(url).body).hexdigest() == sha256  # the first download verifies it
        ranged = call(url, headers={"Range": f"bytes={size - 8}-"})
        assert ranged.status == 206 and ranged.body[-4:] == b"PAR1" and len(ranged.body) == 8
        before = _peak_rss(server.pid)
        with ThreadPoolExecutor(6) as pool:
            bodies = list(pool.map(lambda _: call(url).body, range(6)))
        assert all(hashlib.sha256(body).hexdigest() == sha256 for body in bodies)
        grown = _peak_rss(server.pid) - before
        assert grown < size // 2, f"the server's peak memory grew {grown:,} bytes for six downloads of {size:,}"
        with open(path, "r+b") as handle:  # damaged after it was verified: verified again, never sent
            handle.seek(size // 2)
            byte = handle.read(1)
            handle.seek(size // 2)
            handle.write(bytes([byte[0] ^ 1]))
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
        answer = call(url)
        assert answer.status == 500 and "damaged" in answer.json()["message"], answer.body[:300]
    finally:
        server.terminate()
        server.wait(20)


def test_mesh_serve_with_a_certificate_that_does_not_load_exits_2_naming_it(mesh):
    bad = mesh.root / "cert.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n")
    result = subprocess.run([str(MESH), "serve", "-w", str(mesh.workspace), "--dagster-home", str(mesh.home), "--port",
                             str(free_port()), "--tls-cert", str(bad), "--tls-key", str(bad)],
                            capture_output=True, text=True, env=mesh_env(mesh.home), timeout=120)
    assert result.returncode == 2 and "--tls-cert" in result.stderr and "Serving" not in result.stdout, result
    assert "free port" not in result.stderr  # it was said to be the port's fault
