"""The embedded instance's storage: Dagster's SQLite storage, with its connections kept open.

Dagster's SQLite run and event-log storages build a new engine and open a new SQLite connection for
every read and write, and closing the last connection to a WAL database checkpoints it: ~1.4 ms
per access on this machine. One `mesh materialize` of the example mesh opened ~820 event-log and
~160 run-storage connections; a product with c checks writes ~6 + 3c events. Here the event log
keeps one open connection per database file (the index and the most recent run shards, bounded),
behind the lock Dagster already serialises them with, and the run storage a small pool. Files,
schema and transactions are Dagster's own, so a home written by either reads with the other.

A `dagster.yaml` selects it with `instance_class: {module: mesh_core.instance.pooled_sqlite, class:
MeshInstance}` (Mesh writes that into new homes): every process that opens the instance (webserver,
daemon, code servers, run workers, `mesh`) then uses it. An explicit `storage:` section (postgres,
or sqlite with its own base_dir) still wins.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from functools import lru_cache

import sqlalchemy as sa
import sqlalchemy.exc as db_exc
import yaml
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log.schema import SqlEventLogStorageMetadata
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.sql import create_engine, get_alembic_config
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, QueuePool

# The index shard plus the runs in flight and the ones the UI just showed; each open shard holds
# one file descriptor (two more for its WAL and shared memory while it is written).
MAX_OPEN_SHARDS = 16

_LIVE: weakref.WeakSet = weakref.WeakSet()  # every pooled storage of this process, for the fork hooks
_INHERITED: list[Engine] = []  # a forked child's share of connections its parent could not close


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` with one open connection per shard instead of one per access."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, tuple[Engine, tuple[int, int]]] = OrderedDict()
        self._held_for_fork = False
        self._lock_owner: int | None = None
        self._tables: set[str] = set()
        super().__init__(base_dir, inst_data=inst_data)
        _LIVE.add(self)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> PooledSqliteEventLogStorage:  # the stock one names its class
        return cls(inst_data=inst_data, **config_value)

    @contextlib.contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:  # as in Dagster: one connection in use per storage at a time
            self._lock_owner = threading.get_ident()
            try:
                with self._engine(shard).connect() as conn, conn.begin():
                    yield conn
            finally:
                self._lock_owner = None

    def has_table(self, table_name: str) -> bool:
        # Dagster asks on every materialization and check evaluation, with a new engine each time;
        # a table that exists stays (migrations add tables, nothing here drops one).
        if table_name not in self._tables:
            if not super().has_table(table_name):
                return False
            self._tables.add(table_name)
        return True

    def _engine(self, shard: str) -> Engine:
        path = self.path_for_shard(shard)
        cached = self._engines.pop(shard, None)
        if cached is not None and cached[1] != _file_id(path):  # wiped or replaced by another process
            cached[0].dispose()
            self._initialized_dbs.discard(shard)
            cached = None
        if cached is None:
            url = self.conn_string_for_shard(shard)
            if shard not in self._initialized_dbs:
                self._create_or_check(shard, url, path)
                self._initialized_dbs.add(shard)
            engine = create_engine(url, poolclass=QueuePool, pool_size=1, max_overflow=0,
                                   connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False})
            cached = (engine, _file_id(path))
        self._engines[shard] = cached  # most recently used last
        while len(self._engines) > MAX_OPEN_SHARDS:
            self._engines.popitem(last=False)[1][0].dispose()
        return cached[0]

    def _create_or_check(self, shard: str, url: str, path: str) -> None:
        """Create a new run shard directly; anything else (the index, an existing or contended file)
        goes through Dagster's `_initdb`, which checks, migrates and retries."""
        if shard != INDEX_SHARD_NAME and not os.path.exists(path):
            try:
                return _create_run_shard(url)
            except (db_exc.DatabaseError, sqlite3.DatabaseError):
                pass  # another process is creating it too: Dagster's path sorts that out
        # Stamping opens two connections at once: a throwaway engine, as Dagster does.
        init = create_engine(url, poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        try:
            self._initdb(init)
        finally:
            init.dispose()

    @property
    def open_shards(self) -> list[str]:
        """The shards this process holds a connection to, least recently used first."""
        return list(self._engines)

    def close_connections(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1][0].dispose()

    def wipe(self) -> None:
        self.close_connections()  # before the shard files are unlinked under them
        super().wipe()

    def dispose(self) -> None:
        self.close_connections()
        super().dispose()

    # SQLite connections must not cross fork(): a child that inherits them shares SQLite's record of
    # its parent's locks, so one side closing can delete the WAL the other still writes (seen: a
    # child's events lost). So the parent closes them just before forking, holding the lock until
    # the fork is done so that no other thread reopens one in between.
    def _before_fork(self) -> None:
        if self._lock_owner == threading.get_ident():  # forking from inside a transaction: cannot close it
            self._held_for_fork = False
            return
        self._held_for_fork = self._db_lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_SECONDS + 5)
        if self._held_for_fork:
            while self._engines:
                self._engines.popitem()[1][0].dispose()

    def _after_fork_in_parent(self) -> None:
        if self._held_for_fork:
            self._held_for_fork = False
            self._db_lock.release()

    def _after_fork_in_child(self) -> None:
        self._db_lock, self._held_for_fork = threading.Lock(), False  # the parent's threads are not here
        # Only if a connection was in use at the fork (by this thread, or by another past the timeout):
        # keep it, never use or close it here.
        _INHERITED.extend(engine for engine, _ in self._engines.values())
        self._engines.clear()


