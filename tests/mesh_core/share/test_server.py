"""The sharing server over real HTTP: a real uvicorn serving the app (and `mesh serve` itself),
real ports, real recipients. Expectations come from the published frames and the read rules."""

from __future__ import annotations

import http.client
import io
import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pandas as pd
import pyarrow.parquet as pq
import pytest

from mesh_core.declare.ref import ProductRef
from mesh_core.instance.usage import reads
from mesh_core.share.recipients import Recipients
from mesh_core.share.signing import UrlSigner, url_secret
from mesh_core.share.tables import ShareCatalog
from tests.mesh_core.share.conftest import DOMAINS, build_mesh, call, make_app, running, write_workspace
from tests.support import MESH, free_port, make_dagster_home, mesh_env

TABLE = "/shares/ops/schemas/ops/tables"


def _query(endpoint, token, table="flights", body=None, share="ops", **kwargs):
    return call(f"{endpoint}/shares/{share}/schemas/{share}/tables/{table}/query", token=token, method="POST",
                body=body if body is not None else {}, **kwargs)


def _rows(answer) -> pd.DataFrame:
    frames = []
    for line in answer.lines()[2:]:
        served = call(line["file"]["url"])
        assert served.status == 200, served.body
        frames.append(pq.read_table(io.BytesIO(served.body)).to_pandas())
    return pd.concat(frames, ignore_index=True)


# -- who gets in, and what they see --

def test_no_unknown_revoked_or_expired_token_gets_in(mesh, endpoint):
    recipients = Recipients(mesh.instance)
    _, revoked = recipients.create("gone", domains=DOMAINS)
    assert call(f"{endpoint}/shares", token=revoked).status == 200
    recipients.revoke("gone")
    _, expired = recipients.create("late", domains=DOMAINS, expires_days=1,
                                   now=datetime.now(timezone.utc) - timedelta(days=2))
    for token, why in [(None, "No bearer token"), ("not-a-token", "Unknown bearer token"),
                       (revoked, "was revoked"), (expired, "was expired")]:
        for path, method in [("/shares", "GET"), (f"{TABLE}/flights/query", "POST"), (f"{TABLE}/flights/metadata", "GET")]:
            answer = call(endpoint + path, token=token, method=method, body={} if method == "POST" else None)
            assert answer.status == 401, (path, answer.body)
            assert answer.json()["errorCode"] == "UNAUTHENTICATED" and why in answer.json()["message"]
    answer = call(endpoint + "/shares", headers={"Authorization": "Basic abc"})
    assert answer.status == 401


@pytest.mark.parametrize("recipient,reader", [("partner", "recipient:partner"), ("insights", "insights"), ("ops", "ops")])
def test_listed_tables_are_what_the_rules_let_each_recipient_see(mesh, endpoint, recipient, reader):
    catalog = ShareCatalog(mesh.workspace, mesh.ports_uri)
    shares = call(f"{endpoint}/shares", token=mesh.tokens[recipient]).json()["items"]
    assert [s["name"] for s in shares] == catalog.shares()
    for share in catalog.shares():
        expected = [t.name for t in catalog.tables(share, reader)]
        listed = call(f"{endpoint}/shares/{share}/schemas/{share}/tables", token=mesh.tokens[recipient]).json()
        everything = call(f"{endpoint}/shares/{share}/all-tables", token=mesh.tokens[recipient]).json()
        assert [t["name"] for t in listed.get("items", [])] == expected == [t["name"] for t in everything.get("items", [])]
    own = call(f"{endpoint}/shares/insights/all-tables", token=mesh.tokens[recipient]).json()["items"]
    assert ("summary" in [t["name"] for t in own]) == (reader == "insights")  # an internal product: its domain only


def test_pages_follow_next_page_tokens(mesh, endpoint):
    token = mesh.tokens["ops"]
    everything = [t["name"] for t in call(f"{endpoint}{TABLE}", token=token).json()["items"]]
    seen, page_token = [], None
    while True:
        url = f"{endpoint}{TABLE}?maxResults=2" + (f"&pageToken={page_token}" if page_token else "")
        page = call(url, token=token).json()
        assert len(page["items"]) <= 2
        seen += [t["name"] for t in page["items"]]
        page_token = page.get("nextPageToken")
        if not page_token:
            break
    assert seen == everything and len(everything) > 2
    assert call(f"{endpoint}{TABLE}?maxResults=-1", token=token).status == 400
    assert call(f"{endpoint}{TABLE}?pageToken=%%%", token=token).status == 400


