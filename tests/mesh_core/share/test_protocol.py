"""The protocol's answers for a port version: only published versions, their schema and files as
Delta Lake and the publish recorded them, and query bodies checked field by field."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest
from deltalake import DeltaTable

from mesh_core.share import protocol
from mesh_core.share.errors import ShareBadRequestError, ShareNotFoundError


def test_a_version_is_a_published_version_never_a_retention_commit(mesh):
    port = mesh.port("fleet", "aircraft")
    published = [item.version for item in port.history()]
    commits = DeltaTable(port.uri).version()
    bookkeeping = sorted(set(range(commits + 1)) - set(published))
    assert bookkeeping, "retention should have committed (keep_versions=2)"
    for version in published:
        assert protocol.resolve_version(port, "t", protocol.Query(version=version)).version == version
    for version in bookkeeping + [commits + 1]:
        with pytest.raises(ShareNotFoundError, match=rf"no published version {version} .*published versions: "):
            protocol.resolve_version(port, "t", protocol.Query(version=version))
    assert protocol.resolve_version(port, "t", protocol.Query()).version == max(published)


def test_timestamp_reads_the_version_at_or_before_it(mesh):
    port = mesh.port("ops", "flights")
    history = port.history()  # newest first
    for item in history:
        assert protocol.resolve_version(port, "t", protocol.Query(timestamp=item.committed_at)).version == item.version
    later = history[0].committed_at + timedelta(days=1)
    assert protocol.resolve_version(port, "t", protocol.Query(timestamp=later)).version == history[0].version
    with pytest.raises(ShareBadRequestError, match="no published version at or before"):
        protocol.resolve_version(port, "t", protocol.Query(timestamp=history[-1].committed_at - timedelta(seconds=1)))
    assert protocol.version_at_or_after(port, "t", history[-1].committed_at).version == history[-1].version


def test_a_snapshot_is_what_the_publish_wrote(mesh):
    port = mesh.port("ops", "flights")
    for item in port.history():
        snapshot = protocol.build_snapshot(port, item)
        delta = DeltaTable(port.uri, version=item.version)
        assert json.loads(snapshot.schema_string) == json.loads(delta.schema().to_json())
        assert snapshot.table_id == delta.metadata().id
        frame = mesh.frames[("ops.flights", item.version)]
        assert json.loads(snapshot.schema_string)["fields"][0]["name"] == frame.columns[0]
        assert sum(f.rows for f in snapshot.files) == len(frame)
        for data in snapshot.files:
            content = (Path(port.uri) / data.name).read_bytes()
            assert data.sha256 == hashlib.sha256(content).hexdigest() == item.files[data.name]
            assert data.size == len(content)


def test_naive_timestamps_are_timestamp_in_the_schema_string_clients_parse(tmp_path):
    import pandas as pd

    from mesh_core import DomainStorage, ProductRef

    storage = DomainStorage(tmp_path, "ops")
    frame = pd.DataFrame({"timestamp_ntz": ["a name, not a type"], "naive": [pd.Timestamp("2026-01-01 10:00")],
                          "aware": [pd.Timestamp("2026-01-01 10:00", tz="UTC")], "n": [1]})
    storage.publish("times", frame, version="1.0.0", access="public", run_id="run-times")
    port = storage.port(ProductRef("ops", "times"))
    stored = {f["name"]: f["type"] for f in json.loads(DeltaTable(port.uri).schema().to_json())["fields"]}
    assert stored["naive"] == "timestamp_ntz"  # what Delta Lake stores: the case this covers
    shared = json.loads(protocol.build_snapshot(port, port.latest()).schema_string)
    assert {f["name"]: f["type"] for f in shared["fields"]} == {
        "timestamp_ntz": "string", "naive": "timestamp", "aware": "timestamp", "n": "long"}


def test_snapshots_are_cached_per_port_and_version(mesh):
    port = mesh.port("ops", "flights")
    cache = protocol.Snapshots()
    latest = port.latest()
    first = cache.get(port, latest)
    assert cache.get(port, latest) is first
    older = port.history()[-1]
    assert cache.get(port, older).version == older.version != first.version


def test_the_ndjson_lines_follow_the_parquet_format(mesh):
    port = mesh.port("ops", "flights")
    snapshot = protocol.build_snapshot(port, port.latest())
    item = snapshot.files[0]
    lines = [json.loads(line) for line in protocol.ndjson([
        protocol.protocol_action(), protocol.metadata_action(snapshot, with_version=True),
        protocol.file_action(snapshot, item, "http://x/f", 123000)])]
    assert lines[0] == {"protocol": {"minReaderVersion": 1}}
    meta = lines[1]["metaData"]
    assert meta["format"] == {"provider": "parquet"} and meta["partitionColumns"] == [] and meta["version"] == snapshot.version
    file = lines[2]["file"]
    assert file["id"] == item.sha256 and file["size"] == item.size and file["partitionValues"] == {}
    assert json.loads(file["stats"])["numRecords"] == len(mesh.frames[("ops.flights", snapshot.version)])
    assert file["expirationTimestamp"] == 123000 and file["version"] == snapshot.version
    assert file["timestamp"] == int(port.latest().committed_at.timestamp() * 1000)


def test_limit_hint_keeps_the_files_that_cover_it(mesh):
    port = mesh.port("ops", "flights")
    snapshot = protocol.build_snapshot(port, port.latest())
    many = protocol.Snapshot(snapshot.published, snapshot.table_id, snapshot.schema_string, None, snapshot.files * 3)
    rows = snapshot.files[0].rows
    assert len(protocol.files_for(many, None)) == 3
    assert len(protocol.files_for(many, 0)) == 0
    assert len(protocol.files_for(many, rows)) == 1
    assert len(protocol.files_for(many, rows + 1)) == 2


@pytest.mark.parametrize("body,field", [
    (b"[1]", "JSON object"), (b"{", "not JSON"), (b"\xff\xfe", "not JSON"),
    (b'{"version": -1}', "not a version"), (b'{"version": "3"}', "not a version"), (b'{"version": true}', "not a version"),
    (b'{"version": 1.5}', "not a version"), (b'{"version": 99999999999999999999}', "not a version"),
    (b'{"timestamp": "yesterday"}', "not an ISO 8601"), (b'{"timestamp": 5}', "timestamp must be"),
    (b'{"version": 1, "timestamp": "2026-01-01T00:00:00Z"}', "not both"),
    (b'{"limitHint": -2}', "limitHint"), (b'{"limitHint": "10"}', "limitHint"),
    (b'{"startingVersion": 0}', "change data feed"), (b'{"endingVersion": 3}', "change data feed"),
    (b'{"predicateHints": "a = 1"}', "predicateHints"), (b'{"predicateHints": ["x"] }'.replace(b'["x"]', json.dumps(["x"] * 101).encode()), "predicateHints"),
    (b'{"jsonPredicateHints": {"op": "equal"}}', "jsonPredicateHints"),
])
def test_a_bad_query_body_is_400_naming_the_field(body, field):
    with pytest.raises(ShareBadRequestError, match=field):
        protocol.parse_query(body)


def test_a_good_query_body_keeps_what_changes_the_answer():
    query = protocol.parse_query(json.dumps({"version": 2, "limitHint": 10, "predicateHints": ["a > 1"],
                                             "jsonPredicateHints": "{}", "idempotencyKey": "k"}).encode())
    assert query == protocol.Query(version=2, limit_hint=10)
    assert protocol.parse_query(b"") == protocol.parse_query(b"{}") == protocol.Query()
    assert protocol.parse_query(b'{"timestamp": "2026-01-01T00:00:00Z"}').timestamp.isoformat() == "2026-01-01T00:00:00+00:00"
