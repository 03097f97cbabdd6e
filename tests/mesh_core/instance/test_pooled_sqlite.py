"""The pooled SQLite event log (mesh_core/instance/pooled_sqlite.py), checked against real Dagster instances.

Each test opens real instances over a temp DAGSTER_HOME made from the repository's dagster.yaml, and
materializes small in-file assets (one materialization and two check evaluations per run). A "stock"
home is the same dagster.yaml without `instance_class`, i.e. Dagster's own `SqliteEventLogStorage`
over the same files. Every test first checks that the pooled storage is the one in use, so none of
them passes by falling back to Dagster's.
"""

from __future__ import annotations

import collections
import gc
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy
import yaml
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._serdes import deserialize_value, serialize_value
from sqlalchemy import event
from sqlalchemy.engine import Engine

from mesh_core.instance.home import DEFAULT_DAGSTER_YAML
from mesh_core.instance.pooled_sqlite import MAX_OPEN_SHARDS, MeshInstance, PooledSqliteEventLogStorage, PooledSqliteRunStorage
from tests.support import REPO, make_dagster_home

CHECKS = ("positive", "small")
STOCK_YAML = "stock.yaml"  # a second config file in the same home: same files, Dagster's own storage
TIMEOUT = 60  # seconds for any thread, child process or subprocess


def make_asset(name: str) -> dg.AssetsDefinition:
    """An asset with two checks: each run writes a materialization and two check evaluations."""

    @dg.asset(name=name, check_specs=[dg.AssetCheckSpec(check, asset=name) for check in CHECKS])
    def _asset():
        return dg.MaterializeResult(check_results=[dg.AssetCheckResult(check_name=c, passed=True) for c in CHECKS])

    return _asset


THING = make_asset("thing")


# -- helpers -------------------------------------------------------------------------------------


def new_home(root: Path) -> Path:
    """A Mesh home, plus `stock.yaml` beside its dagster.yaml: the same settings without instance_class."""
    home = make_dagster_home(root).resolve()
    document = yaml.safe_load((home / "dagster.yaml").read_text())
    assert document.pop("instance_class") == {"module": "mesh_core.instance.pooled_sqlite", "class": "MeshInstance"}
    (home / STOCK_YAML).write_text(yaml.safe_dump(document))
    return home


@pytest.fixture
def home(tmp_path) -> Path:
    return new_home(tmp_path)


def open_pooled(home: Path) -> dg.DagsterInstance:
    instance = dg.DagsterInstance.from_config(str(home))
    assert type(instance.event_log_storage) is PooledSqliteEventLogStorage
    assert type(instance.run_storage) is PooledSqliteRunStorage
    return instance


def open_stock(home: Path) -> dg.DagsterInstance:
    instance = dg.DagsterInstance.from_config(str(home), STOCK_YAML)
    assert type(instance.event_log_storage) is SqliteEventLogStorage
    assert type(instance.run_storage) is SqliteRunStorage
    return instance


def materialize(instance: dg.DagsterInstance, asset: dg.AssetsDefinition = THING) -> str:
    result = dg.materialize([asset], instance=instance)
    assert result.success
    return result.run_id


def materialization_runs(instance: dg.DagsterInstance, asset: str = "thing") -> set[str]:
    return {r.run_id for r in instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records}


def check_runs(instance: dg.DagsterInstance, asset: str = "thing") -> dict[str, set[str]]:
    """For each check of `asset`, the runs that recorded a (passing) evaluation of it."""
    history = instance.event_log_storage.get_asset_check_execution_history
    return {
        check: {r.run_id for r in history(dg.AssetCheckKey(dg.AssetKey(asset), check), limit=1000)
                if r.status == AssetCheckExecutionRecordStatus.SUCCEEDED}
        for check in CHECKS
    }


def latest_checks(instance: dg.DagsterInstance, asset: str = "thing") -> dict[str, str]:
    keys = [dg.AssetCheckKey(dg.AssetKey(asset), check) for check in CHECKS]
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    return {key.name: record.run_id for key, record in latest.items()}


def succeeded(instance: dg.DagsterInstance, run_id: str) -> bool:
    return any(e.dagster_event_type == dg.DagsterEventType.RUN_SUCCESS for e in instance.all_logs(run_id))


