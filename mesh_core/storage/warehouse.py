"""A domain's private DuckDB store: tables derived from its output ports, plus quarantine.

Each product's table is replaced in one transaction, by column name, together with the port
version it holds, so the store can always tell how far behind its ports it is and be
reconciled to them. Mesh processes take turns on the file through a lock file beside it;
only a conflict with some other program is retried, briefly and with jitter. Every other
error (disk full, permission denied, read-only or corrupt file) is reported at once with the
path and the real cause, never masked by a failed rollback.
"""

from __future__ import annotations

import random
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import pyarrow as pa

from mesh_core.declare.names import quote_column, quote_identifier
from mesh_core.errors import StorageError
from mesh_core.storage.duckdb_memory import limit_error, memory_limit, quiet
from mesh_core.storage.failpoints import failpoint

META_SCHEMA = "mesh_meta"  # which port version each table holds
LOCK_WAIT_SECONDS = 120.0  # another Mesh process publishing to the same domain
FOREIGN_LOCK_SECONDS = 10.0  # some other program (a DuckDB shell, a notebook) holding the file


class Warehouse:
    def __init__(self, path: Path, domain: str | None = None):
        self.path = Path(path)
        self.domain = domain  # named in the fixes the errors suggest

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator:
        """A connection to the store, held under the store's lock and closed on every path."""
        import duckdb
        from filelock import FileLock, Timeout

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(self.path) + ".lock", timeout=LOCK_WAIT_SECONDS)
            lock.acquire()
        except Timeout:
            raise StorageError(
                f"{self.path} stayed locked by another Mesh process for {LOCK_WAIT_SECONDS:.0f} s; "
                "wait for the other run of this domain to finish, then try again."
            ) from None
        except OSError as exc:
            raise StorageError(f"Cannot open the DuckDB store {self.path}: {exc.strerror or exc}") from exc
        try:
            con = self._open(duckdb, read_only)
            try:
                yield con
            finally:
                con.close()
        finally:
            lock.release()

    def _open(self, duckdb, read_only: bool):
        deadline = time.monotonic() + FOREIGN_LOCK_SECONDS
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.Error as exc:
                message = str(exc)
                if _is_lock_conflict(message) and time.monotonic() < deadline:
                    time.sleep(random.uniform(0.05, 0.5))  # jitter: two waiters never retry in step
                    continue
                raise StorageError(self._explain(message)) from exc

    def replace(self, schema: str, name: str, data: "pa.Table | pa.RecordBatchReader | Sequence[str] | object", *,
                port_version: int | None = None, constants: Mapping[str, str] | None = None) -> None:
        """Replace one table whole, in one transaction, recording the port version it holds.

        `data`: local Parquet files (their paths, read by DuckDB itself), or an Arrow table,
        record batch stream or dataset (e.g. files on S3): streamed, never copied into pandas.
        `constants`: text columns added to every row (e.g. the run a quarantined output came from)."""
        target = f"{quote_identifier(schema)}.{quote_identifier(name)}"
        extra = "".join(f", ? AS {quote_column(column)}" for column in (constants or {}))
        if isinstance(data, (list, tuple)):
            source, registered = "read_parquet(?)", None
            parameters = [*(constants or {}).values(), list(data)]
        else:
            source, registered, parameters = "mesh_frame", data, list((constants or {}).values())
        with self.connect() as con:
            limit = memory_limit()
            try:  # beyond it DuckDB spills to the store's .tmp folder: a table larger than memory loads
                quiet(con).execute("SET memory_limit = $1", [limit])
            except Exception as exc:
                raise limit_error(f"Loading {schema}.{name} into {self.path}", limit, exc) from None
            try:
                con.execute("BEGIN TRANSACTION")
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}")
                if registered is not None:
                    con.register("mesh_frame", registered)
                # The data's own column names and types: nothing is matched by position.
                con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT *{extra} FROM {source}", parameters)
                if registered is not None:
                    con.unregister("mesh_frame")
                if port_version is not None:
                    self._record(con, name, port_version)
                failpoint("warehouse:before-commit")
                con.execute("COMMIT")
            except Exception as exc:
                with suppress(Exception):  # a rollback after a failed commit only hides the cause
                    con.execute("ROLLBACK")
                if isinstance(exc, StorageError):
                    raise
                raise StorageError(self._explain(str(exc), f"replace {schema}.{name} in")) from exc

    def recorded_version(self, name: str) -> int | None:
        """The port version the product's table holds, or None if it has none yet."""
        if not self.path.exists():
            return None
        with self.connect() as con:
            try:
                found = con.execute(
                    f"SELECT port_version FROM {quote_identifier(META_SCHEMA)}.port_versions WHERE product = ?", [name]
                ).fetchall()
            except Exception as exc:
                if "does not exist" in str(exc):
                    return None
                raise StorageError(self._explain(str(exc), "read")) from exc
        return found[0][0] if found else None

    def damage(self) -> str | None:
        """Why the file cannot be used as a database (corrupt, not DuckDB), or None if it reads
        whole. Other problems (permissions, a lock held elsewhere) are raised, not reported here."""
        if not self.path.exists():
            return None
        try:
            with self.connect(read_only=True) as con:
                tables = con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()
                for schema, name in tables:  # DuckDB verifies block checksums as it reads them
                    con.sql(f"SELECT * FROM {quote_column(schema)}.{quote_column(name)}").to_arrow_table()
        except StorageError as exc:
            if _is_corruption(str(exc)):
                return str(exc)
            raise
        except Exception as exc:
            if _is_corruption(str(exc)):
                return " ".join(str(exc).split())
            raise StorageError(self._explain(str(exc), "read")) from exc
        return None

    def _explain(self, message: str, action: str = "open") -> str:
        """One line an operator can act on: which file, what the system said, what to do."""
        cause = " ".join(message.split()).rstrip(".!")
        lowered = cause.lower()
        if "no space left" in lowered:
            fix = "free space on that disk; the ports are unaffected, and the next run (or `mesh repair`) catches the store up."
        elif "read-only file system" in lowered or "permission denied" in lowered:
            fix = "make the data folder writable by this user (or point MESH_DATA_DIR elsewhere)."
        elif _is_corruption(cause):  # before locks: a corrupt "block" is no lock conflict
            fix = (f"the store is derived from the domain's ports: `mesh repair --domain {self.domain or '<domain>'}` "
                   "moves it aside and rebuilds it.")
        elif _is_lock_conflict(cause):
            fix = "close the other program that has the file open (a DuckDB shell or notebook), then try again."
        else:
            fix = "see the cause above; the ports are unaffected and `mesh repair` rebuilds the store from them."
        return f"Could not {action} the DuckDB store {self.path}: {cause}. Fix: {fix}"

    @staticmethod
    def _record(con, name: str, port_version: int) -> None:
        meta = quote_identifier(META_SCHEMA)
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {meta}")
        con.execute(f"CREATE TABLE IF NOT EXISTS {meta}.port_versions (product VARCHAR PRIMARY KEY, port_version BIGINT)")
        con.execute(f"INSERT OR REPLACE INTO {meta}.port_versions VALUES (?, ?)", [name, port_version])


def _is_corruption(message: str) -> bool:
    """DuckDB's words for a damaged file: not a database, a bad block checksum, or cut short."""
    lowered = message.lower()
    return any(sign in lowered for sign in ("not a valid duckdb", "corrupt", "checksum", "could not read enough bytes"))


def _is_lock_conflict(message: str) -> bool:
    """Another process holds the file: DuckDB's "Could not set lock" / "Conflicting lock"."""
    lowered = message.lower()
    return "could not set lock" in lowered or "conflicting lock" in lowered
