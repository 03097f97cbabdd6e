"""A data product's output port: a Delta Lake table, one Delta commit per published version.

Publishing stages the output as Parquet data files of bounded size (streamed: memory holds
one file), each named by its SHA-256, then commits them all in one overwrite transaction:
that commit is the single commit point. A crash before it leaves only unreferenced files,
which the next publish deletes; a crash after it leaves the new version complete. The
commit's metadata records the run, the product version, the contract fingerprint, the row
count and the file checksums, so any reader can verify what it reads. Versions are Delta's
own: monotonic, never the clock.

The location is a URI: a local path by default, `s3://bucket/prefix/...` in production, with
credentials from the environment only (`AWS_*` variables, read by delta-rs and Arrow).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
import uuid
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Iterable, Iterator, Mapping, MutableMapping, Sequence

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mesh_core.errors import (
    AccessDeniedError,
    IntegrityError,
    ProductNotPublishedError,
    ProductOutputError,
    StorageError,
    VersionNotFoundError,
    plain_message,
)
from mesh_core.declare.lifecycle import Lifecycle
from mesh_core.declare.readable import read_findings
from mesh_core.declare.ref import ProductRef
from mesh_core.storage.acting import acting_domain, check_write
from mesh_core.storage.failpoints import failpoint

FORMAT = "1"  # bump when what Mesh writes into a port changes shape
_PREFIX = "mesh."
_DATA_FILE = re.compile(r"^part-[0-9a-f]{16}-(?P<sha256>[0-9a-f]{64})\.parquet$")
_LOG_DIR = "_delta_log"
_COMMIT_FILE = re.compile(r"^\d{20}\.json$")
_PRIVATE_DIR, _PRIVATE_FILE = 0o700, 0o600  # an internal product's local port: its domain's OS user only
_SET_ASIDE_DIR = "_mesh_set_aside"  # Delta Lake's vacuum skips folders starting with "_"
_STAGING_DIR = "_mesh_staging"  # where an engine's own writers (Spark's executors) write an output before `adopt`
_CULPRIT_SEARCH = 20  # older versions tried, on an error path only, to find which commit Delta Lake fails at
TARGET_FILE_SIZE = 128 * 2**20  # bytes per staged data file: big enough for engines, small enough for memory
ROW_GROUP_BYTES = 64 * 2**20  # at most, in-memory bytes of one Parquet row group (a quarter of the target below that)
_HASH_CHUNK = 2**20  # bytes read at a time to verify a data file


def data_file_checksum(name: object) -> str | None:
    """The SHA-256 a data file's name carries (Mesh names every data file it writes by it), else None."""
    match = _DATA_FILE.fullmatch(name) if isinstance(name, str) else None
    return match["sha256"] if match else None


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
    lifecycle: Lifecycle = Lifecycle()  # as declared when published (versions before this was recorded: active)

    def as_dict(self) -> dict:
        return {
            "product": str(self.ref), "version": self.version, "run_id": self.run_id,
            "product_version": self.product_version, "contract_fingerprint": self.contract_fingerprint,
            "access": self.access, "rows": self.rows, "columns": list(self.columns),
            "files": dict(self.files), "committed_at": self.committed_at.isoformat(),
            "lifecycle": self.lifecycle.metadata(),
        }


@dataclass(frozen=True)
class StagedFiles:
    """Data files `OutputPort.stage` wrote into the port and nothing committed yet: readers do not
    see them until `OutputPort.commit`; the next publish's clean-up deletes them if none does."""

    ref: ProductRef
    port_uri: str
    files: Mapping[str, str]  # data file name (part-<16hex>-<sha256>.parquet) -> SHA-256, in write order
    sizes: Mapping[str, int]  # data file name -> bytes
    rows: int
    schema: pa.Schema  # as written (timestamps in microseconds, integers signed)
    file_rows: Mapping[str, int] = field(default_factory=dict)  # data file name -> rows (Delta's numRecords)

    def paths(self) -> list[str]:
        """Full locations, in write order: absolute local paths, or s3://bucket/key."""
        return [f"{self.port_uri}/{name}" for name in self.files]


@dataclass(frozen=True)
class SetAside:
    """What `OutputPort.set_aside_unreadable` moved out of the log, why, and where it is now."""

    versions: tuple[int, ...]  # the published versions that did not read, set aside
    causes: Mapping[int, str]  # version -> why it did not read
    restored: PortVersion | None  # the version the port is back at (None: no version read)
    where: str  # the folder holding their commit files, data files and a set_aside.json record