class EventLogConnections:
    """Counts real DBAPI connections opened to the event log's files (history/runs/*.db), per file,
    and to the run storage's (history/runs.db) apart."""

    def __init__(self, home: Path):
        self.directory = str(home / "history" / "runs") + os.sep
        self.run_storage_file = str(home / "history" / "runs.db")
        self.per_file: collections.Counter[str] = collections.Counter()
        self.run_storage = 0

    def _on_connect(self, dbapi_connection, _record) -> None:
        path = dbapi_connection.execute("PRAGMA database_list").fetchone()[2]
        if path.startswith(self.directory):
            self.per_file[os.path.basename(path)] += 1
        elif path == self.run_storage_file:
            self.run_storage += 1

    def __enter__(self) -> EventLogConnections:
        event.listen(Engine, "connect", self._on_connect)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(Engine, "connect", self._on_connect)

    @property
    def total(self) -> int:
        return sum(self.per_file.values())


def open_event_log_fds(home: Path) -> list[str]:
    """What this process's open file descriptors into the instance's databases (history/: the run
    storage's runs.db and the event log's shards) point at."""
    directory = str(home / "history") + os.sep
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed since listed
            continue
        if target.startswith(directory):
            targets.append(target)
    return targets


def shard_layout(home: Path, run_id: str) -> tuple:
    """A shard file's journal mode, schema revision and full schema, read with plain sqlite3."""
    connection = sqlite3.connect(home / "history" / "runs" / f"{run_id}.db")
    try:
        layout = (connection.execute("PRAGMA journal_mode").fetchone()[0],
                  connection.execute("SELECT version_num FROM alembic_version").fetchall(),
                  sorted(connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()))
    finally:
        connection.close()
    assert layout[0] == "wal" and len(layout[1]) == 1, layout[:2]
    return layout


# -- which instance a home gets ------------------------------------------------------------------


def test_mesh_homes_get_the_pooled_event_log_and_users_can_opt_out(home, tmp_path):
    with open_pooled(home) as instance:
        assert isinstance(instance, MeshInstance)
        # Run workers and code servers rebuild the instance from its serialized ref: they must get it too.
        with dg.DagsterInstance.from_ref(deserialize_value(serialize_value(instance.get_ref()))) as rebuilt:
            assert isinstance(rebuilt, MeshInstance)
            assert type(rebuilt.event_log_storage) is PooledSqliteEventLogStorage
            assert type(rebuilt.run_storage) is PooledSqliteRunStorage
    # The dagster.yaml Mesh writes into new homes selects it as well.
    written = tmp_path / "written"
    written.mkdir()
    (written / "dagster.yaml").write_text(DEFAULT_DAGSTER_YAML)
    with dg.DagsterInstance.from_config(str(written)) as instance:
        assert type(instance.event_log_storage) is PooledSqliteEventLogStorage

    # Opting out: no instance_class is plain Dagster; an explicit sqlite storage section wins over it.
    with open_stock(home) as stock:
        assert type(stock) is dg.DagsterInstance
    document = yaml.safe_load((home / "dagster.yaml").read_text())
    document["storage"] = {"sqlite": {"base_dir": str(home)}}
    (home / "explicit.yaml").write_text(yaml.safe_dump(document))
    with dg.DagsterInstance.from_config(str(home), "explicit.yaml") as explicit:
        assert isinstance(explicit, MeshInstance)
        assert type(explicit.event_log_storage) is SqliteEventLogStorage
        assert type(explicit.run_storage) is SqliteRunStorage


def test_a_home_written_by_an_earlier_mesh_still_opens_with_the_pooled_storage(home):
    # Homes made before the layered layout name the class by its old module path.
    old = (home / "dagster.yaml").read_text().replace("mesh_core.instance.pooled_sqlite", "mesh_core.instance_storage")
    assert "module: mesh_core.instance_storage" in old
    (home / "old.yaml").write_text(old)
    with dg.DagsterInstance.from_config(str(home), "old.yaml") as instance:
        assert isinstance(instance, MeshInstance)
        assert type(instance.event_log_storage) is PooledSqliteEventLogStorage
        run_id = materialize(instance)
        ref = serialize_value(instance.get_ref())
    with open_pooled(home) as current:  # and a home keeps its history across the two names
        assert run_id in materialization_runs(current)
        # A worker started by a process that loaded the old code gets a reference naming every
        # storage class by the old path (a daemon running across an upgrade): it must open too.
        old_ref = serialize_value(current.get_ref()).replace("mesh_core.instance.pooled_sqlite", "mesh_core.instance_storage")
    assert "mesh_core.instance_storage" in ref and "mesh_core.instance_storage" in old_ref
    for serialized in (ref, old_ref):
        with dg.DagsterInstance.from_ref(deserialize_value(serialized)) as rebuilt:
            assert type(rebuilt.event_log_storage) is PooledSqliteEventLogStorage
            assert type(rebuilt.run_storage) is PooledSqliteRunStorage
            assert run_id in materialization_runs(rebuilt)


