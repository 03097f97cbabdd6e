"""The Delta Sharing protocol's answers (PROTOCOL.md, "API Response Actions in Parquet Format"),
built from one published version of a product's port.

A table's versions are the port's published versions only: a Delta commit that is not a publish
(retention's vacuum commits) is not a version a recipient can ask for. A query answers NDJSON:
a `protocol` line, a `metaData` line (the Delta table's id and schema at that version) and one
`file` line per data file, with a URL that expires. A version's snapshot is immutable, so it is
built once and cached per (port, version).

What is not served: the change data feed and streaming (`startingVersion`, `/changes`): a port
keeps only the versions retention leaves, each a whole overwrite, so its history is not a change
feed; a query asking for one gets 400 saying so. The protocol has no column projection (a query
names no columns: clients read the columns they want from the Parquet files), and predicate
hints are best-effort by the protocol: they are accepted, bounded, and ignored (a port's version
is one file, and its table is not partitioned). `limitHint` returns only the files needed to
cover that many rows. Only the `parquet` response format is answered, and said so in the
`delta-sharing-capabilities` response header, which the official client accepts.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Iterator

from mesh_core.errors import IntegrityError, VersionNotFoundError
from mesh_core.share.errors import ShareBadRequestError, ShareNotFoundError
from mesh_core.storage.port import OutputPort, PortVersion, data_file_checksum

CAPABILITIES = "delta-sharing-capabilities"
RESPONSE_FORMAT = "responseformat=parquet"
VERSION_HEADER = "Delta-Table-Version"
NDJSON = "application/x-ndjson; charset=utf-8"
MAX_VERSION = 2**63 - 1
MAX_LIMIT = 2**31 - 1
MAX_PREDICATES, MAX_PREDICATE_CHARS = 100, 4096
MAX_TIMESTAMP_CHARS = 64
_HISTORY = ("startingVersion", "endingVersion", "startingTimestamp", "endingTimestamp", "includeHistoricalProtocol")
NOT_SHARED = ("this server shares snapshots of published versions, not a table's history: the change data feed "
               "and streaming are not served (a port keeps only the versions retention leaves, each a whole "
               "overwrite). Read one version with `version` or `timestamp` instead.")


@dataclass(frozen=True)
class DataFile:
    name: str
    sha256: str  # the file's id: the same file has the same id in every answer
    size: int
    rows: int | None


@dataclass(frozen=True)
class Snapshot:
    """What a query of one published version answers, but the URLs."""

    published: PortVersion
    table_id: str
    schema_string: str
    description: str | None
    files: tuple[DataFile, ...]

    @property
    def version(self) -> int:
        return self.published.version

    @property
    def timestamp_ms(self) -> int:
        return int(self.published.committed_at.timestamp() * 1000)


@dataclass(frozen=True)
class Query:
    """A query's body, validated: only what changes the answer is kept."""

    version: int | None = None
    timestamp: datetime | None = None
    limit_hint: int | None = None


def parse_query(body: bytes) -> Query:
    """The body of `POST .../query` (an empty body is `{}`); every refusal names the field."""
    if not body.strip():
        return Query()
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ShareBadRequestError(f"The query body is not JSON ({exc}): send a JSON object, e.g. {{\"version\": 3}}.") from None
    except RecursionError:  # arrays nested thousands deep fit in the body cap
        raise ShareBadRequestError("The query body nests too deep to be a query: send a JSON object, "
                                   "e.g. {\"version\": 3}.") from None
    if not isinstance(data, dict):
        raise ShareBadRequestError("The query body must be a JSON object, e.g. {\"version\": 3} or {}.")
    asked = [key for key in _HISTORY if data.get(key) is not None]
    if asked:
        raise ShareBadRequestError(f"{', '.join(asked)}: {NOT_SHARED}")
    _check_hints(data)
    version = data.get("version")
    if version is not None:
        version = parse_version(version, "version")
    timestamp = data.get("timestamp")
    if timestamp is not None:
        timestamp = parse_timestamp(timestamp, "timestamp")
    if version is not None and timestamp is not None:
        raise ShareBadRequestError("Send `version` or `timestamp`, not both.")
    limit = data.get("limitHint")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_LIMIT):
        raise ShareBadRequestError(f"limitHint {limit!r} is not a number of rows: a whole number from 0 to {MAX_LIMIT}.")
    return Query(version, timestamp, limit)


