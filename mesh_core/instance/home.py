"""The Dagster instance the mesh runs on: created once, safely, and kept honest about dead runs.

Two processes creating a fresh sqlite instance at the same moment can leave its schema with
two heads for good (Dagster issue #27390), so Mesh creates it under a file lock, once. A new,
empty DAGSTER_HOME gets Mesh's dagster.yaml (telemetry off, queued runs, one run per domain);
with MESH_INSTANCE=postgres, the same plus run, event and schedule storage in PostgreSQL, whose
credentials come only from the environment (DAGSTER_PG_*), checked before Dagster reads them.
A run of `mesh materialize` whose process died is marked failed instead of staying STARTED.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

import dagster as dg

from mesh_core.errors import MeshError

LAUNCHED_BY = "mesh/launched_by"
HOST_TAG = "mesh/host"
PID_TAG = "mesh/pid"
INIT_LOCK_SECONDS = 300.0

# Keep in step with dagster_home/dagster.yaml (a test compares them).
DEFAULT_DAGSTER_YAML = """\
# The embedded Dagster instance: sqlite storage lands in this folder (git-ignored).
telemetry:
  enabled: false

# Runs and the event log stay in Dagster's SQLite files in this folder, with connections kept open
# instead of one per access (mesh_core/instance/pooled_sqlite.py); a `storage:` section below still wins.
instance_class:
  module: mesh_core.instance.pooled_sqlite
  class: MeshInstance

# Runs launched from the UI, sensors and the daemon queue here; one run per domain at a time,
# since a domain's DuckDB file takes one writer at a time.
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator

concurrency:
  runs:
    max_concurrent_runs: 4
    tag_concurrency_limits:
      - key: dagster/code_location
        value:
          applyLimitPerUniqueValue: true
        limit: 1

# The daemon fails runs whose worker stopped starting or cancelling instead of waiting forever.
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180

# The daemon evaluates each product's freshness objective (its SLO) and records fresh / late / failing.
freshness:
  enabled: true
"""


INSTANCE_ENV = "MESH_INSTANCE"
INSTANCE_PROFILES = ("sqlite", "postgres")
POSTGRES_VARIABLES = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")

# The deployment profile: every process (webserver, daemon, code servers, run and step workers)
# shares one database, so none of them needs the others' disk.
POSTGRES_STORAGE = """
# Run, event and schedule storage in PostgreSQL (MESH_INSTANCE=postgres). Credentials come from
# the environment only: set them from your secret store, never in this file.
storage:
  postgres:
    postgres_db:
      hostname: {env: DAGSTER_PG_HOST}
      port: {env: DAGSTER_PG_PORT}
      username: {env: DAGSTER_PG_USERNAME}
      password: {env: DAGSTER_PG_PASSWORD}
      db_name: {env: DAGSTER_PG_DB}
      scheme: postgresql+psycopg2  # the driver dagster-postgres installs; SQLAlchemy 2.1 defaults to psycopg 3

# Many domains: the daemon evaluates sensors and schedules in threads, not one after another
# (100 domains on 2 cores: a pass over every domain's sensors took 63 s serially, 30 s so).
sensors:
  use_threads: true
  num_workers: 8
schedules:
  use_threads: true
  num_workers: 8
"""


def instance_profile() -> str:
    """The instance profile the environment selects: sqlite (embedded, one machine) unless MESH_INSTANCE says postgres."""
    profile = os.environ.get(INSTANCE_ENV, "").strip() or "sqlite"
    if profile not in INSTANCE_PROFILES:
        raise MeshError(f"{INSTANCE_ENV}={profile!r} is not an instance profile: use sqlite (the default) or postgres.")
    return profile


def instance_yaml(profile: str = "sqlite") -> str:
    """The dagster.yaml Mesh writes into a new DAGSTER_HOME for `profile`."""
    return DEFAULT_DAGSTER_YAML + (POSTGRES_STORAGE if profile == "postgres" else "")


def check_instance_environment(config: Path) -> None:
    """Every environment variable `config` reads is set; else one error naming them all and the fix."""
    import yaml

    try:
        document = yaml.safe_load(config.read_text()) or {}
    except yaml.YAMLError as exc:
        raise MeshError(f"{config} is not valid YAML: {exc}. Fix it, or move it away to get Mesh's default.") from None
    storage = document.get("storage") or {}
    if instance_profile() == "postgres" and "postgres" not in storage:
        raise MeshError(f"{INSTANCE_ENV}=postgres, but {config} keeps its storage in sqlite (it was written for the "
                        "embedded instance). Point DAGSTER_HOME at a new folder (Mesh writes the Postgres profile "
                        "there), or add the storage section shown in docs/deploy.md.")
    missing = [name for name in dict.fromkeys(_env_references(document)) if not os.environ.get(name)]
    if missing:
        raise MeshError(f"{config} reads {', '.join(missing)} from the environment, but "
                        f"{'it is' if len(missing) == 1 else 'they are'} not set. Export "
                        + " ".join(f"{name}=..." for name in missing)
                        + " (from your secret store; docs/deploy.md lists them), or unset MESH_INSTANCE and use a "
                        "DAGSTER_HOME with the embedded sqlite instance.")


def _env_references(value) -> list[str]:
    """The variables of Dagster's `{env: NAME}` values anywhere in a parsed dagster.yaml."""
    if isinstance(value, dict):
        if set(value) == {"env"} and isinstance(value["env"], str):
            return [value["env"]]
        return [name for item in value.values() for name in _env_references(item)]
    if isinstance(value, list):
        return [name for item in value for name in _env_references(item)]
    return []