# -- what pooling buys ---------------------------------------------------------------------------


def test_pooled_storage_opens_a_fraction_of_the_connections_and_none_for_an_open_shard(home, tmp_path):
    runs = 5
    stock_home = new_home(tmp_path / "stock")
    with EventLogConnections(stock_home) as stock_connections, open_stock(stock_home) as stock:
        for _ in range(runs):
            materialize(stock)

    with EventLogConnections(home) as pooled_connections, open_pooled(home) as instance:
        run_ids = [materialize(instance) for _ in range(runs)]

        # Once a shard is open, reading and appending to it opens no connection at all (Dagster: one each).
        before = pooled_connections.total
        for _ in range(3):
            assert succeeded(instance, run_ids[-1])
            assert materialization_runs(instance) == set(run_ids)
            assert latest_checks(instance) == dict.fromkeys(CHECKS, run_ids[-1])
            instance.report_engine_event("one more event", run_id=run_ids[-1], job_name="__ephemeral_asset_job__")
        assert pooled_connections.total == before

    # A run shard is opened a fixed number of times (to create it, then the one kept) whatever its event
    # count; Dagster opens one per access. Measured: 2 vs 22 per run shard, ~50 vs ~240 in all (most
    # of the pooled index's are Dagster's has_table() probes, which open their own engine).
    assert pooled_connections.total * 3 <= stock_connections.total, (pooled_connections.per_file,
                                                                      stock_connections.per_file)
    stock_per_run = max(n for f, n in stock_connections.per_file.items() if f != "index.db")
    pooled_per_run = max(n for f, n in pooled_connections.per_file.items() if f != "index.db")
    assert pooled_per_run * 3 <= stock_per_run, (pooled_per_run, stock_per_run)
    # The run storage keeps one connection open between uses; Dagster's opens one per access.
    assert pooled_connections.run_storage * 10 <= stock_connections.run_storage, (
        pooled_connections.run_storage, stock_connections.run_storage)


# -- homes written by either storage read with the other ------------------------------------------


def test_a_home_reads_and_writes_the_same_with_pooled_and_stock_storage(home):
    with open_pooled(home) as pooled, open_stock(home) as stock:
        first = materialize(pooled)
        # Stock Dagster reads what the pooled instance wrote while that still holds its connections.
        assert materialization_runs(stock) == {first}
        assert latest_checks(stock) == dict.fromkeys(CHECKS, first)
        assert succeeded(stock, first)

        second = materialize(stock)
        # ... and the pooled instance, whose connections were open all along, sees what stock wrote.
        assert materialization_runs(pooled) == {first, second}
        assert latest_checks(pooled) == dict.fromkeys(CHECKS, second)
        assert succeeded(pooled, second)
        pooled.report_engine_event("appended by the pooled storage", run_id=second, job_name="__ephemeral_asset_job__")
        third = materialize(pooled)
        assert "appended by the pooled storage" in [e.message for e in stock.all_logs(second) if e.dagster_event]

    # After both closed, a fresh stock instance has all of it.
    with open_stock(home) as stock:
        assert materialization_runs(stock) == {first, second, third}
        assert check_runs(stock) == dict.fromkeys(CHECKS, {first, second, third})
        assert latest_checks(stock) == dict.fromkeys(CHECKS, third)
        assert all(succeeded(stock, run_id) for run_id in (first, second, third))

    # The pooled storage creates run shards itself: the same schema, revision and WAL mode as Dagster's.
    assert shard_layout(home, first) == shard_layout(home, second)