@lru_cache(maxsize=1)
def _migrations() -> ScriptDirectory:
    """Dagster's event-log migrations, parsed once per process (its `_initdb` parses them twice per shard)."""
    return ScriptDirectory.from_config(get_alembic_config(sqlite_event_log.__file__))


def _create_run_shard(url: str) -> None:
    """What Dagster's `_initdb` does for a new file: the tables, WAL, the head revision (parsed once).
    WAL first and one transaction: Dagster's order commits each CREATE alone in a rollback journal,
    ~60 fsyncs (0.1-1 s, more on a busy disk) for every run; this is one."""
    engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("PRAGMA journal_mode=WAL;"))  # outside a transaction, as SQLite requires
            conn.exec_driver_sql("BEGIN")  # pysqlite would run each CREATE in its own transaction
            SqlEventLogStorageMetadata.create_all(conn)
            MigrationContext.configure(conn).stamp(_migrations(), "head")
            conn.commit()
    finally:
        engine.dispose()


def _file_id(path: str) -> tuple[int, int]:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return (0, 0)
    return (stat.st_dev, stat.st_ino)


os.register_at_fork(before=lambda: [storage._before_fork() for storage in list(_LIVE)],
                    after_in_parent=lambda: [storage._after_fork_in_parent() for storage in list(_LIVE)],
                    after_in_child=lambda: [storage._after_fork_in_child() for storage in list(_LIVE)])


class PooledSqliteRunStorage(SqliteRunStorage):
    """`SqliteRunStorage` with a small pool of open connections instead of one per access.

    Dagster gives this storage no lock (threads of the webserver and daemon use it at once); the pool
    hands each thread its own connection, keeps one open between uses and closes any extra on return."""

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None):
        super().__init__(conn_string, inst_data=inst_data)
        self._engine = self._new_engine()
        _LIVE.add(self)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> PooledSqliteRunStorage:  # the stock one names its class
        return cls.from_local(inst_data=inst_data, **config_value)

    def _new_engine(self) -> Engine:
        return create_engine(self._conn_string, poolclass=QueuePool, pool_size=1, max_overflow=-1,
                             connect_args={"check_same_thread": False})

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        self._engine.dispose()
        super().dispose()

    # See PooledSqliteEventLogStorage: no connection crosses fork(). Idle ones are closed first; one
    # another thread is using at that moment stays with a pool the child never touches again.
    def _before_fork(self) -> None:
        self._engine.dispose()

    def _after_fork_in_parent(self) -> None:
        pass

    def _after_fork_in_child(self) -> None:
        _INHERITED.append(self._engine)
        self._engine = self._new_engine()


class MeshSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage (runs, schedules, event log in `base_dir`), with the pooled run and event storage."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        # DagsterSqliteStorage.__init__, with the pooled classes (the stock one would open each file twice).
        self.base_dir = base_dir
        self._run_storage = PooledSqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()  # what DagsterSqliteStorage's own __init__ calls last

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> MeshSqliteStorage:  # the stock one names its class
        return cls.from_local(inst_data=inst_data, **config_value)


class MeshInstance(DagsterInstance):
    """A Dagster instance whose default (sqlite) storage is `MeshSqliteStorage`; otherwise Dagster's own."""

    @classmethod
    def config_schema(cls) -> Mapping:
        return {}

    @staticmethod
    def config_defaults(base_dir: str) -> Mapping[str, ConfigurableClassData | None]:
        return {
            **InstanceRef.config_defaults(base_dir),
            "storage": ConfigurableClassData(__name__, MeshSqliteStorage.__name__,
                                             yaml.dump({"base_dir": base_dir}, default_flow_style=False)),
        }
