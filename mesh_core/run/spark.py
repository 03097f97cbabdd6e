"""The domain's Apache Spark: where its Spark products run, chosen when a step starts, never at load.

A domain points its products at a Spark by configuration alone: `$MESH_SPARK_REMOTE` on its code
location (or the `SparkEngine` resource it passes to `domain_definitions(resources=...)`), either a
Spark Connect URL (`sc://spark-connect:15002`, Databricks, EMR, Dataproc; a token goes in the URL
from the environment: `sc://host:443/;token=...`) or a local Spark in the step's process
(`local[4]`). With a Spark configured, the domain's SQL products run in Spark SQL too; without one,
they run in DuckDB and a product written for Spark gets a local Spark (`local[*]`).

Nothing here imports pyspark until a step asks for a session.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import Any

import dagster as dg

from mesh_core.errors import SparkUnavailableError

SPARK_RESOURCE_KEY = "mesh_spark"
REMOTE_ENV = "MESH_SPARK_REMOTE"
LOCAL_DEFAULT = "local[*]"
PROBE_RETRIES = 3  # a Spark Connect server that does not answer these is unreachable (gRPC's default waits 10 min)
# During a step: a server that went away (its driver killed) fails the step within about 15 s, not 10 minutes.
RUN_RETRIES, RUN_MAX_BACKOFF_MS = 5, 8000
# Every session Mesh hands a product: timestamps written as Parquet's TIMESTAMP_MICROS (what Delta
# readers expect, not INT96), instants in UTC, and SQL that cannot read a file by path (only its inputs).
SESSION_CONF = {
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.runSQLOnFiles": "false",
}
_LOCAL = re.compile(r"^local(\[(\*|\d+)(,\s*\d+)?\])?$")
_SECRET = re.compile(r"(;\s*token=)[^;/]*", re.IGNORECASE)


class SparkEngine(dg.ConfigurableResource):
    """Where the domain's Spark products run. `remote`: a Spark Connect URL (`sc://host:15002`) or
    a local master (`local[4]`); unset, `$MESH_SPARK_REMOTE` when the step starts."""

    remote: str | None = None

    def resolved(self) -> str | None:
        """The configured Spark (the resource's, else the environment's), or None."""
        value = (self.remote or os.environ.get(REMOTE_ENV, "")).strip()
        return value or None

    @property
    def runs_sql(self) -> bool:
        """Whether the domain's SQL products run on Spark: whenever a Spark is configured."""
        return self.resolved() is not None

    def session(self, ref: object):
        """A new Spark session for one step of product `ref` (its own temp views and settings), with
        SESSION_CONF. Raises SparkUnavailableError, one line naming the URL and the cause."""
        remote = self.resolved() or LOCAL_DEFAULT
        if _LOCAL.match(remote):
            return _local_session(remote, ref)
        if not remote.startswith("sc://"):
            raise SparkUnavailableError(
                f"{ref} runs on Spark, but {REMOTE_ENV}={shown(remote)!r} is neither a Spark Connect URL nor a local "
                "master. Set it to sc://<host>:<port> (Spark Connect) or local[<threads>].")
        return _connect_session(remote, ref)


def shown(remote: str) -> str:
    """`remote` as it may be printed: a token in a Spark Connect URL is masked."""
    return _SECRET.sub(r"\1***", remote)


def is_spark_frame(value: Any) -> bool:
    """Whether `value` is a pyspark DataFrame (classic or Spark Connect), without importing pyspark."""
    module = getattr(type(value), "__module__", "") or ""
    return module.startswith("pyspark.") and type(value).__name__ == "DataFrame"


def _connect_session(remote: str, ref: object):
    try:
        from pyspark.sql import SparkSession
        from pyspark.sql.connect.client.retries import DefaultPolicy
    except ImportError as exc:
        raise SparkUnavailableError(f"{ref} runs on Spark at {shown(remote)}, but the Spark Connect client is not "
                                    f"installed ({exc}). Install mesh-core[spark].") from None
    try:
        session = SparkSession.builder.remote(remote).create()
        client = session.client
        client.set_retry_policies([DefaultPolicy(max_retries=PROBE_RETRIES, max_backoff=2000)])
        with warnings.catch_warnings():  # gRPC's own "retries exceeded" warning: the error below says it
            warnings.simplefilter("ignore")
            session.version  # the first call to the server
        client.set_retry_policies([DefaultPolicy(max_retries=RUN_RETRIES, max_backoff=RUN_MAX_BACKOFF_MS)])
        for key, value in SESSION_CONF.items():
            session.conf.set(key, value)
    except Exception as exc:
        raise SparkUnavailableError(f"{ref}: cannot reach Spark at {shown(remote)}: {spark_cause(exc)}. Check the URL in "
                                    f"{REMOTE_ENV} (or the domain's SparkEngine resource) and that the server runs.") from None
    return session


def _local_session(master: str, ref: object):
    try:
        from pyspark.sql import SparkSession

        shared = SparkSession.builder.master(master).appName("mesh").config("spark.ui.enabled", "false").getOrCreate()
        session = shared.newSession()  # the step's own temp views and settings over the process's one Spark
        for key, value in SESSION_CONF.items():
            session.conf.set(key, value)
        return session
    except Exception as exc:
        raise SparkUnavailableError(f"{ref}: cannot start a local Spark ({master}): {spark_cause(exc)}. A local Spark "
                                    "needs Java 17 (Debian: openjdk-17-jre-headless) and mesh-core[spark].") from None


def spark_cause(exc: BaseException) -> str:
    """What Spark or gRPC said, on one line: gRPC's details, else the message's first line, without
    the JVM stack."""
    text = str(exc)
    found = re.search(r'details = "([^"]+)"', text) or re.search(r"(failed to connect to all addresses[^\n]*)", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(("JVM stacktrace", "at "))]
    line = found.group(1) if found else (lines[0] if lines else type(exc).__name__)
    return " ".join(line.split())[:400].rstrip(".")