def test_a_new_run_shard_is_written_in_wal_mode_and_one_transaction(home):
    statements: list[tuple[str, str]] = []  # (file, SQL) of every statement SQLite ran

    def trace(dbapi_connection, _record) -> None:
        path = dbapi_connection.execute("PRAGMA database_list").fetchone()[2]
        dbapi_connection.set_trace_callback(lambda sql: statements.append((path, sql.strip().upper())))

    with open_pooled(home) as instance:
        event.listen(Engine, "connect", trace)
        try:
            run_id = materialize(instance)
        finally:
            event.remove(Engine, "connect", trace)
    assert shard_layout(home, run_id)  # WAL, one revision: what Dagster's _initdb leaves
    shard = [sql for path, sql in statements if os.path.basename(path) == f"{run_id}.db"]
    made = shard[:shard.index("COMMIT") + 1]
    creates = [i for i, sql in enumerate(made) if sql.startswith("CREATE")]
    # WAL before anything is written, then every CREATE and the revision stamp in one transaction:
    # committed one by one in a rollback journal they cost ~60 fsyncs per run.
    assert creates and [sql for sql in made[:creates[0]] if sql == "BEGIN" or "JOURNAL_MODE" in sql] == \
        ["PRAGMA JOURNAL_MODE=WAL;", "BEGIN"], made[:creates[0]]
    assert any(sql.startswith("INSERT INTO ALEMBIC_VERSION") for sql in made[creates[-1]:]), made[creates[-1]:]
    assert "COMMIT" not in made[:-1]


# -- bounded -------------------------------------------------------------------------------------


def test_open_shards_and_file_descriptors_stay_bounded_and_older_runs_reopen(home):
    plain = dg.asset(name="plain")(lambda: None)  # the cheapest run: its own shard, a few events
    with open_pooled(home) as instance:
        storage = instance.event_log_storage
        run_ids = [materialize(instance, plain) for _ in range(MAX_OPEN_SHARDS + 4)]
        # An open shard holds three descriptors (db, -wal, -shm), and so does the run storage's runs.db;
        # SQLite may keep one more for reuse.
        fd_bound = 3 * MAX_OPEN_SHARDS + 3 + 3
        assert len(storage.open_shards) <= MAX_OPEN_SHARDS
        assert len(open_event_log_fds(home)) <= fd_bound, open_event_log_fds(home)
        assert run_ids[0] not in storage.open_shards

        # Reading every run, oldest first, reopens each on demand and keeps evicting the least recent.
        for run_id in run_ids:
            assert succeeded(instance, run_id)
            assert storage.open_shards[-1] == run_id
            assert len(storage.open_shards) <= MAX_OPEN_SHARDS
            assert len(open_event_log_fds(home)) <= fd_bound
        assert materialization_runs(instance, "plain") == set(run_ids)
    # dispose() closes them all.
    assert storage.open_shards == []
    assert open_event_log_fds(home) == []


# -- files removed under the pool ----------------------------------------------------------------


def test_wipe_closes_the_connections_and_new_runs_start_clean(home):
    with open_pooled(home) as instance:
        old = [materialize(instance) for _ in range(2)]
        instance.wipe()
        # No descriptor is left on a deleted shard (it would hold its disk space until eviction).
        assert not [fd for fd in open_event_log_fds(home) if fd.endswith("(deleted)")]
        new = materialize(instance)
        assert materialization_runs(instance) == {new}
        assert latest_checks(instance) == dict.fromkeys(CHECKS, new)
        assert all(instance.get_run_by_id(run_id) is None and instance.all_logs(run_id) == [] for run_id in old)
    with open_stock(home) as stock:
        assert materialization_runs(stock) == {new}
        assert succeeded(stock, new)


def test_a_run_shard_deleted_by_another_process_is_recreated_not_written_into_the_void(home):
    with open_pooled(home) as instance:
        run_id = materialize(instance)
        shard = Path(instance.event_log_storage.path_for_shard(run_id))
        assert run_id in instance.event_log_storage.open_shards  # its connection is open
        for suffix in ("", "-wal", "-shm"):  # what `dagster instance wipe` or a clean-up elsewhere does
            os.unlink(f"{shard}{suffix}")

        instance.report_engine_event("after the delete", run_id=run_id, job_name="__ephemeral_asset_job__")
        assert [e.message for e in instance.all_logs(run_id)] == ["after the delete"]
        assert not [fd for fd in open_event_log_fds(home) if fd.endswith("(deleted)")]

    # It is on disk, in a new file that any other process reads.
    assert shard.exists()
    with open_stock(home) as stock:
        assert [e.message for e in stock.all_logs(run_id)] == ["after the delete"]


