"""A domain's storage: one Delta Lake output port per product, and a private DuckDB store.

A publish commits the product's port (the one commit point), then brings the domain's DuckDB
table to that version. Consumers read ports, at a version, never the producer's DuckDB file:
a reader never blocks a writer, and a blocked or failed publish leaves the last good version.
If a crash (or a full disk) stops a publish between the two, the store lags its port until the
next run of the product, or `mesh repair`, reconciles it.

Local paths are the default; the port root may also be `s3://bucket/prefix` or `gs://bucket/prefix`.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, MutableMapping, Sequence

import pandas as pd
import pyarrow as pa

from mesh_core.declare.lifecycle import Lifecycle
from mesh_core.declare.majors import major_of
from mesh_core.declare.names import quote_identifier
from mesh_core.declare.ref import ProductRef
from mesh_core.errors import MeshError, ProductNotPublishedError, ProductOutputError, StorageError
from mesh_core.storage.acting import check_write
from mesh_core.storage.failpoints import failpoint
from mesh_core.storage.port import TARGET_FILE_SIZE, OutputPort, PortVersion, SetAside, StagedFiles
from mesh_core.storage.retention import Retention
from mesh_core.storage.warehouse import Warehouse

QUARANTINE_SCHEMA = "quarantine"
PUBLISH_LOCK_SECONDS = 600.0  # another run publishing the same product waits its turn


def resolve_data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where domains keep local data: explicit, else $MESH_DATA_DIR, else $DAGSTER_HOME/data.

    Called at run time, never at import, so a code location loads without it."""
    for candidate in (explicit, os.environ.get("MESH_DATA_DIR")):
        if candidate:
            return Path(candidate).resolve()
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"]).resolve() / "data"
    raise MeshError(
        "Mesh does not know where to store data: set DAGSTER_HOME (the data goes to "
        "$DAGSTER_HOME/data) or MESH_DATA_DIR."
    )


_OBJECT_STORES = ("s3://", "gs://")


READ_THROUGH_ENV = "MESH_READ_THROUGH_PORTS_URI"


def resolve_ports_uri(explicit: str | None, data_dir: Path) -> str:
    """Where output ports live: explicit, else $MESH_PORTS_URI, else the local data folder.

    A local path (made absolute), file://, s3://bucket[/prefix] or gs://bucket[/prefix]."""
    given = explicit or os.environ.get("MESH_PORTS_URI")
    return _port_root(given if given is not None else str(data_dir), given,
                      "ports_uri" if explicit else "MESH_PORTS_URI")


def resolve_read_through(explicit: str | None = None) -> str | None:
    """The port root read through to, read-only, for products whose port this storage's root lacks:
    explicit, else $MESH_READ_THROUGH_PORTS_URI, else none. `mesh preview`'s sandbox sets it to the
    real mesh's port root, so a sandbox run reads the inputs it does not recompute from the real
    ports and can never write them (see `OutputPort(read_only=True)`)."""
    given = explicit or os.environ.get(READ_THROUGH_ENV)
    if not given:
        return None
    return _port_root(given, given, "read_through" if explicit else READ_THROUGH_ENV)


def _port_root(value: str, given: str | None, setting: str) -> str:
    value = value.strip()
    if value.startswith("file://"):
        value = value[len("file://"):]
    if value.startswith(_OBJECT_STORES):
        scheme, rest = value.split("://", 1)
        if not rest.strip("/"):
            raise MeshError(f"{setting}={given!r} names no bucket: write {scheme}://<bucket>[/<prefix>].")
        return f"{scheme}://{rest.rstrip('/')}"
    if not value or "://" in value:
        raise MeshError(
            f"{setting}={given!r} is not a location Mesh can publish to: use a local folder, file:///path, "
            "s3://bucket/prefix or gs://bucket/prefix (credentials from the environment)."
        )
    return str(Path(value).resolve())


