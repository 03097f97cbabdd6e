"""A data product's output port: a Delta Lake table, one Delta commit per published version.

Publishing writes one Parquet data file whose name carries its SHA-256, then commits it in
one overwrite transaction: that commit is the single commit point. A crash before it leaves
only an unreferenced file, which the next publish deletes; a crash after it leaves the new
version complete. The commit's metadata records the run, the product version, the contract
fingerprint, the row count and the file checksums, so any reader can verify what it reads.
Versions are Delta's own: monotonic, never the clock.

The location is a URI: a local path by default, `s3://bucket/prefix/...` in production, with
credentials from the environment only (`AWS_*` variables, read by delta-rs and Arrow).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Mapping

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mesh_core.errors import IntegrityError, ProductNotPublishedError, StorageError, VersionNotFoundError
from mesh_core.failpoints import failpoint
from mesh_core.ref import ProductRef

FORMAT = "1"  # bump when what Mesh writes into a port changes shape
_PREFIX = "mesh."
_DATA_FILE = re.compile(r"^part-[0-9a-f]{16}-(?P<sha256>[0-9a-f]{64})\.parquet$")
_LOG_DIR = "_delta_log"


@dataclass(frozen=True)
class PortVersion:
    """One published version of a product, as its Delta commit records it."""

    ref: ProductRef
    version: int  # the Delta table version
    run_id: str
    product_version: str
    contract_fingerprint: str
    access: str
    rows: int
    columns: tuple[str, ...]
    files: Mapping[str, str]  # data file name -> SHA-256
    committed_at: datetime  # the writer's clock: shown to people, never used to order versions

    def as_dict(self) -> dict:
        return {
            "product": str(self.ref), "version": self.version, "run_id": self.run_id,
            "product_version": self.product_version, "contract_fingerprint": self.contract_fingerprint,
            "access": self.access, "rows": self.rows, "columns": list(self.columns),
            "files": dict(self.files), "committed_at": self.committed_at.isoformat(),
        }


class OutputPort:
    """The Delta table at `uri` holding every published version of one product."""

    def __init__(self, ref: ProductRef, uri: str):
        self.ref = ref
        self.uri = uri.rstrip("/")

    # -- reading -----------------------------------------------------------------------

    def exists(self) -> bool:
        from deltalake import DeltaTable

        try:
            return DeltaTable.is_deltatable(self.uri)
        except Exception as exc:
            raise self._error("read", exc) from exc

    def history(self, limit: int | None = None) -> list[PortVersion]:
        """Published versions still in the log, newest first (retention commits left out); with
        `limit`, only those among the newest `limit` commits."""
        if not self.exists():
            return []
        from deltalake import DeltaTable

        try:
            commits = DeltaTable(self.uri).history(limit)
        except Exception as exc:
            raise self._error("read the history of", exc) from exc
        return [self._version(commit) for commit in commits if f"{_PREFIX}run_id" in commit]

    def latest(self) -> PortVersion:
        # A publish is followed by at most two retention commits: the newest few commits hold it.
        history = self.history(limit=8) or self.history()
        if not history:
            raise ProductNotPublishedError(
                f"Product {self.ref} has no published version yet (no Delta table at {self.uri}). "
                f"Materialize the '{self.ref.domain}' domain first, e.g. `mesh materialize --domain {self.ref.domain}`."
            )
        return history[0]

    def read(self, version: int) -> pa.Table:
        """The product as of one Delta version, every data file verified against its checksum."""
        fs, root = self._filesystem()
        tables = [self._read_file(fs, root, name, version) for name in self._files(version)]
        if not tables:
            raise VersionNotFoundError(f"Version {version} of {self.ref} at {self.uri} has no data files.")
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def _files(self, version: int) -> list[str]:
        from deltalake import DeltaTable

        try:
            table = DeltaTable(self.uri, version=version)
        except Exception as exc:
            if not self.exists():
                self.latest()  # raises ProductNotPublishedError, which says what to run
            raise VersionNotFoundError(
                f"{self.ref} has no version {version} at {self.uri} ({_cause(exc)}). "
                f"`mesh history {self.ref}` lists the versions it has."
            ) from None
        return [uri.rsplit("/", 1)[-1] for uri in table.file_uris()]

    def _read_file(self, fs: pafs.FileSystem, root: str, name: str, version: int) -> pa.Table:
        path, shown = f"{root}/{name}", f"{self.uri}/{name}"  # `shown` keeps the s3:// scheme
        match = _DATA_FILE.match(name)
        if match is None:
            raise IntegrityError(
                f"Version {version} of {self.ref} references {shown}, which has no checksum in its name: "
                "it was not written by Mesh. Republish the product with Mesh (`mesh materialize --domain "
                f"{self.ref.domain}`) rather than rewriting its port with another engine."
            )
        try:
            with fs.open_input_file(path) as handle:
                data = handle.read()
        except FileNotFoundError:
            raise VersionNotFoundError(
                f"Version {version} of {self.ref} is no longer stored: its file {shown} was removed by "
                f"retention. Read a newer version; `mesh history {self.ref}` lists them."
            ) from None
        except OSError as exc:
            raise StorageError(f"Could not read {shown} (version {version} of {self.ref}): {_cause(exc)}") from exc
        if hashlib.sha256(data).hexdigest() != match["sha256"]:
            raise IntegrityError(
                f"Data file {shown} of {self.ref} version {version} is corrupt: its SHA-256 does not match "
                f"the checksum recorded when it was published. Nothing was read from it. Ask the "
                f"'{self.ref.domain}' owners to republish (`mesh materialize --domain {self.ref.domain}`), "
                "or read an older version."
            )
        try:
            return pq.read_table(pa.BufferReader(data))
        except Exception as exc:  # a checksum match makes this a writer bug, still name the file
            raise IntegrityError(f"Data file {shown} of {self.ref} version {version} is unreadable: {_cause(exc)}") from exc

    # -- writing (the owning domain only, under its publish lock) ----------------------

    def publish(self, table: pa.Table, *, run_id: str, product_version: str, contract_fingerprint: str,
                access: str) -> PortVersion:
        """Write one data file and commit it as the product's new version."""
        from deltalake import CommitProperties, DeltaTable, Schema
        from deltalake.transaction import AddAction, create_table_with_add_actions

        table = _delta_compatible(table)
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer)
        data = buffer.getvalue()
        sha256 = hashlib.sha256(data).hexdigest()
        name = f"part-{uuid.uuid4().hex[:16]}-{sha256}.parquet"
        fs, root = self._filesystem()
        path = f"{root}/{name}"
        try:
            fs.create_dir(root, recursive=True)
            failpoint("port:before-data-file")
            with fs.open_output_stream(path) as out:
                out.write(data)
        except OSError as exc:
            with suppress(OSError):  # a partial file would hold the space a full disk needs back
                fs.delete_file(path)
            raise StorageError(f"Could not write {self.uri}/{name} for {self.ref}: {_cause(exc)}") from exc
        failpoint("port:before-commit")
        add = AddAction(name, data.size, {}, int(time.time() * 1000), True, json.dumps({"numRecords": table.num_rows}))
        metadata = {
            "run_id": run_id, "product_version": product_version, "contract_fingerprint": contract_fingerprint,
            "access": access, "rows": str(table.num_rows), "columns": json.dumps(table.column_names),
            "files": json.dumps({name: sha256}), "format": FORMAT,
        }
        properties = CommitProperties(custom_metadata={_PREFIX + k: v for k, v in metadata.items()})
        try:
            if DeltaTable.is_deltatable(self.uri):
                delta = DeltaTable(self.uri)
                delta.create_write_transaction([add], "overwrite", table.schema, commit_properties=properties)
            else:
                create_table_with_add_actions(self.uri, Schema.from_arrow(table.schema), [add], "error",
                                              commit_properties=properties)
            committed = self.latest()
        except Exception as exc:
            raise self._error("commit a new version to", exc) from exc
        failpoint("port:after-commit")
        return committed

    def remove_uncommitted(self, history: Iterable[PortVersion]) -> list[str]:
        """Delete data files no version ever committed (left by killed publishes) and the
        log's temp files. Safe only under the product's publish lock."""
        from deltalake import DeltaTable

        committed = {name for item in history for name in item.files}
        fs, root = self._filesystem()
        removed = []
        try:
            if self.exists():  # whatever the log's history says, never the current version's files
                committed |= {uri.rsplit("/", 1)[-1] for uri in DeltaTable(self.uri).file_uris()}
            entries = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
            log_entries = fs.get_file_info(pafs.FileSelector(f"{root}/{_LOG_DIR}", allow_not_found=True))
            for info in entries:
                if info.type == pafs.FileType.File and _DATA_FILE.match(info.base_name) and info.base_name not in committed:
                    fs.delete_file(info.path)
                    removed.append(info.base_name)
            for info in log_entries:  # staged writes: delta-rs's _commit_<uuid>.json.tmp, object_store's <name>#<n>
                if info.type == pafs.FileType.File and (info.base_name.endswith(".tmp") or "#" in info.base_name):
                    fs.delete_file(info.path)
                    removed.append(f"{_LOG_DIR}/{info.base_name}")
        except StorageError:
            raise
        except Exception as exc:
            raise self._error("clean up", exc) from exc
        return removed

    def vacuum(self, keep: Iterable[int]) -> list[str]:
        """Delete the files of every version not in `keep` (the current one is always kept)."""
        from deltalake import DeltaTable

        if not self.exists():
            return []
        try:
            delta = DeltaTable(self.uri)
            options = dict(retention_hours=0, enforce_retention_duration=False, keep_versions=sorted(set(keep)))
            # A vacuum writes two commits even when it deletes nothing: only run it when it will.
            if not delta.vacuum(dry_run=True, **options):
                return []
            return delta.vacuum(dry_run=False, **options)
        except Exception as exc:
            raise self._error("apply retention to", exc) from exc

    # -- helpers ----------------------------------------------------------------------

    def _filesystem(self) -> tuple[pafs.FileSystem, str]:
        try:
            return pafs.FileSystem.from_uri(self.uri)
        except Exception as exc:
            raise StorageError(f"Cannot open port location {self.uri} of {self.ref}: {_cause(exc)}") from exc

    def _version(self, commit: Mapping) -> PortVersion:
        get = lambda key, default="": commit.get(_PREFIX + key, default)  # noqa: E731
        return PortVersion(
            ref=self.ref, version=int(commit["version"]), run_id=get("run_id"),
            product_version=get("product_version"), contract_fingerprint=get("contract_fingerprint"),
            access=get("access", "public"), rows=int(get("rows", 0)),
            columns=tuple(json.loads(get("columns", "[]"))), files=json.loads(get("files", "{}")),
            committed_at=datetime.fromtimestamp(int(commit.get("timestamp", 0)) / 1000, tz=timezone.utc),
        )

    def _error(self, action: str, exc: BaseException) -> StorageError:
        return StorageError(f"Could not {action} the port of {self.ref} at {self.uri}: {_cause(exc)}")


def _delta_compatible(table: pa.Table) -> pa.Table:
    """Delta stores timestamps in microseconds (sub-microsecond digits are dropped) and has no
    unsigned integers: cast those, keep the rest."""
    fields = []
    for field in table.schema:
        kind = field.type
        if pa.types.is_timestamp(kind) and kind.unit == "ns":
            kind = pa.timestamp("us", tz=kind.tz)
        elif pa.types.is_unsigned_integer(kind):
            kind = pa.int64()
        fields.append(field.with_type(kind))
    schema = pa.schema(fields, metadata=table.schema.metadata)
    return table if schema.equals(table.schema) else table.cast(schema, safe=False)


def _cause(exc: BaseException) -> str:
    """The operating system's words for what went wrong, without Rust's indentation."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
