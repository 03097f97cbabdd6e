"""Kill a Spark product's publish while the executors write its files.

The Spark driver (the Spark Connect server, local mode: driver and executors in one JVM) is
SIGKILLed mid-write, and separately the Mesh process running the step is SIGKILLed mid-write.
Afterwards the port holds its old version whole, and after the next run (a new server) no file
is left that no version references: no staging folder, no half-written part file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from mesh_core import DomainStorage, ProductRef
from mesh_core.storage.domain_storage import resolve_data_dir
from tests.spark_server import spark_connect_server
from tests.support import REPO, make_dagster_home

DOUBLED = ProductRef("bank", "doubled")
WRITE_STARTS_WITHIN = 120  # seconds: the step is computing once Spark's job folder appears
SLOW_ROW_MS = 4000  # each row sleeps in its task: the write is under way for several seconds


def bank(remote: str, slow: bool = False):
    """bank.ledger (pandas) and bank.doubled (Spark), doubled's tasks sleeping per row when `slow`."""
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import functions as F

    from mesh_core import data_product, domain_definitions
    from mesh_core.run.spark import SPARK_RESOURCE_KEY, SparkEngine
    from tests.integration.test_spark_products import DECLARED, GOOD, SUITE

    @data_product(**DECLARED, description="One row per ledger entry.", suite=SUITE)
    def ledger():
        return GOOD

    @data_product(**DECLARED, description="One row per ledger entry, doubled, computed on Spark.", suite=SUITE,
                  inputs={"ledger": "bank.ledger"})
    def doubled(ledger: SparkDataFrame) -> SparkDataFrame:
        out = ledger.withColumn("amount", F.col("amount") * 2)
        if slow:  # Thread.sleep returns nothing: reflect() is null, every row is kept, each task takes seconds
            out = out.repartition(3).filter(F.expr(f"reflect('java.lang.Thread', 'sleep', cast({SLOW_ROW_MS} as bigint)) is null"))
        return out

    return domain_definitions("bank", [ledger, doubled], resources={SPARK_RESOURCE_KEY: SparkEngine(remote=remote)})


def materialize(remote: str, slow: bool = False):
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        job = bank(remote, slow).resolve_implicit_global_asset_job_def()
        return job.execute_in_process(instance=instance, raise_on_error=False)


def port_root() -> Path:
    return Path(DomainStorage(resolve_data_dir(), "bank").port(DOUBLED).uri)


def garbage() -> list[str]:
    """Files in the port that no version references (staging folders included), and log temp files."""
    port = DomainStorage(resolve_data_dir(), "bank").port(DOUBLED)
    committed = {name for version in port.history() for name in version.files}
    fs, root = pafs.FileSystem.from_uri(port.uri)
    found = []
    for info in fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True)):
        relative = info.path[len(root) + 1:]
        if info.type != pafs.FileType.File:
            continue
        if relative.startswith("_delta_log/"):
            if relative.endswith(".tmp") or "#" in relative:
                found.append(relative)
        elif relative not in committed:
            found.append(relative)
    return found


def wait_for_write() -> Path:
    """The step's staging folder, once Spark's job has created its temporary folder in it."""
    deadline = time.monotonic() + WRITE_STARTS_WITHIN
    while time.monotonic() < deadline:
        started = list((port_root() / "_mesh_staging").glob("*/_temporary"))
        if started:
            return started[0]
        time.sleep(0.2)
    raise AssertionError(f"Spark did not start writing within {WRITE_STARTS_WITHIN} s")


def assert_old_version_whole(version: int) -> None:
    storage = DomainStorage(resolve_data_dir(), "bank")
    assert storage.current(DOUBLED).version == version
    frame = storage.read(DOUBLED).sort_values("entry_id", ignore_index=True)
    assert frame["amount"].tolist() == [200, 400, 600]


def test_the_spark_driver_sigkilled_mid_write_leaves_the_old_version_whole_and_no_garbage(dagster_home):
    import threading

    with spark_connect_server() as server:
        assert materialize(server.url).success
        version = DomainStorage(resolve_data_dir(), "bank").current(DOUBLED).version
        outcome = {}
        step = threading.Thread(target=lambda: outcome.setdefault("result", materialize(server.url, slow=True)))
        step.start()
        staging = wait_for_write()
        killed_at = time.monotonic()
        os.killpg(server.process.pid, signal.SIGKILL)
        step.join(timeout=180)
        assert not step.is_alive(), "the step did not fail within 180 s of its Spark driver dying"
        failed_after = time.monotonic() - killed_at
    result = outcome["result"]
    assert not result.success
    from mesh_core.run.failure import failure_text

    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE" and e.step_key == "bank__doubled")
    text = failure_text(failure.event_specific_data.error)
    assert "bank.doubled" in text and "Nothing was published" in text, text
    print(f"driver SIGKILLed with {staging.parent.name} being written; the step failed {failed_after:.1f} s later: {text}")
    assert_old_version_whole(version)
    assert garbage() == []  # the failed step deleted its staging folder itself

    with spark_connect_server() as again:
        assert materialize(again.url).success
    assert garbage() == []
    assert DomainStorage(resolve_data_dir(), "bank").current(DOUBLED).version > version


KILLED_STEP = """
import sys
from tests.faults.test_spark_kill import materialize
materialize(sys.argv[1], slow=True)
"""


def test_the_mesh_process_sigkilled_mid_write_leaves_the_old_version_and_the_next_run_leaves_no_garbage(dagster_home):
    with spark_connect_server() as server:
        assert materialize(server.url).success
        version = DomainStorage(resolve_data_dir(), "bank").current(DOUBLED).version
        env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "PYTHONPATH": str(REPO)}
        child = subprocess.Popen([sys.executable, "-c", KILLED_STEP, server.url], cwd=REPO, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            staging = wait_for_write()
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
        time.sleep(SLOW_ROW_MS / 1000 * 2)  # the server's tasks of the dead client finish or are cancelled
        left = garbage()
        print(f"Mesh SIGKILLed while {staging.parent.name} was written; left in the port: {left}")
        assert_old_version_whole(version)
        assert materialize(server.url).success  # the next run: its clean-up deletes what the killed one left
    assert garbage() == []
    assert DomainStorage(resolve_data_dir(), "bank").current(DOUBLED).version > version