# -- concurrency ---------------------------------------------------------------------------------


def test_two_threads_storing_through_one_instance_lose_nothing(home):
    # As the daemon's threads or the webserver's watcher share one instance. (Not `materialize` in two
    # threads: Dagster's own log-manager setup, logging.config.dictConfig per run, deadlocks there.)
    per_thread, shards_per_thread = 40, 10  # 2 x 10 run shards + index + runless > MAX_OPEN_SHARDS: evictions too
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(name: str) -> None:
        try:
            start.wait(TIMEOUT)
            for i in range(per_thread):
                instance.report_runless_asset_event(dg.AssetMaterialization(name, metadata={"i": i}))
                instance.report_runless_asset_event(
                    dg.AssetCheckEvaluation(asset_key=dg.AssetKey(name), check_name="positive", passed=True))
                instance.report_engine_event(f"{name} {i}", run_id=f"{name}-{i % shards_per_thread}", job_name="j")
                assert instance.fetch_materializations(dg.AssetKey(name), limit=1).records
                # The run storage, which Dagster does not lock: each thread gets its own pooled connection.
                # (Each tags its own run: Dagster's add_run_tags reads then writes the whole tag set, so two
                # writers of one run lose tags with its stock storage as well.)
                instance.add_run_tags(tagged[name], {f"{name}_{i}": str(i)})
                assert instance.get_run_by_id(tagged[name]).tags[f"{name}_{i}"] == str(i)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    with open_pooled(home) as instance:
        tagged = {name: materialize(instance) for name in ("left", "right")}
        threads = [threading.Thread(target=work, args=(name,)) for name in ("left", "right")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT)
        assert not any(thread.is_alive() for thread in threads)
        assert not errors, errors
        assert len(instance.event_log_storage.open_shards) <= MAX_OPEN_SHARDS

    with open_stock(home) as stock:
        for name in ("left", "right"):
            records = stock.fetch_materializations(dg.AssetKey(name), limit=1000).records
            assert sorted(r.asset_materialization.metadata["i"].value for r in records) == list(range(per_thread))
            check_key = dg.AssetCheckKey(dg.AssetKey(name), "positive")
            assert len(stock.event_log_storage.get_asset_check_execution_history(check_key, limit=1000)) == per_thread
            messages = [e.message for k in range(shards_per_thread) for e in stock.all_logs(f"{name}-{k}")]
            assert sorted(messages) == sorted(f"{name} {i}" for i in range(per_thread))
            tags = stock.get_run_by_id(tagged[name]).tags
            assert {k: v for k, v in tags.items() if k.startswith(f"{name}_")} == {f"{name}_{i}": str(i) for i in range(per_thread)}


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import dagster as dg
    from mesh_core.instance.pooled_sqlite import PooledSqliteEventLogStorage

    home, name = sys.argv[1], sys.argv[2]
    checks = ("positive", "small")

    @dg.asset(name=name, check_specs=[dg.AssetCheckSpec(c, asset=name) for c in checks])
    def _asset():
        return dg.MaterializeResult(check_results=[dg.AssetCheckResult(check_name=c, passed=True) for c in checks])

    instance = dg.DagsterInstance.from_config(home)
    assert type(instance.event_log_storage) is PooledSqliteEventLogStorage
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not (Path(home) / "go").exists():  # both start writing at the same moment
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for k in range(10):  # both create the same new run shards at the same moment
        instance.report_engine_event(f"{name} {k}", run_id=f"shared-{k}", job_name="j")
    for i in range(5):
        assert dg.materialize([_asset], instance=instance).success
        instance.report_runless_asset_event(dg.AssetMaterialization(f"{name}_runless_{i}"))
    instance.dispose()
    print("done", flush=True)