class OutputPort:
    """The Delta table at `uri` holding every published version of one product.

    A `read_only` port (another mesh's port read through, see `DomainStorage.reading_port`) refuses
    every write (publish, retention, clean-up, set-aside, modes) before it touches a byte."""

    def __init__(self, ref: ProductRef, uri: str, *, read_only: bool = False):
        self.ref = ref
        self.uri = uri.rstrip("/")
        self.read_only = read_only
        self._location: tuple[pafs.FileSystem, str] | None = None

    def _check_writable(self, action: str) -> None:
        if self.read_only:
            raise AccessDeniedError(
                f"Cannot {action} {self.ref} at {self.uri}: it is a read-through port (read-only), the real mesh's "
                "port seen from a sandbox such as `mesh preview`'s. A sandbox reads the real ports and never writes "
                "them; nothing was written.")

    # -- reading -----------------------------------------------------------------------

    def exists(self) -> bool:
        from deltalake import DeltaTable

        try:
            return DeltaTable.is_deltatable(self.uri)
        except Exception as exc:
            raise self._error("read", exc) from exc

    def history(self) -> list[PortVersion]:
        """Published versions still in the log, newest first (retention commits left out).

        Read from the commit files themselves, each named by its version, so an empty or
        damaged commit is reported by name instead of shifting every older version."""
        return list(self._publishes())

    def latest(self) -> PortVersion:
        """The current published version (reads only the newest commits, down to the last publish)."""
        for published in self._publishes():
            return published
        raise ProductNotPublishedError(
            f"Product {self.ref} has no published version yet (nothing published by Mesh at {self.uri}). If it is a "
            f"product of this mesh, materialize its domain first: `mesh materialize --domain {self.ref.domain}`."
        )

    def _publishes(self) -> Iterator[PortVersion]:
        fs, _ = self._filesystem()
        for version, path in self._commits():
            info = self._commit_info(fs, path, version)
            if info is not None and f"{_PREFIX}run_id" in info:
                yield self._version(info, version)

    def _commits(self) -> list[tuple[int, str]]:
        """(version, path) of every commit file in the log, newest first."""
        fs, root = self._filesystem()
        try:
            entries = fs.get_file_info(pafs.FileSelector(f"{root}/{_LOG_DIR}", allow_not_found=True))
        except OSError as exc:
            raise StorageError(f"Could not list {self.uri}/{_LOG_DIR} of {self.ref}: {_cause(exc)}") from exc
        return sorted(((int(info.base_name[:20]), info.path) for info in entries if _COMMIT_FILE.match(info.base_name)),
                      reverse=True)

    def damaged_commit(self, up_to: int | None = None) -> StorageError | None:
        """The error naming the first damaged commit file (at or below `up_to`), or None if all
        parse: Delta Lake's own error for one names neither the file nor the version."""
        fs, _ = self._filesystem()
        for version, path in self._commits():
            if up_to is None or version <= up_to:
                try:
                    self._commit_info(fs, path, version)
                except StorageError as exc:
                    return exc
        return None

    def read(self, version: int, columns: Sequence[str] | None = None, *,
             cache: MutableMapping[tuple[str, int], list] | None = None, reader: str | None = None) -> pa.Table:
        """The product as of one published version, every data file verified against its checksum.

        With `columns`, only those are decoded (the ones the file has; the caller names the missing).
        With `cache`, a version's verified file contents are kept there and read from there
        next time: a run reads each input's files once, however many of its steps read it.
        A consumer's read (`reader`: the domain a `DomainStorage` was made for), and any read
        from another domain's run, must pass the access and lifecycle rules (`check_read`)."""
        self._check_reader(reader)
        key = (self.uri, version)
        data = cache.get(key) if cache is not None else None
        if data is None:
            data = self._verified_files(version)
            if cache is not None:
                cache[key] = data
        tables = [self._decode(buffer, name, version, columns) for name, buffer in data]
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def verified_paths(self, version: int, *, cache: MutableMapping | None = None,
                       reader: str | None = None) -> list[str]:
        """The full locations (absolute paths, or s3://bucket/key) of one published version's data
        files, each verified against its checksum by streaming it (never whole in memory), for an
        engine to read lazily. Access, lifecycle and `cache` as for `read`: a run hashes a version once."""
        self._check_reader(reader)
        key = (self.uri, version, "verified")
        if cache is not None and key in cache:
            return list(cache[key])
        fs, root = self._filesystem()
        names = self._checked_names(version)
        for name in names:
            self._verify_file(fs, root, name, version)
        paths = [f"{self.uri}/{name}" for name in names]
        if cache is not None:
            cache[key] = paths
        return paths

    def dataset(self, version: int, columns: Sequence[str] | None = None, *,
                cache: MutableMapping | None = None, reader: str | None = None):
        """One published version as a `pyarrow.dataset.Dataset` over its verified files, read through
        the port's own filesystem (local or S3): nothing is decoded until an engine scans it. With
        `columns`, only those it has (the caller names the missing)."""
        paths = self.verified_paths(version, cache=cache, reader=reader)
        return self._dataset([path.rsplit("/", 1)[-1] for path in paths], columns=columns)

    def _dataset(self, names: Sequence[str], schema: pa.Schema | None = None, columns: Sequence[str] | None = None):
        import pyarrow.dataset as ds

        fs, root = self._filesystem()
        paths = [f"{root}/{name}" for name in names]
        try:
            if schema is None:  # every file of a version is written with one schema: the first one's
                schema = pq.read_schema(paths[0], filesystem=fs)
            if columns is not None:
                schema = pa.schema([schema.field(c) for c in columns if c in schema.names], metadata=schema.metadata)
            return ds.dataset(paths, schema=schema, format="parquet", filesystem=fs)
        except OSError as exc:
            raise StorageError(f"Could not open the data files of {self.ref} at {self.uri}: {_cause(exc)}") from exc
        except Exception as exc:  # a checksum match makes this a writer bug, still name the port
            raise IntegrityError(f"The data files of {self.ref} at {self.uri} are unreadable: {_cause(exc)}") from exc

    def _check_reader(self, reader: str | None) -> None:
        acting = acting_domain(reader or self.ref.domain)
        if reader is not None or acting != self.ref.domain:
            self.check_read(acting)

    def check_read(self, reader: str) -> None:
        """Refuse `reader` (a domain) what `mesh lint` would refuse its products: another domain's
        non-public product, a retired one, another domain's draft, one deprecated past its date.
        Decided by `mesh_core.declare.readable` from what the current version was published as."""
        latest = self.latest()
        errors, _ = read_findings(reader, self.ref, latest.access, latest.lifecycle, date.today())
        if errors:
            raise AccessDeniedError(f"Domain '{reader}' may not read {self.ref}: "
                                    + " ".join(f"[{v.rule}] {v.message} Fix: {v.fix}" for v in errors))

    def _verified_files(self, version: int) -> list[tuple[str, pa.Buffer]]:
        fs, root = self._filesystem()
        return [(name, self._read_file(fs, root, name, version)) for name in self._checked_names(version)]

    def _checked_names(self, version: int) -> list[str]:
        """The version's data files, as the Delta log lists them, refused unless its publish recorded the same."""
        published = self._published(version)
        names = self._snapshot_files(version)
        if set(names) != set(published.files):
            raise IntegrityError(
                f"The Delta log of {self.ref} at {self.uri} says version {version} holds {sorted(names)}, but its "
                f"publish recorded {sorted(published.files)}: the port was changed outside Mesh. {self._damage_fix()}"
            )
        return names

    def published(self, version: int) -> PortVersion:
        """One published version, as its commit records it (a retention or other bookkeeping
        commit is not one: VersionNotFoundError, as for a version never committed)."""
        return self._published(version)

    def read_data_file(self, version: int, name: str) -> pa.Buffer:
        """One data file of a published version, its bytes verified against the checksum in its name:
        for a server handing the file itself to a reader. A name that version does not hold is refused
        before any path is built from it."""
        published = self._published(version)
        if name not in published.files:
            raise VersionNotFoundError(f"Version {version} of {self.ref} holds no data file {name!r}; "
                                       f"its files: {', '.join(sorted(published.files))}.")
        fs, root = self._filesystem()
        return self._read_file(fs, root, name, version)

    def data_files(self) -> set[str]:
        """The names of the data files stored in the port now (to tell which versions are readable)."""
        fs, root = self._filesystem()
        try:
            entries = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
        except OSError as exc:
            raise StorageError(f"Could not list {self.uri} of {self.ref}: {_cause(exc)}") from exc
        return {info.base_name for info in entries if info.type == pafs.FileType.File}

    def _published(self, version: int) -> PortVersion:
        if not isinstance(version, int) or version < 0:
            raise VersionNotFoundError(f"{version!r} is not a version: versions are whole numbers >= 0.")
        fs, root = self._filesystem()
        path = f"{root}/{_LOG_DIR}/{version:020d}.json"
        try:
            found = fs.get_file_info(path).type == pafs.FileType.File
        except OSError as exc:
            raise StorageError(f"Could not read {self.uri}/{_LOG_DIR} of {self.ref}: {_cause(exc)}") from exc
        info = self._commit_info(fs, path, version) if found else None
        if info is None or f"{_PREFIX}run_id" not in info:
            self.latest()  # no port at all: raises ProductNotPublishedError, which says what to run
            raise VersionNotFoundError(
                f"{self.ref} has no published version {version} at {self.uri} (retention and other bookkeeping "
                f"commits are not published versions). `mesh history {self.ref}` lists the versions it has."
            )
        return self._version(info, version)

    def _snapshot_files(self, version: int) -> list[str]:
        from deltalake import DeltaTable

        try:
            return [uri.rsplit("/", 1)[-1] for uri in DeltaTable(self.uri, version=version).file_uris()]
        except Exception as exc:
            raise self.damaged_commit(version) or self._unloadable(version, exc) from exc

    def _unloadable(self, version: int, exc: BaseException) -> StorageError:
        """Delta Lake cannot load `version` though every commit file parses: name the first commit
        it fails at (the one after the newest version that still loads), since its error does not."""
        from deltalake import DeltaTable

        first_bad, loads = version, False
        for older in range(version - 1, max(version - _CULPRIT_SEARCH, 0) - 1, -1):
            try:
                DeltaTable(self.uri, version=older)
                loads = True
                break
            except Exception:
                first_bad = older
        # Damage only if an older version loads (else the store itself may be unreachable) or there is none.
        kind = IntegrityError if loads or version == 0 else StorageError
        return kind(
            f"Could not load version {version} of {self.ref}: Delta Lake fails at the commit file of version {first_bad}, "
            f"{self.uri}/{_LOG_DIR}/{first_bad:020d}.json ({_cause(exc)}). {self._damage_fix()}")

    def _commit_info(self, fs: pafs.FileSystem, path: str, version: int) -> dict | None:
        """The commitInfo of one commit file; None for a commit without one (another engine's)."""
        shown = f"{self.uri}/{_LOG_DIR}/{version:020d}.json"
        try:
            with fs.open_input_stream(path) as handle:
                text = handle.read().decode(errors="replace")  # garbage then fails as JSON, below
        except OSError as exc:
            raise StorageError(f"Could not read {shown} of {self.ref}: {_cause(exc)}. {self._damage_fix()}") from exc
        lines = [line for line in text.splitlines() if line.strip()]
        damaged = f"The Delta log of {self.ref} is damaged: the commit file of version {version}, {shown},"
        if not lines:
            raise IntegrityError(f"{damaged} is empty. {self._damage_fix()}")
        info = None
        for number, line in enumerate(lines, 1):  # every line: a cut-off action after a whole commitInfo is damage too
            try:
                action = json.loads(line)
            except ValueError as exc:
                raise IntegrityError(f"{damaged} is not valid JSON at line {number} ({exc}). {self._damage_fix()}") from None
            if not isinstance(action, dict):
                raise IntegrityError(f"{damaged} holds {type(action).__name__} at line {number}, not a Delta action. "
                                   f"{self._damage_fix()}")
            if "commitInfo" in action and info is None:
                info = action["commitInfo"]
        return info

    def _damage_fix(self) -> str:
        return (f"Fix: `mesh repair --domain {self.ref.domain}` sets the unreadable version aside (in "
                f"{self.uri}/{_SET_ASIDE_DIR}/) and brings the port back to its newest readable version; "
                "or restore the file from a backup.")

    def _read_file(self, fs: pafs.FileSystem, root: str, name: str, version: int) -> pa.Buffer:
        expected = self._checksum_in(name, version)
        try:
            with fs.open_input_file(f"{root}/{name}") as handle:
                data = handle.read_buffer()  # Arrow's buffer: hashed and decoded without a copy
        except OSError as exc:
            raise self._unreadable_file(name, version, exc) from (None if isinstance(exc, FileNotFoundError) else exc)
        if hashlib.sha256(memoryview(data)).hexdigest() != expected:
            raise self._corrupt(name, version)
        return data

    def _verify_file(self, fs: pafs.FileSystem, root: str, name: str, version: int) -> None:
        """Check one data file against its checksum, reading it in chunks: memory stays at one chunk."""
        expected = self._checksum_in(name, version)
        digest = hashlib.sha256()
        try:
            with fs.open_input_stream(f"{root}/{name}") as handle:
                while chunk := handle.read(_HASH_CHUNK):
                    digest.update(chunk)
        except OSError as exc:
            raise self._unreadable_file(name, version, exc) from (None if isinstance(exc, FileNotFoundError) else exc)
        if digest.hexdigest() != expected:
            raise self._corrupt(name, version)

    def _checksum_in(self, name: str, version: int) -> str:
        checksum = data_file_checksum(name)
        if checksum is None:
            raise IntegrityError(
                f"Version {version} of {self.ref} references {self.uri}/{name}, which has no checksum in its name: "
                "it was not written by Mesh. Republish the product with Mesh (`mesh materialize --domain "
                f"{self.ref.domain}`) rather than rewriting its port with another engine."
            )
        return checksum

    def _unreadable_file(self, name: str, version: int, exc: OSError) -> StorageError:
        shown = f"{self.uri}/{name}"  # keeps the s3:// scheme
        if not isinstance(exc, FileNotFoundError):
            return StorageError(f"Could not read {shown} (version {version} of {self.ref}): {_cause(exc)}")
        if self.latest().version == version:  # retention never removes the current version: someone else did
            return VersionNotFoundError(
                f"The current version {version} of {self.ref} is not readable: its file {shown} is missing "
                f"(deleted outside Mesh). Ask the '{self.ref.domain}' owners to republish "
                f"(`mesh materialize --domain {self.ref.domain}`)."
            )
        return VersionNotFoundError(
            f"Version {version} of {self.ref} is no longer stored: its file {shown} was removed by "
            f"retention (or outside Mesh). Read a newer version; `mesh history {self.ref}` lists them."
        )

    def _corrupt(self, name: str, version: int) -> IntegrityError:
        return IntegrityError(
            f"Data file {self.uri}/{name} of {self.ref} version {version} is corrupt: its SHA-256 does not match "
            f"the checksum recorded when it was published. Nothing was read from it. Ask the "
            f"'{self.ref.domain}' owners to republish (`mesh materialize --domain {self.ref.domain}`), "
            "or read an older version."
        )

    def _decode(self, data: pa.Buffer, name: str, version: int, columns: Sequence[str] | None) -> pa.Table:
        try:
            if columns is None:
                return pq.read_table(pa.BufferReader(data))
            stored = pq.read_schema(pa.BufferReader(data)).names
            return pq.read_table(pa.BufferReader(data), columns=[c for c in columns if c in stored])
        except Exception as exc:  # a checksum match makes this a writer bug, still name the file
            raise IntegrityError(f"Data file {self.uri}/{name} of {self.ref} version {version} is unreadable: "
                                 f"{_cause(exc)}") from exc

    # -- writing (the owning domain only, under its publish lock) ----------------------

    def publish(self, table: pa.Table, *, run_id: str, product_version: str, contract_fingerprint: str,
                access: str, lifecycle: Lifecycle = Lifecycle()) -> PortVersion:
        """Stage `table` and commit it as the product's new version (the commit point: only a run
        of the product's own domain, or an operator outside any run, gets here)."""
        staged = self.stage(table, access=access)
        return self.commit(staged, run_id=run_id, product_version=product_version,
                           contract_fingerprint=contract_fingerprint, access=access, lifecycle=lifecycle)

    def stage(self, data: "pa.Table | pa.RecordBatchReader", *, access: str,
              target_file_size: int = TARGET_FILE_SIZE) -> StagedFiles:
        """Write `data` (a table, or any Arrow stream, read once) as Parquet data files of about
        `target_file_size` bytes each, none committed yet: invisible to readers until `commit`.

        Memory holds one file at a time (it is hashed, then written under its checksum's name).
        A stream that raises, or a failed write, deletes the files written so far and the error
        propagates; an empty stream stages one empty file, so its schema is kept."""
        self._check_writable("publish")
        check_write(self.ref.domain, f"{self.ref}'s port")
        if target_file_size <= 0:
            raise ValueError(f"target_file_size must be a positive number of bytes, not {target_file_size!r}.")
        reader = _as_reader(data, self.ref)
        written, _ = _delta_schema(reader.schema, self.ref)  # refusals before a byte is written
        fs, root = self._filesystem()
        parts = _Parts(self, fs, root, written, target=target_file_size, private=access != "public")
        try:
            failpoint("port:before-data-file")
            for batch in reader:
                parts.add(_cast_batch(batch, written, self.ref))
            parts.close()
        except BaseException:
            parts.delete()
            raise
        return StagedFiles(self.ref, self.uri, dict(parts.files), dict(parts.sizes), parts.rows, written,
                           dict(parts.file_rows))

    def commit(self, staged: StagedFiles, *, run_id: str, product_version: str, contract_fingerprint: str,
               access: str, lifecycle: Lifecycle = Lifecycle()) -> PortVersion:
        """Commit every staged file as the product's new version, in one Delta overwrite: the one
        commit point. Its metadata records the run, the versions, the rows and each file's checksum."""
        self._check_writable("publish")
        from deltalake import CommitProperties, DeltaTable, Schema
        from deltalake.transaction import AddAction, create_table_with_add_actions

        check_write(self.ref.domain, f"{self.ref}'s port")
        self._check_staged_here(staged, "commit")
        try:
            delta_schema = Schema.from_arrow(_delta_schema(staged.schema, self.ref)[1])
        except Exception as exc:
            raise ProductOutputError(f"{self.ref} cannot be published: Delta Lake cannot store its schema "
                                     f"({_cause(exc)}). Convert the column it names in the product.") from None
        failpoint("port:before-commit")
        now = int(time.time() * 1000)
        adds = [AddAction(name, staged.sizes[name], {}, now, True,
                          json.dumps({"numRecords": staged.file_rows.get(name, staged.rows)}))
                for name in staged.files]
        metadata = {
            "run_id": run_id, "product_version": product_version, "contract_fingerprint": contract_fingerprint,
            "access": access, "rows": str(staged.rows), "columns": json.dumps(staged.schema.names),
            "files": json.dumps(dict(staged.files)), "format": FORMAT, "lifecycle": json.dumps(lifecycle.metadata()),
        }
        properties = CommitProperties(custom_metadata={_PREFIX + k: v for k, v in metadata.items()})
        try:
            if DeltaTable.is_deltatable(self.uri):
                delta = DeltaTable(self.uri)
                delta.create_write_transaction(adds, "overwrite", delta_schema, commit_properties=properties)
            else:
                create_table_with_add_actions(self.uri, delta_schema, adds, "error", commit_properties=properties)
        except Exception as exc:
            raise self._error("commit a new version to", exc) from exc
        if access != "public":  # what Delta Lake just wrote, made with the umask's modes
            with suppress(StorageError):  # committed is published; the folder is 0700 already, and the caller retries
                self.keep_private()
        failpoint("port:after-commit")
        return self.latest()  # outside the try: once committed, no error may call the commit failed

    def staging_folder(self) -> str:
        """A new folder in the port (its location: a path, or s3://...) for an engine's own writers (Spark's
        executors) to write an output's Parquet files into; `adopt` makes them staged files. Invisible to
        readers; a folder left by a killed publish is deleted by the next one's clean-up."""
        self._check_writable("publish")
        check_write(self.ref.domain, f"{self.ref}'s port")
        fs, root = self._filesystem()
        try:
            fs.create_dir(root, recursive=True)
        except OSError as exc:
            raise StorageError(f"Could not create the port of {self.ref} at {self.uri}: {_cause(exc)}") from exc
        return f"{self.uri}/{_STAGING_DIR}/{uuid.uuid4().hex}"

    def adopt(self, folder: str, *, access: str) -> StagedFiles:
        """The Parquet files a finished engine job wrote into `folder` (from `staging_folder`), as staged
        files of this port: each is hashed (streamed), its footer read (rows, schema: every file the
        same, one Delta can store), and moved into the port under its checksum's name; the folder is
        then deleted. A job that did not finish (no _SUCCESS marker), an unreadable file or a schema
        that differs deletes the folder and what was moved, and raises naming the product."""
        self._check_writable("publish")
        check_write(self.ref.domain, f"{self.ref}'s port")
        fs, root = self._filesystem()
        prefix = f"{self.uri}/{_STAGING_DIR}/"
        if not folder.startswith(prefix) or "/" in folder[len(prefix):]:
            raise StorageError(f"Cannot adopt {folder} into the port of {self.ref}: adopt only a folder from its staging_folder().")
        where = f"{root}/{_STAGING_DIR}/{folder[len(prefix):]}"
        moved: list[str] = []
        try:
            entries = fs.get_file_info(pafs.FileSelector(where, allow_not_found=True))
            names = {info.base_name: info for info in entries}
            if "_SUCCESS" not in names:
                raise ProductOutputError(f"{self.ref}'s engine job did not finish writing its output into {folder} "
                                         "(no _SUCCESS marker). Nothing was published; consumers keep the last version.")
            data = sorted(n for n, info in names.items()
                          if info.type == pafs.FileType.File and n.endswith(".parquet") and not n.startswith(("_", ".")))
            if not data:
                raise ProductOutputError(f"{self.ref}'s engine job wrote no Parquet file into {folder}. Nothing was published.")
            files, sizes, file_rows, schema, rows = {}, {}, {}, None, 0
            for name in data:
                path = f"{where}/{name}"
                sha256, size, count, found = _inspect_parquet(fs, path, self.ref)
                found = found.remove_metadata()
                if schema is None:
                    schema = _delta_schema(found, self.ref)[0]
                    if not found.equals(schema):
                        raise ProductOutputError(
                            f"{self.ref}'s engine wrote columns Delta Lake readers cannot take as they are ({found}); "
                            "write timestamps in microseconds and integers signed. Nothing was published.")
                elif not found.equals(schema):
                    raise ProductOutputError(f"{self.ref}'s engine wrote files with different schemas ({name}). Nothing was published.")
                target = f"part-{uuid.uuid4().hex[:16]}-{sha256}.parquet"
                fs.move(path, f"{root}/{target}")
                moved.append(target)
                if access != "public" and isinstance(fs, pafs.LocalFileSystem):
                    os.chmod(f"{root}/{target}", _PRIVATE_FILE)
                files[target], sizes[target], file_rows[target] = sha256, size, count
                rows += count
        except BaseException as exc:
            for name in moved:
                with suppress(OSError):
                    fs.delete_file(f"{root}/{name}")
            with suppress(OSError):
                fs.delete_dir(where)
            if isinstance(exc, (ProductOutputError, StorageError)) or not isinstance(exc, Exception):
                raise
            raise self._error("take the engine's output files into", exc) from exc
        with suppress(OSError):
            fs.delete_dir(where)
        if access != "public":
            with suppress(StorageError):
                self.keep_private()
        return StagedFiles(self.ref, self.uri, files, sizes, rows, schema, file_rows)

    def drop_staging(self, folder: str) -> None:
        """Delete a folder from `staging_folder` and what is in it (an engine job that failed)."""
        prefix = f"{self.uri}/{_STAGING_DIR}/"
        if folder.startswith(prefix) and "/" not in folder[len(prefix):]:
            fs, root = self._filesystem()
            with suppress(OSError):
                fs.delete_dir(f"{root}/{_STAGING_DIR}/{folder[len(prefix):]}")

    def discard(self, staged: StagedFiles) -> None:
        """Delete staged files. A file the port's current version holds is kept: a commit that
        raised may still have landed, and a committed file is never deleted here."""
        self._check_writable("discard staged files of")
        check_write(self.ref.domain, f"{self.ref}'s port")
        self._check_staged_here(staged, "discard")
        from deltalake import DeltaTable

        fs, root = self._filesystem()
        try:
            committed = {uri.rsplit("/", 1)[-1] for uri in DeltaTable(self.uri).file_uris()} if self.exists() else set()
            for name in staged.files:
                if name not in committed:
                    with suppress(FileNotFoundError):
                        fs.delete_file(f"{root}/{name}")
        except StorageError:
            raise
        except Exception as exc:
            raise self._error("discard the staged files of", exc) from exc

    def staged_dataset(self, staged: StagedFiles):
        """The staged files as one Arrow dataset, over the port's own filesystem (local or S3)."""
        self._check_staged_here(staged, "read")
        return self._dataset(list(staged.files), staged.schema)

    def copy_staged(self, staged: StagedFiles, folder: str) -> list[str]:
        """Copy the staged files into the local `folder` (streamed, one file at a time); their paths."""
        self._check_staged_here(staged, "copy")
        fs, root = self._filesystem()
        copies = []
        for name in staged.files:
            target = os.path.join(folder, name)
            try:
                pafs.copy_files(f"{root}/{name}", target, source_filesystem=fs,
                                destination_filesystem=pafs.LocalFileSystem())
            except OSError as exc:
                raise StorageError(f"Could not copy staged file {self.uri}/{name} of {self.ref} to {folder} for its "
                                   f"audit: {_cause(exc)}") from exc
            copies.append(target)
        return copies

    def _check_staged_here(self, staged: StagedFiles, action: str) -> None:
        if staged.port_uri != self.uri or staged.ref != self.ref:
            raise StorageError(f"Cannot {action} files staged for {staged.ref} at {staged.port_uri} through the port "
                               f"of {self.ref} at {self.uri}: stage and commit through the same port.")

    def set_aside_unreadable(self) -> "SetAside | None":
        """If the current version does not read back whole (an empty schema no reader can scan,
        a damaged commit file, a corrupt or missing data file), move it, with every commit after
        the newest version that does read, into `_mesh_set_aside/` in the port, and the data
        files no remaining version references with it. Nothing is deleted; the port is then at
        that newest readable version (or empty, if none reads). None if the current version
        reads. Safe only under the product's publish lock."""
        self._check_writable("set aside versions of")
        check_write(self.ref.domain, f"{self.ref}'s port")
        commits = self._commits()
        fs, root = self._filesystem()
        causes: dict[int, str] = {}
        good: PortVersion | None = None
        for version, path in commits:  # newest first: stop at the first published version that reads whole
            try:
                info = self._commit_info(fs, path, version)
                if info is None or f"{_PREFIX}run_id" not in info:
                    continue  # a bookkeeping commit (retention): set aside only if above a bad version
                self.read(version)
            except (IntegrityError, VersionNotFoundError) as exc:  # damage; anything else (a network error) is raised
                causes[version] = str(exc)
                continue
            good = self._version(info, version)
            break
        if not causes:
            return None
        kept = good.version if good is not None else -1
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        folder = f"{_SET_ASIDE_DIR}/{max(causes)}-{stamp}"
        referenced = {name for item in self._kept_history(kept) for name in item.files}
        try:
            fs.create_dir(f"{root}/{folder}/{_LOG_DIR}", recursive=True)
            # Data files first: a crash after this leaves the bad commit unreadable, and repair runs again.
            for info in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
                if info.type == pafs.FileType.File and _DATA_FILE.match(info.base_name) and info.base_name not in referenced:
                    fs.move(info.path, f"{root}/{folder}/{info.base_name}")
            for info in fs.get_file_info(pafs.FileSelector(f"{root}/{_LOG_DIR}", allow_not_found=True)):
                number = info.base_name[:20]
                above = number.isdigit() and int(number) > kept  # commits and checkpoints after the kept version
                if info.type == pafs.FileType.File and (above or info.base_name == "_last_checkpoint"):
                    fs.move(info.path, f"{root}/{folder}/{_LOG_DIR}/{info.base_name}")
            with fs.open_output_stream(f"{root}/{folder}/set_aside.json") as out:
                out.write(json.dumps({"product": str(self.ref), "set_aside": sorted(causes), "causes": causes,
                                      "restored_version": good.version if good else None, "at": stamp}, indent=2).encode())
        except OSError as exc:
            raise StorageError(f"Could not set aside the unreadable version(s) {sorted(causes)} of {self.ref} "
                               f"into {self.uri}/{folder}: {_cause(exc)}") from exc
        return SetAside(tuple(sorted(causes)), causes, good, f"{self.uri}/{folder}")

    def _kept_history(self, up_to: int) -> list[PortVersion]:
        """Published versions at or below `up_to` whose commit files parse (the ones that stay)."""
        fs, _ = self._filesystem()
        kept = []
        for version, path in self._commits():
            if version <= up_to:
                with suppress(StorageError):
                    info = self._commit_info(fs, path, version)
                    if info is not None and f"{_PREFIX}run_id" in info:
                        kept.append(self._version(info, version))
        return kept

    def keep_private(self) -> None:
        """Owner-only modes (0700 folders, 0600 files) on everything in a local port, whatever the
        umask: an internal product's port is its domain's alone. The port folder is made 0700
        first, so nothing inside is reachable while a file still has the umask's mode. Object
        stores have no modes: a bucket policy keeps them private."""
        self._check_writable("change the file modes of")
        fs, root = self._filesystem()
        if not isinstance(fs, pafs.LocalFileSystem):
            return
        try:
            os.makedirs(root, exist_ok=True)
            os.chmod(root, _PRIVATE_DIR)
            for folder, dirs, files in os.walk(root):
                for name, mode in [*((d, _PRIVATE_DIR) for d in dirs), *((f, _PRIVATE_FILE) for f in files)]:
                    path = os.path.join(folder, name)
                    if stat.S_IMODE(os.lstat(path).st_mode) != mode:
                        os.chmod(path, mode)
        except FileNotFoundError:  # a staged file renamed meanwhile: the next publish sets the new one
            pass
        except OSError as exc:
            raise StorageError(f"Could not make the port of {self.ref} at {self.uri} private (0700/0600): "
                               f"{_cause(exc)}") from exc

    def remove_uncommitted(self, history: Iterable[PortVersion]) -> list[str]:
        """Delete data files no version ever committed (left by killed publishes) and the
        log's temp files. Safe only under the product's publish lock."""
        self._check_writable("clean up")
        check_write(self.ref.domain, f"{self.ref}'s port")
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
            if any(info.base_name == _STAGING_DIR for info in entries):  # engine writes of killed publishes
                fs.delete_dir(f"{root}/{_STAGING_DIR}")
                removed.append(f"{_STAGING_DIR}/")
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
        self._check_writable("apply retention to")
        check_write(self.ref.domain, f"{self.ref}'s port")
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

    @property
    def is_local(self) -> bool:
        """Whether the port is a local folder (engines then read its files by path)."""
        return isinstance(self._filesystem()[0], pafs.LocalFileSystem)

    def _filesystem(self) -> tuple[pafs.FileSystem, str]:
        if self._location is None:  # built once: an S3 filesystem costs a little to set up
            self._location = self._open_location()
        return self._location

    def _open_location(self) -> tuple[pafs.FileSystem, str]:
        try:
            return pafs.FileSystem.from_uri(self.uri)
        except Exception as exc:
            raise StorageError(f"Cannot open port location {self.uri} of {self.ref}: {_cause(exc)}") from exc

    def _version(self, commit: Mapping, version: int) -> PortVersion:
        get = lambda key, default="": commit.get(_PREFIX + key, default)  # noqa: E731
        try:
            return PortVersion(
                ref=self.ref, version=version, run_id=get("run_id"),
                product_version=get("product_version"), contract_fingerprint=get("contract_fingerprint"),
                access=get("access", "public"), rows=int(get("rows", 0)),
                columns=tuple(json.loads(get("columns", "[]"))), files=json.loads(get("files", "{}")),
                committed_at=datetime.fromtimestamp(int(commit.get("timestamp", 0)) / 1000, tz=timezone.utc),
                lifecycle=Lifecycle.from_metadata(json.loads(get("lifecycle", "{}"))),
            )
        except (TypeError, ValueError, AttributeError) as exc:
            raise IntegrityError(f"The Delta log of {self.ref} is damaged: the metadata of version {version} at "
                               f"{self.uri} is unreadable ({exc}). {self._damage_fix()}") from None

    def _error(self, action: str, exc: BaseException) -> StorageError:
        if not isinstance(exc, OSError):  # Delta Lake failed: if a commit file is damaged, name it
            with suppress(StorageError):
                damaged = self.damaged_commit()
                if damaged is not None:
                    return damaged
        return StorageError(f"Could not {action} the port of {self.ref} at {self.uri}: {_cause(exc)}")