def check_columns(frame: pd.DataFrame, ref: ProductRef, what: str = "output") -> None:
    """Refuse, before anything is written, a frame whose columns no reader could use: none at all (Delta
    would commit an empty schema no reader opens), a name twice, or labels that are not text (pyarrow
    would silently write 0 as '0' and a MultiIndex's tuples as their repr)."""
    columns = frame.columns
    problems = []
    if isinstance(columns, pd.MultiIndex):
        problems.append(f"its columns have {columns.nlevels} levels (a MultiIndex, e.g. {columns[0]!r}); flatten them, "
                        "e.g. frame.columns = ['_'.join(map(str, c)) for c in frame.columns]")
    elif len(columns) == 0:
        problems.append(f"it has {len(frame)} row(s) but no columns; return the columns its contract declares")
    else:
        unnamed = [label for label in columns if not isinstance(label, str)]
        if unnamed:
            problems.append(f"column label(s) {unnamed[:5]!r} are not strings; name them, e.g. "
                            "frame.rename(columns={0: 'value'}) or frame.columns = frame.columns.astype(str)")
        repeated = list(dict.fromkeys(label for label in columns[columns.duplicated()]))
        if repeated:
            problems.append(f"column(s) {repeated[:5]!r} appear more than once; rename or drop the copies, "
                            "e.g. frame.loc[:, ~frame.columns.duplicated()]")
    if problems:
        raise ProductOutputError(f"{ref} cannot be published: its {what} is not a table a reader can open: "
                                 + "; ".join(problems) + ". Nothing was written; consumers keep the last version.")


def port_at(root: str, ref: ProductRef, major: int | None = None, *, read_only: bool = False) -> OutputPort:
    """The port of `ref` (with `major`, of that older major) under the port root `root`."""
    folder = ref.product if major is None else f"{ref.product}.v{int(major)}"
    return OutputPort(ref, f"{root}/{ref.domain}/ports/{folder}", read_only=read_only)


@dataclass(frozen=True)
class Publication:
    """What one publish did: the version consumers now read, and what it tidied."""

    version: PortVersion
    warehouse_synced: bool
    removed_files: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