def test_a_hidden_table_is_403_naming_the_rule_and_an_unknown_one_404(mesh, endpoint):
    partner = mesh.tokens["partner"]
    for table, rule in [("crew", "read-public-only"), ("plan", "reads-no-drafts"), ("legacy", "reads-no-retired")]:
        for answer in (_query(endpoint, partner, table), call(f"{endpoint}{TABLE}/{table}/metadata", token=partner)):
            assert answer.status == 403 and f"[{rule}]" in answer.json()["message"], answer.body
    assert _query(endpoint, mesh.tokens["insights"], "summary", share="insights").status == 200
    assert _query(endpoint, partner, "summary", share="insights").status == 403
    for path in ["/shares/sales", "/shares/sales/schemas", f"{TABLE}/nothing/query", "/shares/ops/schemas/fleet/tables",
                 f"{TABLE}/flights_v7/version", "/elsewhere"]:
        answer = call(endpoint + path, token=partner, method="POST" if path.endswith("query") else "GET",
                      body={} if path.endswith("query") else None)
        assert answer.status == 404 and answer.json()["errorCode"] == "RESOURCE_DOES_NOT_EXIST", (path, answer.body)
    for path in [f"{TABLE}/Fl%C3%BCghts/version", f"{TABLE}/..%2F..%2Fcrew/version", "/shares/..%00/schemas"]:
        answer = call(endpoint + path, token=partner)
        assert answer.status in (400, 404) and "errorCode" in answer.json(), (path, answer.body)


# -- reading --

def test_a_query_serves_each_published_version_as_published(mesh, endpoint):
    token = mesh.tokens["partner"]
    port = mesh.port("ops", "flights")
    for item in port.history():
        answer = _query(endpoint, token, body={"version": item.version})
        assert answer.status == 200 and answer.headers["delta-table-version"] == str(item.version)
        lines = answer.lines()
        assert lines[0] == {"protocol": {"minReaderVersion": 1}} and lines[1]["metaData"]["version"] == item.version
        pd.testing.assert_frame_equal(_rows(answer), mesh.frames[("ops.flights", item.version)])
        by_time = _query(endpoint, token, body={"timestamp": item.committed_at.isoformat()})
        assert by_time.headers["delta-table-version"] == str(item.version)
    current = _query(endpoint, token)
    assert current.headers["delta-table-version"] == str(port.latest().version)
    older = _query(endpoint, token, "flights_v1")
    pd.testing.assert_frame_equal(_rows(older), mesh.frames[("ops.flights_v1", mesh.port("ops", "flights", 1).latest().version)])
    assert _query(endpoint, token, body={"limitHint": 1}).lines()[2:]  # best effort: one file still covers it


def test_retention_commits_and_removed_versions_are_not_served(mesh, endpoint):
    token = mesh.tokens["partner"]
    port = mesh.port("fleet", "aircraft")
    published = [item.version for item in port.history()]
    stored = port.data_files()
    bookkeeping = next(v for v in range(max(published)) if v not in published)  # between two publishes
    answer = _query(endpoint, token, "aircraft", {"version": bookkeeping}, share="fleet")
    assert answer.status == 404 and "retention and other bookkeeping commits are not versions" in answer.json()["message"]
    removed = next(item.version for item in port.history() if not set(item.files) <= stored)
    answer = _query(endpoint, token, "aircraft", {"version": removed}, share="fleet")
    assert answer.status == 404 and "no longer stored" in answer.json()["message"]
    for body in ({"version": -1}, {"version": "1"}, {"startingVersion": 0}, b"[", b"x" * 10):
        answer = _query(endpoint, token, "aircraft", body, share="fleet")
        assert answer.status == 400 and answer.json()["errorCode"] == "INVALID_PARAMETER_VALUE", answer.body
    changes = call(f"{endpoint}/shares/fleet/schemas/fleet/tables/aircraft/changes?startingVersion=0", token=token)
    assert changes.status == 400 and "change data feed" in changes.json()["message"]