class _Parts:
    """The Parquet data files one `stage` writes: batches are buffered into row groups, row
    groups into one in-memory file, which is hashed and written under its checksum's name once
    it would outgrow the target size. Memory: about one file plus one row group."""

    def __init__(self, port: OutputPort, fs: pafs.FileSystem, root: str, schema: pa.Schema, *, target: int,
                 private: bool):
        self.port, self.fs, self.root, self.schema, self.private = port, fs, root, schema, private
        self.target = target
        self.files: dict[str, str] = {}
        self.sizes: dict[str, int] = {}
        self.file_rows: dict[str, int] = {}
        self.rows = 0
        self._pending: list[pa.RecordBatch] = []
        self._pending_bytes = 0
        self._sink: pa.BufferOutputStream | None = None
        self._writer: pq.ParquetWriter | None = None
        self._part_rows = 0
        self._prepared = False

    @property
    def _row_group_bytes(self) -> int:  # in memory, before compression: a few row groups make a file
        return max(1, min(self.target // 4, ROW_GROUP_BYTES))

    def add(self, batch: pa.RecordBatch) -> None:
        # Sliced (zero-copy) to fill the row group exactly, so no file outgrows its target by a whole batch.
        row_bytes = batch.nbytes / batch.num_rows if batch.num_rows else 0
        while True:
            room = self._row_group_bytes - self._pending_bytes
            fits = batch.num_rows if row_bytes == 0 else max(1, int(room // row_bytes))
            piece, batch = batch.slice(0, fits), batch.slice(fits)
            self._pending.append(piece)
            self._pending_bytes += piece.num_rows * row_bytes
            if self._pending_bytes >= self._row_group_bytes:
                self._write_row_group()
            if batch.num_rows == 0:
                return

    def close(self) -> None:
        if self._pending:
            self._write_row_group()
        if self._writer is not None or not self.files:  # an empty stream: one empty file keeps the schema
            self._finish_part()

    def _write_row_group(self) -> None:
        if self._writer is None:
            self._sink = pa.BufferOutputStream()
            self._writer = pq.ParquetWriter(self._sink, self.schema)
        before = self._sink.tell()
        table = pa.Table.from_batches(self._pending, self.schema)
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self._part_rows += table.num_rows
        self._pending, self._pending_bytes = [], 0
        # Close the file when one more row group like this one would take it past the target.
        if self._sink.tell() + (self._sink.tell() - before) > self.target:
            self._finish_part()

    def _finish_part(self) -> None:
        if self._writer is None:
            self._sink = pa.BufferOutputStream()
            self._writer = pq.ParquetWriter(self._sink, self.schema)
        self._writer.close()
        data = self._sink.getvalue()
        self._writer = self._sink = None
        sha256 = hashlib.sha256(memoryview(data)).hexdigest()
        name = f"part-{uuid.uuid4().hex[:16]}-{sha256}.parquet"
        self._write(name, data)
        self.files[name], self.sizes[name], self.file_rows[name] = sha256, data.size, self._part_rows
        self.rows += self._part_rows
        self._part_rows = 0

    def _write(self, name: str, data: pa.Buffer) -> None:
        path = f"{self.root}/{name}"
        self.files.setdefault(name, "")  # from here on `delete` removes it, even half-written
        try:
            if not self._prepared:
                self.fs.create_dir(self.root, recursive=True)
                if self.private:  # private before the first byte lands in it
                    self.port.keep_private()
                self._prepared = True
            with self.fs.open_output_stream(path) as out:
                out.write(data)
            if self.private and isinstance(self.fs, pafs.LocalFileSystem):
                os.chmod(path, _PRIVATE_FILE)
        except OSError as exc:
            raise StorageError(f"Could not write {self.port.uri}/{name} for {self.port.ref}: {_cause(exc)}") from exc

    def delete(self) -> None:
        """Remove every file written so far (a partial one would hold the space a full disk needs back)."""
        if self._writer is not None:
            with suppress(Exception):
                self._writer.close()
        self._writer = self._sink = None
        for name in self.files:
            with suppress(OSError):
                self.fs.delete_file(f"{self.root}/{name}")
        self.files.clear()


def _inspect_parquet(fs: pafs.FileSystem, path: str, ref: ProductRef) -> tuple[str, int, int, pa.Schema]:
    """(SHA-256, bytes, rows, Arrow schema) of a Parquet file, read once in chunks (never whole in memory)."""
    digest, size = hashlib.sha256(), 0
    with fs.open_input_stream(path) as stream:
        while chunk := stream.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    try:
        with fs.open_input_file(path) as handle:
            metadata = pq.ParquetFile(handle).metadata
            return digest.hexdigest(), size, metadata.num_rows, metadata.schema.to_arrow_schema()
    except (pa.ArrowInvalid, OSError) as exc:
        raise ProductOutputError(f"{ref}'s engine wrote {path}, which is not a readable Parquet file: {_cause(exc)}. "
                                 "Nothing was published.") from None


def _as_reader(data: object, ref: ProductRef) -> pa.RecordBatchReader:
    """A table or any Arrow stream (`__arrow_c_stream__`) as a reader of record batches, never collected."""
    if isinstance(data, pa.RecordBatchReader):
        return data
    if isinstance(data, pa.Table):
        return data.to_reader()
    if hasattr(data, "__arrow_c_stream__"):
        return pa.RecordBatchReader.from_stream(data)
    raise ProductOutputError(f"{ref} cannot be published from a {type(data).__name__}: stage a pyarrow Table, a "
                             "RecordBatchReader or any object with __arrow_c_stream__ (a Polars or DuckDB result).")


def _delta_schema(schema: pa.Schema, ref: ProductRef) -> tuple[pa.Schema, pa.Schema]:
    """The schema as written (timestamps in microseconds, no unsigned integers) and the schema
    declared to Delta (time zones as UTC, categories as their values). Refuses, naming the
    column, what no reader could open and what Delta cannot store, before a byte is written."""
    problems = []
    if len(schema) == 0:
        problems.append("it has no columns; return the columns its contract declares")
    names = schema.names  # a new list on each access: read it once (10k columns took 16 s here)
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        problems.append(f"column(s) {repeated[:5]!r} appear more than once; rename or drop the copies")
    if problems:
        raise ProductOutputError(f"{ref} cannot be published: its output is not a table a reader can open: "
                                 + "; ".join(problems) + ". Nothing was written; consumers keep the last version.")
    fields, declared = [], []
    for field in schema:
        kind = stored = field.type
        if pa.types.is_timestamp(kind):
            kind = pa.timestamp("us", tz=kind.tz)
            stored = pa.timestamp("us", tz="UTC" if kind.tz else None)  # Delta keeps instants in UTC
        elif pa.types.is_unsigned_integer(kind):
            kind = stored = pa.int64()
        elif pa.types.is_dictionary(kind):
            stored = kind.value_type
        elif pa.types.is_duration(kind) or pa.types.is_time(kind):
            raise ProductOutputError(
                f"{ref} cannot be published: column '{field.name}' is a {kind}, which Delta Lake cannot store. "
                "Convert it in the product, e.g. to seconds with `.dt.total_seconds()`, or to a string."
            )
        fields.append(field.with_type(kind))
        declared.append(field.with_type(stored))
    return pa.schema(fields, metadata=schema.metadata), pa.schema(declared)


def _cast_batch(batch: pa.RecordBatch, schema: pa.Schema, ref: ProductRef) -> pa.RecordBatch:
    """One batch in the written schema: a safe cast, refused (naming the column) if it would change a value."""
    if batch.schema.equals(schema):
        return batch
    columns = []
    for column, have, want in zip(batch.columns, batch.schema, schema):
        try:  # column by column, so a refusal names the column that failed
            columns.append(column if have.type == want.type else column.cast(want.type))  # safe: never truncates
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ProductOutputError(
                f"{ref} cannot be published without changing values in column '{want.name}' ({_cause(exc)}). Delta "
                "Lake stores timestamps in microseconds and integers signed: round the column (e.g. "
                "`.dt.floor('us')`) or keep it in range in the product."
            ) from None
    return pa.RecordBatch.from_arrays(columns, schema=schema)


_MAX_CAUSE = 300
# Where a Rust backtrace starts: its header, or its first numbered frame ("   0: <unknown>").
_BACKTRACE = re.compile(r"\n\s*(?:Stack backtrace|Backtrace|\d+: )")


def _cause(exc: BaseException) -> str:
    """What the library or the operating system said, on one line: no colours, no Rust
    backtrace (RUST_BACKTRACE may be set), no debug dump past a few hundred characters."""
    text = plain_message(str(exc))
    text = _BACKTRACE.split(text, maxsplit=1)[0]
    text = " ".join(text.replace("↳", "").split())
    if len(text) > _MAX_CAUSE:
        text = text[:_MAX_CAUSE].rstrip() + " …"
    return text or type(exc).__name__