class DomainStorage:
    """The storage one domain writes, and its read-only view of other domains' ports."""

    def __init__(self, data_dir: str | os.PathLike, domain: str, *, ports_uri: str | None = None,
                 retention: Retention = Retention(), clock: Callable[[], datetime] | None = None,
                 read_through: str | None = None):
        quote_identifier(domain)  # refuse a bad name before it reaches a path or SQL
        self.data_dir = Path(data_dir).resolve()  # pyarrow needs absolute local paths
        self.domain = domain
        self.ports_uri = resolve_ports_uri(ports_uri, self.data_dir)
        # Reads of a product whose port is not under ports_uri go here, through read-only ports.
        self.read_through = resolve_read_through(read_through)
        if self.read_through == self.ports_uri:
            raise MeshError(f"The read-through port root {self.read_through} is the port root this storage writes: "
                            f"a read-through root must be another mesh's ports (unset {READ_THROUGH_ENV}).")
        self.retention = retention
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.warehouse = Warehouse(self.data_dir / domain / "warehouse.duckdb", domain)

    @property
    def database_path(self) -> Path:
        # Not named like the schema inside it: DuckDB finds 'x.duckdb' holding schema 'x' ambiguous.
        return self.warehouse.path

    def port(self, ref: ProductRef, major: int | None = None) -> OutputPort:
        """The product's port; with `major`, the port of an older major published beside it."""
        return port_at(self.ports_uri, ref, major)

    def reading_port(self, ref: ProductRef, major: int | None = None) -> OutputPort:
        """The port reads of `ref` go to: its port under ports_uri, else (with a read-through root,
        when ports_uri has none) the read-only port of the same product under the read-through root."""
        port = self.port(ref, major)
        if self.read_through is None or port.exists():
            return port
        return port_at(self.read_through, ref, major, read_only=True)

    # -- writing (own domain only) ---------------------------------------------------

    def publish(self, product: str, frame: pd.DataFrame, *, version: str, access: str, run_id: str,
                contract_fingerprint: str = "", in_use: Iterable[int] = (), major: int | None = None,
                lifecycle: Lifecycle = Lifecycle()) -> Publication:
        """Commit `frame` as the product's next version, then sync the DuckDB store and apply retention.
        With `major`, publish an older major to its own port (the DuckDB store holds current majors only).

        Once the port commit has succeeded the publish has happened: a later failure of the
        DuckDB store or of retention is returned as a warning, not raised, and repaired later."""
        ref = ProductRef(self.domain, product)  # validates the name before any path
        check_write(self.domain, str(ref))  # before the lock file, or any byte
        check_columns(frame, ref)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        with self.publishing(product, major=major) as publisher:
            staged = publisher.stage(table, access=access)
            return publisher.commit(staged, version=version, access=access, run_id=run_id,
                                    contract_fingerprint=contract_fingerprint, in_use=in_use, lifecycle=lifecycle)

    @contextmanager
    def publishing(self, product: str, *, major: int | None = None) -> Iterator["Publisher"]:
        """Hold the product's publish lock for a whole stage, audit and commit (see `Publisher`).

        What killed publishes left behind is deleted first; whatever was staged and neither
        committed nor discarded when the block is left (an exception, a return) is deleted then."""
        port = self.port(ProductRef(self.domain, product), major)  # validates the name before any path
        check_write(self.domain, f"{self.domain}.{product}")  # before the lock file, or any byte
        with self._publish_lock(product):
            history = port.history()
            removed = port.remove_uncommitted(history)
            publisher = Publisher(self, port, major, history, removed)
            try:
                yield publisher
            finally:
                publisher.discard_uncommitted()

    def reconcile(self, product: str) -> list[PortVersion]:
        """Bring the product's DuckDB table to its port's latest version, and delete what killed
        publishes left behind. Returns the port's published versions, newest first (empty if
        it was never published)."""
        check_write(self.domain, f"{self.domain}.{product}")
        port = self.port(ProductRef(self.domain, product))
        with self._publish_lock(product):
            history = port.history()
            port.remove_uncommitted(history)
            if history and self.warehouse.recorded_version(product) != history[0].version:
                problems = self._sync(product, port, history[0])
                if problems:
                    raise StorageError(problems[0])
            return history

    def set_aside_unreadable(self, product: str) -> SetAside | None:
        """If the product's current version does not read back whole, set it aside and bring the
        port, and its DuckDB table, back to the newest version that does (see
        `OutputPort.set_aside_unreadable`). None if the current version reads."""
        check_write(self.domain, f"{self.domain}.{product}")
        port = self.port(ProductRef(self.domain, product))
        with self._publish_lock(product):
            moved = port.set_aside_unreadable()
            if moved is None:
                return None
            if moved.restored is not None and moved.restored.access != "public":
                port.keep_private()
        if moved.restored is not None:
            self.reconcile(product)
        return moved

    def rebuild_warehouse(self) -> Path | None:
        """Move an unreadable DuckDB store aside; reconcile then rebuilds it from the ports."""
        check_write(self.domain, f"the '{self.domain}' domain's DuckDB store")
        if not self.database_path.exists():
            return None
        aside = self.database_path.with_name(f"{self.database_path.name}.broken-{os.getpid()}")
        os.replace(self.database_path, aside)
        wal = self.database_path.with_name(self.database_path.name + ".wal")
        if wal.exists():
            os.replace(wal, aside.with_name(aside.name + ".wal"))
        return aside

    def quarantine(self, product: str, frame: pd.DataFrame, *, run_id: str) -> str:
        """Keep a blocked output for debugging, in this domain's `quarantine` schema."""
        check_write(self.domain, f"the '{self.domain}' domain's DuckDB store")
        table = pa.Table.from_pandas(frame.assign(_mesh_run_id=run_id), preserve_index=False)
        self.warehouse.replace(QUARANTINE_SCHEMA, product, table)
        return f"{QUARANTINE_SCHEMA}.{product}"

    def _sync(self, product: str, port: OutputPort, version: PortVersion, source=None) -> list[str]:
        """Bring the product's DuckDB table to `version`, loaded from the port's files (verified,
        unless `source` names files just staged): streamed by DuckDB, never a pandas copy."""
        try:
            if source is None:
                paths = port.verified_paths(version.version)
                source = paths if port.is_local else port.dataset(version.version)
            self.warehouse.replace(self.domain, product, source, port_version=version.version)
        except StorageError as exc:
            return [f"The DuckDB store was not updated to version {version.version}; the next run or "
                    f"`mesh repair` will. {exc}"]
        return []

    @contextmanager
    def _publish_lock(self, product: str) -> Iterator[None]:
        from filelock import FileLock, Timeout

        lock_dir = self.data_dir / self.domain / "locks"
        try:
            lock_dir.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(lock_dir / f"{ProductRef(self.domain, product).product}.lock"),
                            timeout=PUBLISH_LOCK_SECONDS)
            lock.acquire()
        except Timeout:
            raise StorageError(f"{self.domain}.{product} stayed locked by another publish for "
                               f"{PUBLISH_LOCK_SECONDS:.0f} s ({lock_dir}).") from None
        except OSError as exc:
            raise StorageError(f"Cannot lock {lock_dir} to publish {self.domain}.{product}: "
                               f"{exc.strerror or exc}") from exc
        try:
            yield
        finally:
            lock.release()

    # -- reading (any domain's public ports, this domain's internal ones) ------------

    def current(self, ref: ProductRef, major: int | None = None) -> PortVersion:
        return self.reading_port(ref, major).latest()

    def history(self, ref: ProductRef, major: int | None = None) -> list[PortVersion]:
        return self.reading_port(ref, major).history()

    def port_major(self, ref: ProductRef, major: int | None) -> int | None:
        """The port holding `major` of `ref`: None (its own port) when that is its current major."""
        if major is None:
            return None
        current = major_of(self.current(ref).product_version)
        if current is not None and major > current:
            raise ProductNotPublishedError(f"{ref} is at major {current}; it has never published major {major}.")
        if current != major and not self.reading_port(ref, major).exists():
            raise ProductNotPublishedError(
                f"{ref} does not publish major {major} beside major {current}: its owners keep an older major "
                "published with previous_majors=[PreviousMajor(...)].")
        return None if current == major else major

    def scan(self, ref: ProductRef, version: int | None = None, *, major: int | None = None,
             columns: Sequence[str] | None = None, cache: MutableMapping | None = None):
        """Like `read`, but lazy: a `pyarrow.dataset.Dataset` over the version's verified files (same
        access rules, same error for a missing column), projected to `columns`. Nothing is decoded
        until an engine (Polars, DuckDB, Arrow) scans it."""
        port = self.reading_port(ref, major)
        version = port.latest().version if version is None else version
        dataset = port.dataset(version, columns, cache=cache, reader=self.domain)
        if columns is not None:
            missing = [c for c in columns if c not in dataset.schema.names]
            if missing:
                raise self._missing_columns(ref, major, version, missing, port.published(version).columns)
        return dataset

    def _missing_columns(self, ref: ProductRef, major: int | None, version: int, missing: Sequence[str],
                         stored: Sequence[str]) -> ProductNotPublishedError:
        return ProductNotPublishedError(
            f"{ref}{'' if major is None else f'@{major}'} has no column(s) {list(missing)} at version "
            f"{version}; its columns: {', '.join(stored)}. "
            "Read only columns its contract publishes (`mesh lint` checks this).")

    def read(self, ref: ProductRef, version: int | None = None, *, major: int | None = None,
             columns: Sequence[str] | None = None, arrow_strings: bool = False,
             cache: MutableMapping | None = None) -> pd.DataFrame:
        """The product at `version` (a Delta version), else at its current version; with `major`,
        from the port of that older major; with `columns`, only those columns (only they are decoded).

        `arrow_strings`: text columns as pandas' Arrow-backed `str` dtype (pandas 3's default,
        missing values NaN) instead of one Python object per value: a fraction of the memory, and
        no per-value conversion. `cache`: see `OutputPort.read` (one read of a version per run)."""
        port = self.reading_port(ref, major)
        version = port.latest().version if version is None else version
        # Access and lifecycle are checked by the port, for the run's domain inside a run (whatever
        # this storage was made for), else for self.domain.
        table = port.read(version, columns, cache=cache, reader=self.domain)
        if columns is not None:
            missing = [c for c in columns if c not in table.column_names]
            if missing:
                stored = port.read(version, cache=cache, reader=self.domain).column_names
                raise self._missing_columns(ref, major, version, missing, stored)
            table = table.select(list(columns))
        strings = _ARROW_STRINGS.get if arrow_strings else None
        return table.to_pandas(coerce_temporal_nanoseconds=True, types_mapper=strings)