""")


def test_two_processes_writing_to_one_home_at_once_both_succeed(home):
    with open_stock(home) as stock:  # the home's databases exist, as `mesh` makes them before starting anything
        stock.report_engine_event("made by Dagster", run_id="stock-made", job_name="j")
    writers = {
        name: subprocess.Popen([sys.executable, "-c", WRITER, str(home), name], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        for name in ("one", "two")
    }
    try:
        for writer in writers.values():
            assert writer.stdout.readline().strip() == "ready", writer.communicate(timeout=TIMEOUT)
        (home / "go").touch()
        for name, writer in writers.items():
            out, err = writer.communicate(timeout=TIMEOUT)
            assert writer.returncode == 0 and out.strip() == "done", f"{name}: {out}\n{err[-3000:]}"
    finally:
        for writer in writers.values():
            if writer.poll() is None:
                writer.kill()
                writer.wait()

    with open_pooled(home) as instance:
        for name in writers:
            run_ids = materialization_runs(instance, name)
            assert len(run_ids) == 5
            assert check_runs(instance, name) == dict.fromkeys(CHECKS, run_ids)
            assert all(succeeded(instance, run_id) for run_id in run_ids)
            for i in range(5):
                assert instance.fetch_materializations(dg.AssetKey(f"{name}_runless_{i}"), limit=10).records
        for k in range(10):
            assert sorted(e.message for e in instance.all_logs(f"shared-{k}")) == [f"one {k}", f"two {k}"]
            assert shard_layout(home, f"shared-{k}") == shard_layout(home, "stock-made")


# -- fork ----------------------------------------------------------------------------------------


def test_a_forked_child_inherits_no_connection_and_both_keep_working(home):
    with open_pooled(home) as instance:
        storage = instance.event_log_storage
        before = materialize(instance)
        assert open_event_log_fds(home)  # the parent holds connections when it forks

        def child() -> None:
            # No SQLite handle crossed the fork (SQLite forbids using one in the child), and the storage's
            # lock is usable: the child opens its own connections.
            assert open_event_log_fds(home) == [], open_event_log_fds(home)
            run_id = materialize(instance)
            assert succeeded(instance, run_id)
            assert materialization_runs(instance) >= {before, run_id}

        # Another thread of the parent is inside a transaction when the fork starts.
        in_transaction = threading.Event()

        def busy() -> None:
            with storage.index_connection() as connection:
                in_transaction.set()
                time.sleep(0.3)
                connection.execute(sqlalchemy.text("SELECT 1"))

        busy_thread = threading.Thread(target=busy)
        busy_thread.start()
        assert in_transaction.wait(TIMEOUT)
        child_process = multiprocessing.get_context("fork").Process(target=child)
        child_process.start()
        busy_thread.join(TIMEOUT)
        child_process.join(TIMEOUT)
        if child_process.is_alive():
            child_process.kill()
            child_process.join()
            pytest.fail("the forked child hung (on a lock it inherited held?)")
        assert child_process.exitcode == 0

        after = materialize(instance)  # the parent keeps working, on connections of its own
        runs = materialization_runs(instance)
        assert len(runs) == 3 and {before, after} < runs
    with open_stock(home) as stock:
        assert check_runs(stock) == dict.fromkeys(CHECKS, runs)
        assert all(succeeded(stock, run_id) for run_id in runs)


def test_a_forked_childs_writes_survive_the_parent_closing_its_connections(home):
    # A child that inherits open SQLite connections shares SQLite's in-process record of its parent's
    # locks and takes none of its own; the parent, closing, then finds itself the last user and deletes
    # the WAL the child writes to. Seen with a version that left the inherited connections to the GC.
    with open_pooled(home) as instance:
        storage = instance.event_log_storage
        instance.report_runless_asset_event(dg.AssetMaterialization("parent_before"))
        gc.collect()  # the parent's connections are old objects, as in any long-lived process: no GC frees them early
        context = multiprocessing.get_context("fork")
        child_wrote, parent_closed = context.Event(), context.Event()

        def child() -> None:
            instance.report_runless_asset_event(dg.AssetMaterialization("child_first"))
            child_wrote.set()
            assert parent_closed.wait(TIMEOUT)
            instance.report_runless_asset_event(dg.AssetMaterialization("child_second"))

        child_process = context.Process(target=child)
        child_process.start()
        try:
            assert child_wrote.wait(TIMEOUT)
            storage.close_connections()  # as on LRU eviction, wipe, dispose or the parent exiting
            parent_closed.set()
        finally:
            child_process.join(TIMEOUT)
            if child_process.is_alive():
                child_process.kill()
                child_process.join()
        assert child_process.exitcode == 0

    with open_stock(home) as stock:
        stored = {key.to_user_string() for key in stock.get_asset_keys()}
    assert stored == {"parent_before", "child_first", "child_second"}