def test_version_and_metadata_answer_with_their_headers(mesh, endpoint):
    token = mesh.tokens["partner"]
    port = mesh.port("ops", "flights")
    latest = port.latest()
    answer = call(f"{endpoint}{TABLE}/flights/version", token=token)
    assert answer.status == 200 and answer.headers["delta-table-version"] == str(latest.version)
    legacy = call(f"{endpoint}{TABLE}/flights", token=token, method="HEAD")
    assert legacy.status == 200 and legacy.headers["delta-table-version"] == str(latest.version)
    oldest = port.history()[-1]
    stamp = oldest.committed_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    starting = call(f"{endpoint}{TABLE}/flights/version?startingTimestamp={stamp}", token=token)
    assert starting.headers["delta-table-version"] == str(oldest.version)
    metadata = call(f"{endpoint}{TABLE}/flights/metadata", token=token,
                    headers={"delta-sharing-capabilities": "responseformat=delta,parquet;readerfeatures=deletionvectors"})
    assert metadata.headers["delta-table-version"] == str(latest.version)
    assert metadata.headers["delta-sharing-capabilities"] == "responseformat=parquet"
    schema = json.loads(metadata.lines()[1]["metaData"]["schemaString"])
    assert [f["name"] for f in schema["fields"]] == list(mesh.frames[("ops.flights", latest.version)].columns)


def test_each_query_is_recorded_as_usage(mesh, endpoint):
    ref = ProductRef("ops", "routes")
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    before = {r.recipient: r.reads for r in reads(mesh.instance, ref, since)}
    for _ in range(3):
        assert _query(endpoint, mesh.tokens["partner"], "routes").status == 200
    _query(endpoint, mesh.tokens["insights"], "routes_v1")
    call(f"{endpoint}{TABLE}/routes/metadata", token=mesh.tokens["partner"])  # not a read of data
    after = {(r.recipient, r.major): r for r in reads(mesh.instance, ref, since)}
    assert after[("partner", 1)].reads == before.get("partner", 0) + 3
    assert after[("partner", 1)].rows == 3 * len(mesh.frames[("ops.routes", mesh.port("ops", "routes").latest().version)])
    assert after[("insights", 1)].reads == 1


# -- file URLs --

def test_a_file_url_works_only_as_signed_and_only_for_its_recipient_while_active(mesh, endpoint):
    recipients = Recipients(mesh.instance)
    _, token = recipients.create("short_lived", domains=DOMAINS)
    url = _query(endpoint, token).lines()[2]["file"]["url"]
    assert call(url).status == 200
    ranged = call(url, headers={"Range": "bytes=0-3"})
    assert ranged.status == 206 and ranged.body == b"PAR1"
    parts = urlsplit(url)
    version = parts.path.split("/")[-2]
    forged = [url.replace(f"/{version}/", f"/{int(version) - 1}/"), url.replace("recipient=short_lived", "recipient=ops"),
              url.replace("/flights/", "/crew/"), url[:-1] + ("0" if url[-1] != "0" else "1"),
              url.split("&signature=")[0], url.replace("expires=", "expires=9")]
    for bad in forged:
        answer = call(bad)
        assert answer.status == 403 and answer.json()["errorCode"] == "PERMISSION_DENIED", (bad, answer.body)
    traversal = url.replace(parts.path.split("/")[-1], "..%2F..%2F_delta_log%2F00000000000000000000.json")
    assert call(traversal).status in (400, 403, 404)
    recipients.revoke("short_lived")
    answer = call(url)
    assert answer.status == 403 and "revoked" in answer.json()["message"]


def test_an_expired_url_is_refused(mesh):
    now = [time.time()]
    signer = UrlSigner(url_secret(mesh.home), ttl=60, clock=lambda: now[0])
    with running(make_app(mesh, signer=signer)) as endpoint:
        url = _query(endpoint, mesh.tokens["partner"]).lines()[2]["file"]["url"]
        assert call(url).status == 200
        now[0] += 61
        answer = call(url)
        assert answer.status == 403 and "expired" in answer.json()["message"]