def parse_version(value: object, what: str) -> int:
    """A version from a body (a JSON number) or a URL (its digits: `text`): a whole number, no sign, in a Long."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VERSION:
        raise ShareBadRequestError(f"{what} {value!r} is not a version: versions are whole numbers >= 0. "
                                   "GET .../version gives the current one.")
    return value


def version_in_path(text: str) -> int:
    """A version as a URL path segment: digits only, no sign or leading zero, at most a Long."""
    if not (text.isascii() and text.isdigit() and len(text) <= 19 and (text == "0" or text[0] != "0")):
        raise ShareBadRequestError(f"{text[:30]!r} is not a version: versions are whole numbers >= 0.")
    return parse_version(int(text), "version")


def parse_timestamp(value: object, what: str) -> datetime:
    """An ISO 8601 timestamp (PROTOCOL.md: UTC, e.g. 2022-01-01T00:00:00Z); one without a zone is UTC."""
    if not isinstance(value, str) or len(value) > MAX_TIMESTAMP_CHARS:
        raise ShareBadRequestError(f"{what} must be a timestamp string such as 2026-01-01T00:00:00Z.")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ShareBadRequestError(f"{what} {value!r} is not an ISO 8601 timestamp such as 2026-01-01T00:00:00Z.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _check_hints(data: dict) -> None:
    hints = data.get("predicateHints")
    if hints is not None and (not isinstance(hints, list) or len(hints) > MAX_PREDICATES
                              or not all(isinstance(h, str) and len(h) <= MAX_PREDICATE_CHARS for h in hints)):
        raise ShareBadRequestError(f"predicateHints must be a list of at most {MAX_PREDICATES} SQL expressions "
                                   f"(strings of at most {MAX_PREDICATE_CHARS} characters).")
    json_hints = data.get("jsonPredicateHints")
    if json_hints is not None and not isinstance(json_hints, str):
        raise ShareBadRequestError("jsonPredicateHints must be a string holding the JSON predicate.")


# -- versions ----------------------------------------------------------------------------

def resolve_version(port: OutputPort, label: str, query: Query) -> PortVersion:
    """The published version a query reads: the one asked for, the newest at or before `timestamp`,
    else the current one. A version retention removed, or one that is not a publish, is 404."""
    if query.version is not None:
        try:
            return port.published(query.version)
        except VersionNotFoundError:
            raise ShareNotFoundError(
                f"{label} has no published version {query.version} (retention and other bookkeeping commits are "
                f"not versions); published versions: {_listed(port.history())}.") from None
    if query.timestamp is not None:
        history = port.history()
        for item in history:  # newest first
            if item.committed_at <= query.timestamp:
                return item
        raise ShareBadRequestError(
            f"{label} has no published version at or before {query.timestamp.isoformat()}: "
            f"its oldest still kept is {_oldest(history)}.")
    return port.latest()


def version_at_or_after(port: OutputPort, label: str, when: datetime) -> PortVersion:
    """The earliest published version committed at or after `when` (`GET .../version?startingTimestamp=`)."""
    history = port.history()
    for item in reversed(history):  # oldest first
        if item.committed_at >= when:
            return item
    raise ShareBadRequestError(f"{label} has no published version at or after {when.isoformat()}: its current "
                               f"version {history[0].version if history else '-'} is older.")


def _listed(history: list[PortVersion]) -> str:
    versions = [item.version for item in history]
    return ", ".join(map(str, versions[:20])) + (" …" if len(versions) > 20 else "") if versions else "none"


def _oldest(history: list[PortVersion]) -> str:
    return f"version {history[-1].version} at {history[-1].committed_at.isoformat()}" if history else "none"


# -- snapshots ---------------------------------------------------------------------------

def build_snapshot(port: OutputPort, published: PortVersion) -> Snapshot:
    """The schema, table id and files of a published version, as Delta Lake reads them, checked
    against what its publish recorded (a file list changed outside Mesh is damage, not data)."""
    import pyarrow as pa
    from deltalake import DeltaTable

    try:
        delta = DeltaTable(port.uri, version=published.version)
        metadata = delta.metadata()
        actions = pa.table(delta.get_add_actions(flatten=True)).to_pylist()
        schema = json.dumps(_shared_type(json.loads(delta.schema().to_json())), separators=(",", ":"))
    except Exception as exc:
        raise port.damaged_commit(published.version) or IntegrityError(
            f"Delta Lake cannot load version {published.version} of {port.ref}: {exc}") from exc
    names = {item["path"].rsplit("/", 1)[-1] for item in actions}
    if names != set(published.files):
        raise IntegrityError(f"The Delta log of {port.ref} says version {published.version} holds {sorted(names)}, but "
                             f"its publish recorded {sorted(published.files)}: the port was changed outside Mesh.")
    files = []
    for item in sorted(actions, key=lambda a: a["path"]):
        name = item["path"].rsplit("/", 1)[-1]
        sha256 = data_file_checksum(name)
        if sha256 is None:
            raise IntegrityError(f"Version {published.version} of {port.ref} holds {name}, which has no checksum in its "
                                 "name: it was not written by Mesh.")
        rows = item.get("num_records")
        if rows is None and len(actions) == 1:
            rows = published.rows  # the publish recorded the version's rows
        files.append(DataFile(name, sha256, int(item["size_bytes"]), None if rows is None else int(rows)))
    return Snapshot(published, metadata.id, schema, metadata.description or None, tuple(files))


def _shared_type(kind):
    """A Delta schema type as the parquet response format names it: `timestamp_ntz` (a later Delta type,
    which clients of that format such as delta-sharing 1.4.2 refuse to parse) is `timestamp`. The files
    are not changed: they hold the same naive timestamps, and pandas and pyarrow read them as such."""
    if kind == "timestamp_ntz":
        return "timestamp"
    if isinstance(kind, dict):
        nested = kind.get("type")
        if nested == "struct":
            return {**kind, "fields": [{**field, "type": _shared_type(field["type"])} for field in kind["fields"]]}
        if nested == "array":
            return {**kind, "elementType": _shared_type(kind["elementType"])}
        if nested == "map":
            return {**kind, "keyType": _shared_type(kind["keyType"]), "valueType": _shared_type(kind["valueType"])}
    return kind


class Snapshots:
    """Snapshots built once per (port, version): a published version never changes."""

    def __init__(self, limit: int = 4096):
        self.limit = limit
        self._items: OrderedDict[tuple[str, int], Snapshot] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, port: OutputPort, published: PortVersion) -> Snapshot:
        key = (port.uri, published.version)
        with self._lock:
            found = self._items.get(key)
            if found is not None and found.published.run_id == published.run_id:
                self._items.move_to_end(key)
                return found
        snapshot = build_snapshot(port, published)
        with self._lock:
            self._items[key] = snapshot
            while len(self._items) > self.limit:
                self._items.popitem(last=False)
        return snapshot


def files_for(snapshot: Snapshot, limit_hint: int | None) -> tuple[DataFile, ...]:
    """The files a query answers: all, or with `limitHint` the first ones that cover that many rows
    (a file whose row count is unknown counts as covering it)."""
    if limit_hint is None:
        return snapshot.files
    chosen, rows = [], 0
    for item in snapshot.files:
        if rows >= limit_hint:
            break
        chosen.append(item)
        rows = limit_hint if item.rows is None else rows + item.rows
    return tuple(chosen)


# -- NDJSON lines ------------------------------------------------------------------------

def protocol_action() -> dict:
    return {"protocol": {"minReaderVersion": 1}}


def metadata_action(snapshot: Snapshot, *, with_version: bool = False) -> dict:
    metadata = {
        "id": snapshot.table_id,
        "format": {"provider": "parquet"},
        "schemaString": snapshot.schema_string,
        "partitionColumns": [],
        "configuration": {},
        "size": sum(f.size for f in snapshot.files),
        "numFiles": len(snapshot.files),
    }
    if snapshot.description:
        metadata["description"] = snapshot.description
    if with_version:
        metadata["version"] = snapshot.version
    return {"metaData": metadata}


def file_action(snapshot: Snapshot, item: DataFile, url: str, expires_ms: int) -> dict:
    stats = {"numRecords": item.rows} if item.rows is not None else None
    action = {"url": url, "id": item.sha256, "partitionValues": {}, "size": item.size,
              "version": snapshot.version, "timestamp": snapshot.timestamp_ms, "expirationTimestamp": expires_ms}
    if stats is not None:
        action["stats"] = json.dumps(stats)
    return {"file": action}


def ndjson(actions: Iterable[dict]) -> Iterator[bytes]:
    for action in actions:
        yield json.dumps(action, separators=(",", ":")).encode() + b"\n"