class EngineWrite:
    """One engine job's output folder in a port (see `Publisher.engine_writes`)."""

    def __init__(self, publisher: "Publisher", folder: str, access: str):
        self.publisher, self.folder, self.access = publisher, folder, access

    def adopt(self) -> StagedFiles:
        staged = self.publisher.port.adopt(self.folder, access=self.access)
        self.publisher._open[id(staged)] = staged
        return staged


class Publisher:
    """One product's publish in steps, inside `DomainStorage.publishing` (under its publish lock):
    stage the output as data files, audit them, then commit them or quarantine and discard them."""

    def __init__(self, storage: DomainStorage, port: OutputPort, major: int | None,
                 history: Sequence[PortVersion], removed: Sequence[str]):
        self.storage, self.port, self.major = storage, port, major
        self._history, self._removed = list(history), list(removed)
        self._open: dict[int, StagedFiles] = {}  # staged, neither committed nor discarded

    @property
    def product(self) -> str:
        return self.port.ref.product

    def stage(self, data, *, access: str, target_file_size: int = TARGET_FILE_SIZE) -> StagedFiles:
        """Write `data` (a table or an Arrow stream) as uncommitted data files (see `OutputPort.stage`)."""
        staged = self.port.stage(data, access=access, target_file_size=target_file_size)
        self._open[id(staged)] = staged
        return staged

    @contextmanager
    def engine_writes(self, *, access: str) -> Iterator["EngineWrite"]:
        """A staging folder in the port for an engine's own writers (Spark's executors): write the output's
        Parquet files to `folder`, then `adopt()` them as staged files (see `OutputPort.adopt`). The folder
        is deleted when the block is left, whatever happened."""
        write = EngineWrite(self, self.port.staging_folder(), access)
        try:
            yield write
        finally:
            self.port.drop_staging(write.folder)

    def commit(self, staged: StagedFiles, *, version: str, access: str, run_id: str, contract_fingerprint: str = "",
               in_use: Iterable[int] = (), lifecycle: Lifecycle = Lifecycle()) -> Publication:
        """Commit the staged files as the product's next version, then load the DuckDB store from
        them and apply retention. Once the port commit has succeeded the publish has happened: a
        later failure of the store or of retention is returned as a warning, not raised."""
        published = self.port.commit(staged, run_id=run_id, product_version=version,
                                     contract_fingerprint=contract_fingerprint, access=access, lifecycle=lifecycle)
        self._open.pop(id(staged), None)
        sync_problems = (self.storage._sync(self.product, self.port, published, self._source(staged))
                         if self.major is None else [])
        warnings = list(sync_problems)
        failpoint("storage:before-retention")
        keep = self.storage.retention.versions_to_keep([published, *self._history], now=self.storage.clock(),
                                                       in_use=in_use)
        removed = list(self._removed)
        try:
            removed += self.port.vacuum(keep)
        except StorageError as exc:
            warnings.append(f"Retention did not run: {exc}")
        if access != "public":
            try:
                self.port.keep_private()  # again: the commits retention wrote
            except StorageError as exc:
                warnings.append(str(exc))
        self._history.insert(0, published)
        return Publication(published, not sync_problems, tuple(removed), tuple(warnings))

    def quarantine(self, staged: StagedFiles, *, run_id: str) -> str:
        """Keep the staged rows, with `_mesh_run_id`, in the domain store's `quarantine` schema for
        debugging (streamed from the files); returns the table's name."""
        check_write(self.storage.domain, f"the '{self.storage.domain}' domain's DuckDB store")
        self.storage.warehouse.replace(QUARANTINE_SCHEMA, self.product, self._source(staged),
                                       constants={"_mesh_run_id": run_id})
        return f"{QUARANTINE_SCHEMA}.{self.product}"

    def discard(self, staged: StagedFiles) -> None:
        """Delete the staged files (nothing was committed from them)."""
        self.port.discard(staged)
        self._open.pop(id(staged), None)

    def discard_uncommitted(self) -> None:
        for staged in list(self._open.values()):
            with suppress(StorageError):  # never hides why the block was left; the next publish deletes them
                self.discard(staged)

    @contextmanager
    def local_paths(self, staged: StagedFiles) -> Iterator[list[str]]:
        """Local paths of the staged files, for engines that read files by path (the audit): the
        files themselves on a local port; on object storage, a copy in a temporary folder, streamed
        file by file and deleted when the block ends."""
        if self.port.is_local:
            yield staged.paths()
            return
        with tempfile.TemporaryDirectory(prefix="mesh-audit-", dir=self.storage.data_dir if self.storage.data_dir.exists() else None) as folder:
            yield self.port.copy_staged(staged, folder)

    def _source(self, staged: StagedFiles):
        return staged.paths() if self.port.is_local else self.port.staged_dataset(staged)


# pandas' `str` dtype backed by Arrow (the default from pandas 3): NaN for missing, like object columns.
_ARROW_STRINGS = {kind: pd.StringDtype("pyarrow", na_value=float("nan")) for kind in (pa.string(), pa.large_string())}