@pytest.fixture
def small(tmp_path):
    """A mesh of one domain for tests that damage it."""
    import dagster as dg

    from mesh_core.instance.home import prepare_instance
    from mesh_core.storage.domain_storage import DomainStorage

    home = make_dagster_home(tmp_path)
    prepare_instance(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = DomainStorage(tmp_path / "data", "ops")
        storage.publish("flights", pd.DataFrame({"a": range(10)}), version="1.0.0", access="public", run_id="r1")
        token = Recipients(instance).create("partner", domains=["ops"])[1]
        workspace = write_workspace(tmp_path / "workspace.yaml", ["ops"])
        yield type("Small", (), dict(home=home, instance=instance, storage=storage, token=token, workspace=workspace,
                                     ports_uri=storage.ports_uri))


def test_a_corrupt_file_is_a_500_body_never_its_bytes(small):
    with running(make_app(small)) as endpoint:
        url = _query(endpoint, small.token).lines()[2]["file"]["url"]
        [name] = small.storage.current(ProductRef("ops", "flights")).files
        path = small.storage.port(ProductRef("ops", "flights")).uri + "/" + name
        data = bytearray(open(path, "rb").read())
        data[len(data) // 2] ^= 0x01
        open(path, "wb").write(bytes(data))
        answer = call(url)
        assert answer.status == 500 and answer.headers["content-type"].startswith("application/json")
        body = answer.json()
        assert body["errorCode"] == "INTERNAL_ERROR" and "damaged" in body["message"]
        assert b"PAR1" not in answer.body and "Traceback" not in body["message"] and path not in body["message"]


def test_an_unexpected_failure_is_a_500_body_without_a_traceback(small):
    with running(make_app(small)) as endpoint:
        small.workspace.write_text("load_from: [")  # the server reads workspace.yaml per request
        answer = call(f"{endpoint}/shares", token=small.token)
        assert answer.status == 500 and answer.json()["errorCode"] == "INTERNAL_ERROR"
        assert "Traceback" not in answer.body.decode() and str(small.workspace) not in answer.body.decode()


# -- limits --

def test_bodies_and_urls_are_bounded(small):
    with running(make_app(small, max_body=1024)) as endpoint:
        big = b'{"predicateHints": ["' + b"x" * 2000 + b'"]}'
        answer = _query(endpoint, small.token, body=big)
        assert answer.status == 413 and answer.json()["errorCode"] == "REQUEST_TOO_LARGE"
        parts = urlsplit(endpoint)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        connection.putrequest("POST", f"{parts.path}{TABLE}/flights/query")
        connection.putheader("Authorization", f"Bearer {small.token}")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        for _ in range(4):  # no Content-Length: cut off as it streams in
            connection.send(b"200\r\n" + b" " * 512 + b"\r\n")
        connection.send(b"0\r\n\r\n")
        response = connection.getresponse()
        assert response.status == 413 and json.loads(response.read())["errorCode"] == "REQUEST_TOO_LARGE"
        connection.close()
        answer = call(f"{endpoint}/shares/{'a' * 5000}", token=small.token)
        assert answer.status == 414 and answer.json()["errorCode"] == "REQUEST_TOO_LARGE"


def test_a_recipient_over_its_rate_gets_429_with_retry_after(small):
    with running(make_app(small, rate_limit=2)) as endpoint:  # bursts of 8
        answers = [call(f"{endpoint}/shares", token=small.token) for _ in range(12)]
        limited = [a for a in answers if a.status == 429]
        assert [a.status for a in answers[:8]] == [200] * 8 and limited
        assert int(limited[0].headers["retry-after"]) >= 1 and limited[0].json()["errorCode"] == "RESOURCE_EXHAUSTED"
        time.sleep(1.1)
        assert call(f"{endpoint}/shares", token=small.token).status == 200


# -- an S3 port --

def test_an_s3_port_is_served_with_pre_signed_urls(tmp_path, monkeypatch):
    from tests.deploy.servers import s3_server

    with s3_server("lake") as (env, client):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        mesh = build_small_on(tmp_path)
        with running(make_app(mesh)) as endpoint:
            answer = _query(endpoint, mesh.token)
            url = answer.lines()[2]["file"]["url"]
            assert url.startswith(env["AWS_ENDPOINT_URL"] + "/lake/mesh/ops/ports/flights/part-") and "X-Amz-Signature" in url
            pd.testing.assert_frame_equal(_rows(answer), pd.DataFrame({"a": range(10)}))


def build_small_on(tmp_path):
    import dagster as dg

    from mesh_core.instance.home import prepare_instance
    from mesh_core.storage.domain_storage import DomainStorage

    home = make_dagster_home(tmp_path)
    prepare_instance(home)
    instance = dg.DagsterInstance.from_config(str(home))
    storage = DomainStorage(tmp_path / "data", "ops")
    storage.publish("flights", pd.DataFrame({"a": range(10)}), version="1.0.0", access="public", run_id="r1")
    token = Recipients(instance).create("partner", domains=["ops"])[1]
    return type("Small", (), dict(home=home, instance=instance, token=token, ports_uri=storage.ports_uri,
                                  workspace=write_workspace(tmp_path / "workspace.yaml", ["ops"])))


# -- mesh serve --

def test_mesh_serve_prints_its_endpoint_and_serves(mesh, tmp_path):
    port = free_port()
    env = {**mesh_env(mesh.home), "MESH_DATA_DIR": str(mesh.root / "data")}
    process = subprocess.Popen([str(MESH), "serve", "-w", str(mesh.workspace), "--dagster-home", str(mesh.home),
                                "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        first = process.stdout.readline()
        assert f"http://127.0.0.1:{port}/delta-sharing" in first, first
        endpoint = f"http://127.0.0.1:{port}/delta-sharing"
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = call(f"{endpoint}/shares", token=mesh.tokens["partner"])
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.2)
        assert answer.status == 200 and [s["name"] for s in answer.json()["items"]] == sorted(DOMAINS)
        assert call(f"{endpoint}/shares").status == 401
    finally:
        process.terminate()
        process.wait(20)


@pytest.mark.parametrize("args,message", [
    (["--host", "0.0.0.0"], "without TLS"),
    (["--tls-cert", "cert.pem"], "both --tls-cert and --tls-key"),
    (["--url-ttl", "3"], "URL lifetime"),
])
def test_mesh_serve_refuses_unsafe_or_broken_settings(mesh, args, message):
    result = subprocess.run([str(MESH), "serve", "-w", str(mesh.workspace), "--dagster-home", str(mesh.home), *args],
                            capture_output=True, text=True, env=mesh_env(mesh.home), timeout=60)
    assert result.returncode == 2 and message in result.stderr, result.stderr


@pytest.mark.parametrize("allowed,scheme", [(None, "https"), ("10.9.9.9", "http")])
def test_behind_a_proxy_only_the_proxys_forwarded_headers_are_trusted(mesh, allowed, scheme):
    """A query's file URLs take the scheme the TLS proxy forwards, and only from the proxy's address
    (--forwarded-allow-ips, default 127.0.0.1): anyone else's X-Forwarded-Proto is ignored."""
    port = free_port()
    extra = ["--forwarded-allow-ips", allowed] if allowed else []
    process = subprocess.Popen([str(MESH), "serve", "-w", str(mesh.workspace), "--dagster-home", str(mesh.home),
                                "--port", str(port), "--behind-proxy", *extra], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**mesh_env(mesh.home), "MESH_DATA_DIR": str(mesh.root / "data")})
    endpoint = f"http://127.0.0.1:{port}/delta-sharing"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = _query(endpoint, mesh.tokens["partner"], headers={"X-Forwarded-Proto": "https"})
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "mesh serve did not start"
                time.sleep(0.2)
        assert answer.status == 200, answer.body
        urls = [line["file"]["url"] for line in answer.lines() if "file" in line]
        assert urls and all(url.startswith(f"{scheme}://127.0.0.1:{port}/") for url in urls), urls
    finally:
        process.terminate()
        process.wait(20)
