"""The contract registry store: an append-only log at a folder or at s3://bucket/prefix (a real moto
S3 server). Every behaviour that both kinds share runs on both; races and kills use real processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from mesh_core.errors import RegistryError, StaleRegistryWrite
from mesh_core.storage.registry import Registry, RegistryState, registry_uri
from tests.deploy.servers import s3_server
from tests.support import free_port

BUCKET = "registry"


@dataclass
class Store:
    """A fresh registry of one kind, and raw access to its log/ (what a person or a crash leaves there)."""

    kind: str
    uri: str
    put: Callable[[str, bytes], None]
    delete: Callable[[str], None]
    names: Callable[[], list[str]]

    def where(self, name: str) -> str:
        """How an error names the file or key `name` of log/."""
        return str(Path(self.uri) / "log" / name) if self.kind == "folder" else f"{self.uri}/log/{name}"


@pytest.fixture(scope="module")
def s3():
    with s3_server(BUCKET) as (env, client):
        yield env, client


def _folder_store(root: Path) -> Store:
    log = root / "log"

    def put(name: str, data: bytes) -> None:
        (log / name).parent.mkdir(parents=True, exist_ok=True)
        (log / name).write_bytes(data)

    return Store("folder", str(root), put, lambda name: (log / name).unlink(), lambda: sorted(os.listdir(log)))


@pytest.fixture(params=["folder", "s3"])
def store(request, tmp_path, monkeypatch) -> Store:
    if request.param == "folder":
        return _folder_store(tmp_path / "registry")
    env, client = request.getfixturevalue("s3")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    prefix = f"mesh/{uuid.uuid4().hex}"  # a registry of its own in the module's one server
    log = f"{prefix}/log/"

    def names() -> list[str]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=log)
        return sorted(item["Key"][len(log):] for page in pages for item in page.get("Contents", ()))

    return Store("s3", f"s3://{BUCKET}/{prefix}",
                 lambda name, data: client.put_object(Bucket=BUCKET, Key=log + name, Body=data),
                 lambda name: client.delete_object(Bucket=BUCKET, Key=log + name), names)


def _entry(seq: int) -> str:
    return f"{seq:012d}.json"


def _publish(registry: Registry, domain: str, entry: dict | None, by: str = "ci") -> RegistryState:
    return registry.write(registry.read(missing_ok=True), domain, entry, by=by, changes=[f"{domain} changed"])


def test_a_write_reads_back_whole_and_no_reader_can_change_it(store):
    registry = Registry.at(store.uri)
    written = registry.write(registry.read(missing_ok=True), "operations", {"products": {"flights": {"owners": ["a"]}}},
                             by="alice", changes=["flights: new product"])
    state = registry.read()
    assert state == written and state.seq == 1 and state.uri == store.uri
    assert dict(state.domains) == {"operations": {"products": {"flights": {"owners": ["a"]}}}}
    assert {k: state.written[k] for k in ("domain", "by", "changes", "removed")} == {
        "domain": "operations", "by": "alice", "changes": ["flights: new product"], "removed": False}
    assert state.written["at"].endswith("+00:00")
    # What a reader gets is a copy: changing it changes neither the state nor the next read.
    state.domains["operations"]["products"]["flights"]["owners"].append("mallory")
    state.written["changes"].append("forged")
    with pytest.raises(TypeError):
        state.domains["weather"] = {}
    assert state.domains["operations"]["products"]["flights"]["owners"] == ["a"] == \
        registry.read().domains["operations"]["products"]["flights"]["owners"]
    assert state.written["changes"] == ["flights: new product"]
    assert json.dumps(dict(state.domains)) and store.names() == [_entry(1)]


def test_history_records_who_changed_which_domain_and_each_entry_is_the_whole_state(store):
    registry = Registry.at(store.uri)
    _publish(registry, "operations", {"v": 1}, by="alice")
    _publish(registry, "weather", {"v": 1}, by="bob")
    _publish(registry, "operations", {"v": 2}, by="carol")
    _publish(registry, "weather", None, by="dave")
    assert [(h["seq"], h["domain"], h["by"], h["removed"]) for h in registry.history()] == [
        (1, "operations", "alice", False), (2, "weather", "bob", False), (3, "operations", "carol", False),
        (4, "weather", "dave", True)]
    assert [h["seq"] for h in registry.history("operations")] == [1, 3]
    assert dict(registry.entry_at(2).domains) == {"operations": {"v": 1}, "weather": {"v": 1}}
    assert dict(registry.entry_at(3).domains) == {"operations": {"v": 2}, "weather": {"v": 1}}
    assert dict(registry.read().domains) == {"operations": {"v": 2}} == dict(registry.entry_at(4).domains)
    assert registry.entry_at(4).written["by"] == "dave"
    with pytest.raises(RegistryError, match=rf"registry at {store.uri} has no entry 9: it holds entries 1 to 4"):
        registry.entry_at(9)


def test_a_stale_write_is_refused_and_nothing_is_lost(store):
    registry = Registry.at(store.uri)
    base = registry.read(missing_ok=True)
    registry.write(base, "operations", {"v": 1}, by="alice", changes=[])
    with pytest.raises(StaleRegistryWrite, match=rf"Entry 1 of the registry at {store.uri} was written by another .*"
                                                 "nothing was written"):
        registry.write(base, "weather", {"v": 1}, by="bob", changes=[])
    assert dict(registry.read().domains) == {"operations": {"v": 1}} and store.names() == [_entry(1)]
    retried = registry.write(registry.read(), "weather", {"v": 1}, by="bob", changes=[])
    assert retried.seq == 2 and dict(registry.read().domains) == {"operations": {"v": 1}, "weather": {"v": 1}}


def _racer(uri: str, domain: str, rounds: int, barrier, results) -> None:
    """One publisher of the race: each round it reads, waits until the other has read the same entry, writes;
    if refused as stale it reads again and retries."""
    try:
        registry = Registry.at(uri)
        for round_ in range(rounds):
            base = registry.read(missing_ok=True)
            barrier.wait(timeout=60)
            try:
                registry.write(base, domain, {"round": round_}, by=domain, changes=[f"round {round_}"])
                results.put((round_, domain, "landed", base.seq + 1))
            except StaleRegistryWrite:
                again = registry.read()
                registry.write(again, domain, {"round": round_}, by=domain, changes=[f"round {round_}, retried"])
                results.put((round_, domain, "refused", again.seq + 1))
            barrier.wait(timeout=60)  # the round is over for both before either reads again
    except BaseException as exc:  # the test shows it, instead of a barrier timing out in silence
        results.put((None, domain, "error", repr(exc)))
        barrier.abort()


def test_two_processes_publishing_from_the_same_entry_at_once_never_lose_a_write(store, capsys):
    rounds = 25
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as two CI jobs would be
    barrier, results = context.Barrier(2), context.Queue()
    racers = [context.Process(target=_racer, args=(store.uri, domain, rounds, barrier, results))
              for domain in ("alpha", "beta")]
    for racer in racers:
        racer.start()
    try:
        outcomes = [results.get(timeout=300) for _ in range(2 * rounds)]
    finally:
        for racer in racers:
            racer.join(timeout=60)
            racer.kill()
    assert not [o for o in outcomes if o[2] == "error"], outcomes
    registry = Registry.at(store.uri)
    for round_ in range(rounds):
        seen = sorted((o[2], o[3], o[1]) for o in outcomes if o[0] == round_)
        # One write landed entry 2r+1; the other was refused, re-read and landed 2r+2 on top of it.
        assert [(kind, seq) for kind, seq, _ in seen] == [("landed", 2 * round_ + 1), ("refused", 2 * round_ + 2)], seen
        assert registry.entry_at(2 * round_ + 1).written["domain"] == seen[0][2]
        assert dict(registry.entry_at(2 * round_ + 2).domains) == {"alpha": {"round": round_}, "beta": {"round": round_}}
    assert registry.read().seq == 2 * rounds
    assert store.names() == [_entry(seq) for seq in range(1, 2 * rounds + 1)]  # no gap, no temp or partial file
    won = {d: sum(1 for o in outcomes if o[1] == d and o[2] == "landed") for d in ("alpha", "beta")}
    refused = sum(1 for o in outcomes if o[2] == "refused")
    with capsys.disabled():  # shown in every run, not only with -s
        print(f"\nregistry race ({store.kind}): {rounds} rounds, {sum(won.values())} landed first try (alpha "
              f"{won['alpha']}, beta {won['beta']}), {refused} refused as stale and landed on retry, "
              f"{len(store.names())} entries, no gap")


@pytest.mark.parametrize("body, problem", [
    (b'{"format": "mesh-registry/1", "seq": 2, "written": {"domain"', "is not valid JSON"),
    (b"\xff\xfe", "is not valid JSON"),
    (b'{"format": "something-else", "seq": 2, "written": {}, "domains": {}}', "is not a mesh-registry/1 entry"),
    (b'{"format": "mesh-registry/1", "seq": 7, "written": {}, "domains": {}}', "says it is entry 7, but its name says 2"),
    (b'{"format": "mesh-registry/1", "seq": 2, "written": {}, "domains": {"../etc": {}}}', "not Mesh names"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply to read"),
    (b'{"format": "mesh-registry/1", "seq": 2, "written": {}, "domains": {"a": {"v": NaN}}}', "NaN is not a JSON value"),
])
def test_a_corrupt_newest_entry_is_an_error_naming_the_file_and_the_mend(store, body, problem):
    registry = Registry.at(store.uri)
    _publish(registry, "operations", {"v": 1})
    _publish(registry, "weather", {"v": 1})
    store.put(_entry(2), body)
    with pytest.raises(RegistryError) as caught:
        registry.read()
    message = str(caught.value)
    assert f"Entry 2 of the registry at {store.uri} is corrupt: {store.where(_entry(2))}: " in message
    assert problem in message
    assert f"delete it so entry 1 ({store.where(_entry(1))}) is current again" in message and "\n" not in message
    store.delete(_entry(2))  # the mend the message gives
    assert dict(registry.read().domains) == {"operations": {"v": 1}}


def test_a_corrupt_older_entry_leaves_the_state_readable(store):
    registry = Registry.at(store.uri)
    _publish(registry, "operations", {"v": 1})
    _publish(registry, "weather", {"v": 1})
    store.put(_entry(1), b"garbage")
    assert registry.read().seq == 2
    with pytest.raises(RegistryError, match=rf"Entry 1 .* is corrupt: .*Fix: restore .*{_entry(1)} from a backup"):
        registry.entry_at(1)


def test_files_in_the_log_that_are_not_entries_are_ignored(store):
    registry = Registry.at(store.uri)
    _publish(registry, "operations", {"v": 1})
    for name in ("README", f".{_entry(2)}.0123abcd.tmp", f"{_entry(3)}.tmp", "4.json", "old/" + _entry(5), "notes.txt"):
        store.put(name, b"not an entry")
    assert registry.read().seq == 1 and [h["seq"] for h in registry.history()] == [1]
    assert _publish(registry, "weather", {"v": 1}).seq == 2
    assert dict(registry.read().domains) == {"operations": {"v": 1}, "weather": {"v": 1}}


def test_a_registry_with_no_entry_yet_is_an_error_until_the_first_write_creates_it(store):
    registry = Registry.at(store.uri)
    for read in (registry.read, registry.history, lambda: registry.entry_at(1)):
        with pytest.raises(RegistryError, match=rf"No registry at {store.uri}: .*publish a domain to create it.*fix the URI"):
            read()
    assert registry.read(missing_ok=True) == RegistryState(store.uri, 0, {}, None)
    assert _publish(registry, "operations", {"v": 1}).seq == 1 and registry.read().seq == 1


def test_a_missing_folder_is_a_clear_error_and_the_first_write_creates_it(tmp_path):
    root = tmp_path / "nowhere" / "registry"
    registry = Registry.at(root)
    for read in (registry.read, registry.history):
        with pytest.raises(RegistryError, match=rf"No registry at {root}: {root} does not exist. Fix: publish a domain"):
            read()
    (tmp_path / "file").write_text("")
    with pytest.raises(RegistryError, match="is not a folder"):
        Registry.at(tmp_path / "file").read(missing_ok=True)
    _publish(registry, "operations", {"v": 1})
    assert sorted(os.listdir(root / "log")) == [_entry(1)]


def test_writes_check_what_they_are_given_before_anything_is_written(store):
    registry = Registry.at(store.uri)
    base = _publish(registry, "operations", {"v": 1})
    refused = [
        (dict(domain="../etc", entry={}), r"'../etc' is not a domain name"),
        (dict(domain="weather", entry={}, by=""), "must name who made it"),
        (dict(domain="weather", entry={}, changes="one string"), "must be a list of strings"),
        (dict(domain="weather", entry={"when": {1, 2}}), "is not plain JSON"),
        (dict(domain="weather", entry=None), "Domain weather is not in the registry .* cannot be removed"),
    ]
    for given, message in refused:
        arguments = {"by": "ci", "changes": [], **given}
        with pytest.raises(RegistryError, match=message):
            registry.write(base, arguments.pop("domain"), arguments.pop("entry"), **arguments)
    with pytest.raises(RegistryError, match="cannot be the base of a write"):
        registry.write(RegistryState("elsewhere", 1, {}, None), "weather", {}, by="ci", changes=[])
    assert store.names() == [_entry(1)]


def test_uri_forms(tmp_path, monkeypatch):
    assert Registry.at(f"file://{tmp_path}/r").write(RegistryState(f"file://{tmp_path}/r", 0, {}, None), "a", {},
                                                     by="ci", changes=[]).seq == 1
    assert Registry.at(str(tmp_path / "r")).read().domains.keys() == {"a"}
    for bad in ("", "s3://", "s3:///prefix", "https://example.com/registry", "file://host/path"):
        with pytest.raises(RegistryError, match="Fix: give"):
            Registry.at(bad)
    monkeypatch.delenv("MESH_REGISTRY_URI", raising=False)
    assert registry_uri(None) is None and registry_uri("s3://b/p") == "s3://b/p"
    monkeypatch.setenv("MESH_REGISTRY_URI", "s3://b/env")
    assert registry_uri(None) == "s3://b/env" and registry_uri("/given") == "/given"


def test_an_unreachable_s3_endpoint_is_one_line_naming_the_uri_and_the_endpoint(monkeypatch):
    port = free_port()  # nothing listens there
    for name, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "x",
                        "AWS_SECRET_ACCESS_KEY": "y", "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    registry = Registry.at("s3://lake/registry")
    for attempt in (registry.read, lambda: registry.write(RegistryState(registry.uri, 0, {}, None), "a", {}, by="ci",
                                                           changes=[])):
        with pytest.raises(RegistryError) as caught:
            attempt()
        message = str(caught.value)
        assert not isinstance(caught.value, StaleRegistryWrite)
        assert "registry at s3://lake/registry" in message and f"127.0.0.1:{port}" in message and "\n" not in message
        assert caught.value.__suppress_context__  # no chained traceback under the message


def test_a_missing_bucket_or_no_credentials_is_a_clear_error(s3, monkeypatch, tmp_path):
    env, _ = s3
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(RegistryError, match="Cannot read the registry at s3://no-such-bucket/r: bucket no-such-bucket "
                                            "does not exist. Fix: create the bucket or fix the URI"):
        Registry.at("s3://no-such-bucket/r").read()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(RegistryError, match=f"Cannot read the registry at s3://{BUCKET}/r: Unable to locate credentials"):
        Registry.at(f"s3://{BUCKET}/r").read()


def test_a_lost_answer_retried_by_boto3_is_not_taken_for_another_write(store):
    # botocore retries a PUT whose answer it lost; the retry meets its own object (412): that write landed.
    registry = Registry.at(store.uri)
    registry._create(1, b"ours")
    if store.kind == "s3":
        registry._create(1, b"ours")
    with pytest.raises(StaleRegistryWrite):
        registry._create(1, b"theirs")


def _write_forever(uri: str) -> None:
    registry = Registry.at(uri)
    payload = {"blob": "x" * 128_000}  # big enough that a kill often lands inside a write
    while True:
        try:
            _publish(registry, "operations", {**payload, "at": time.time()})
        except StaleRegistryWrite:
            pass


def test_a_writer_killed_at_any_moment_never_leaves_a_partial_entry(tmp_path, capsys):
    uri = str(tmp_path / "registry")
    registry = Registry.at(uri)
    context = multiprocessing.get_context("fork")  # forked writers start in a moment, so the loop can kill often
    kills, reads = 30, 0
    for _ in range(kills):
        writer = context.Process(target=_write_forever, args=(uri,))
        writer.start()
        try:
            deadline = time.monotonic() + random.uniform(0.005, 0.1)
            while time.monotonic() < deadline:  # a reader meanwhile only ever sees whole entries
                state = registry.read(missing_ok=True)
                assert state.seq == 0 or state.domains["operations"]["blob"] == "x" * 128_000
                reads += 1
        finally:
            writer.kill()
            writer.join()
    names = sorted(os.listdir(tmp_path / "registry" / "log"))
    entries, temps = [n for n in names if n.endswith(".json")], [n for n in names if n.endswith(".tmp")]
    assert entries == [_entry(seq) for seq in range(1, len(entries) + 1)] and entries
    for seq in range(1, len(entries) + 1):
        assert registry.entry_at(seq).domains["operations"]["blob"] == "x" * 128_000
    assert set(names) == set(entries) | set(temps)
    assert temps, "no kill landed inside a write: the loop proved nothing"
    with capsys.disabled():
        print(f"\nregistry kill: {kills} writers killed, {len(entries)} entries landed whole, {len(temps)} kills mid-write "
              f"left a temp file (ignored), {reads} reads during writes")


def test_the_store_does_not_import_boto3_until_it_touches_s3():
    code = "import sys, mesh_core.storage.registry; sys.exit('boto3' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_an_entry_in_a_newer_format_asks_for_a_newer_mesh_core_not_a_repair(store):
    registry = Registry.at(store.uri)
    _publish(registry, "operations", {"v": 1})
    store.put(_entry(2), b'{"format": "mesh-registry/2", "seq": 2, "written": {}, "domains": {}, "more": []}')
    with pytest.raises(RegistryError, match=r"Entry 2 .* is format 'mesh-registry/2', written by a newer mesh-core; "
                                            r"this one reads mesh-registry/1\. Fix: upgrade mesh-core here\.") as caught:
        registry.read()
    assert "corrupt" not in str(caught.value)