def prepare_instance(home: str | os.PathLike) -> Path:
    """Create the instance in `home` once, under a lock, with Mesh's dagster.yaml if it has none
    (the profile MESH_INSTANCE selects)."""
    from filelock import FileLock, Timeout

    home = Path(home)
    config = home / "dagster.yaml"
    if home.exists() and not home.is_dir():
        raise MeshError(f"DAGSTER_HOME {home} is a file, not a folder. Point DAGSTER_HOME at a folder (it is created if missing).")
    try:
        home.mkdir(parents=True, exist_ok=True)
        with FileLock(str(home / ".mesh-instance.lock"), timeout=INIT_LOCK_SECONDS):
            if not config.exists():
                config.write_text(instance_yaml(instance_profile()))
            check_instance_environment(config)
            with dg.DagsterInstance.from_config(str(home)) as instance:
                instance.get_runs(limit=1)  # creates (or migrates) the storage while we hold the lock
    except Timeout:
        raise MeshError(f"Another process kept {home} locked for {INIT_LOCK_SECONDS:.0f} s while creating the instance.") from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise MeshError(_disk_full(home, exc.strerror or str(exc))) from None
        raise MeshError(f"Cannot use DAGSTER_HOME {home}: {exc.strerror or exc}.") from exc
    except Exception as exc:  # the instance database refused us or is unreachable
        chain = [exc]
        while chain[-1].__cause__ or chain[-1].__context__:
            chain.append(chain[-1].__cause__ or chain[-1].__context__)
        refused = next((e for e in chain if type(e).__name__ == "OperationalError"), None)
        if refused is None and type(exc).__name__ != "DagsterPostgresException":
            raise
        reason = str(getattr(refused, "orig", None) or refused or exc).strip().splitlines()[0]
        if not _uses_postgres(config):  # the embedded SQLite instance: no server, no DAGSTER_PG_* to check
            if "disk is full" in reason.lower() or _free_bytes(home) < FULL_DISK_BYTES:
                raise MeshError(_disk_full(home, f"SQLite: {reason}")) from None
            raise MeshError(f"Cannot open the SQLite instance database in {home}: {reason}. Check that {home} is "
                            "writable by this user and its .db files are intact (restore them from a backup, or "
                            "point DAGSTER_HOME at a new folder).") from None
        where = ":".join(os.environ.get(name, "?") for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT"))
        raise MeshError(f"Cannot open the instance database of {home / 'dagster.yaml'} ({where}, user "
                        f"{os.environ.get('DAGSTER_PG_USERNAME', '?')}): {reason}. Check DAGSTER_PG_* and that the "
                        "server is up and accepts this user.") from None
    return home


FULL_DISK_BYTES = 1 << 20  # less free than this, and a failed SQLite write is a full disk (it often says "disk I/O error")


def _uses_postgres(config: Path) -> bool:
    import yaml

    try:
        document = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return instance_profile() == "postgres"
    return "postgres" in (document.get("storage") or {})


def _free_bytes(path: Path) -> int:
    try:
        stat = os.statvfs(path)
    except OSError:
        return FULL_DISK_BYTES  # unknown: not reported as full
    return stat.f_bavail * stat.f_frsize


def _disk_full(home: Path, said: str) -> str:
    return (f"Cannot write the instance in DAGSTER_HOME {home}: no space left on device ({said}). Free space "
            "on that disk, or point DAGSTER_HOME at one with room; nothing was run.")


def run_tags() -> dict[str, str]:
    """Tags that let a later sweep tell whether the process running a run is still alive."""
    return {LAUNCHED_BY: "mesh-materialize", HOST_TAG: socket.gethostname()[:63], PID_TAG: str(os.getpid())}


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the runs Mesh started in this host whose process is gone. Returns their ids."""
    host = socket.gethostname()[:63]
    dead = []
    runs = instance.get_runs(filters=dg.RunsFilter(
        # NOT_STARTED too: execute_in_process creates the run, then starts it; a kill can fall between.
        statuses=[dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED],
        tags={LAUNCHED_BY: "mesh-materialize", HOST_TAG: host},
    ))
    for run in runs:
        pid = int(run.tags.get(PID_TAG, "0"))
        if pid and not process_alive(pid):
            instance.report_run_failed(run, f"Mesh: the process that ran this run (pid {pid} on {host}) died.")
            dead.append(run.run_id)
    return dead


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:  # a zombie (killed, not yet reaped by its parent) is dead too
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
