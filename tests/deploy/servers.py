"""Real servers for the deployment tests: PostgreSQL, Redis, an S3-protocol server, and `mesh up` or `mesh dev`.

Each starts on a free 127.0.0.1 port in its own temporary folder, is waited for with a bound, and
is stopped with its whole process group (and its folder removed) however the test ends.
PostgreSQL refuses to run as root: as root (CI, this machine) it runs as the `postgres` user
(`nobody` if there is none) over a folder chowned to it.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from tests.support import MESH, REPO, free_port, mesh_env

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
PG_USER, PG_PASSWORD = "mesh", "mesh-test-secret"


def wait_until(what: str, probe: Callable[[], object], timeout: float, *, alive: Callable[[], bool] = lambda: True,
               log: Path | None = None):
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = probe()
        except Exception:
            found = None
        if found:
            return found
        if not alive():
            raise AssertionError(f"{what}: the process exited" + (f"\n{log.read_text()[-4000:]}" if log and log.exists() else ""))
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}" + (f"\n{log.read_text()[-4000:]}" if log and log.exists() else ""))
        time.sleep(0.3)


def stop_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process group, then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            if sig == signal.SIGTERM:  # the leader is gone; its children may not be
                time.sleep(0.5)
                os.killpg(process.pid, signal.SIGKILL)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def _pg_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise AssertionError("running as root with neither a 'postgres' nor a 'nobody' user to run PostgreSQL as")


def pg_database(env: dict[str, str], name: str) -> dict[str, str]:
    """A new, empty database on the server of `env`; returns the DAGSTER_PG_* environment that names it."""
    import psycopg2

    connection = psycopg2.connect(host=env["DAGSTER_PG_HOST"], port=int(env["DAGSTER_PG_PORT"]), user=env["DAGSTER_PG_USERNAME"],
                                  password=env["DAGSTER_PG_PASSWORD"], dbname=env["DAGSTER_PG_DB"])
    connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()
    return {**env, "DAGSTER_PG_DB": name}


@contextmanager
def postgres_server(timeout: float = 90) -> Iterator[dict[str, str]]:
    """A PostgreSQL server of its own; yields the DAGSTER_PG_* environment of an empty database."""
    import psycopg2

    if not PG_BIN_DIRS:
        raise AssertionError("PostgreSQL is not installed: apt-get install -y postgresql (.ci/run does)")
    bin_dir = PG_BIN_DIRS[0]
    user = _pg_user()
    as_user = ["runuser", "-u", user, "--"] if user else []
    root = Path(tempfile.mkdtemp(prefix="mesh-pg-"))
    if user:
        shutil.chown(root, user)
    (root / "pwfile").write_text(PG_PASSWORD + "\n")
    if user:
        shutil.chown(root / "pwfile", user)
    port = free_port()
    started = False
    try:
        subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", PG_USER, "--pwfile", str(root / "pwfile"),
                        "--auth", "scram-sha-256", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True, timeout=timeout)
        options = (f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=300")
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "server.log"),
                        "-o", options, "-w", "-t", str(int(timeout)), "start"], check=True, capture_output=True, timeout=timeout + 10)
        started = True
        connection = psycopg2.connect(host="127.0.0.1", port=port, user=PG_USER, password=PG_PASSWORD, dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE dagster")
        connection.close()
        yield {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(port), "DAGSTER_PG_USERNAME": PG_USER,
               "DAGSTER_PG_PASSWORD": PG_PASSWORD, "DAGSTER_PG_DB": "dagster"}
    except subprocess.CalledProcessError as exc:
        log = root / "server.log"
        raise AssertionError(f"PostgreSQL did not start: {exc.stderr!r}\n{log.read_text() if log.exists() else ''}") from None
    finally:
        if started:
            subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "-w", "-t", "30", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def pg_query(env: dict[str, str], sql: str, *params) -> list[tuple]:
    import psycopg2

    connection = psycopg2.connect(host=env["DAGSTER_PG_HOST"], port=int(env["DAGSTER_PG_PORT"]), user=env["DAGSTER_PG_USERNAME"],
                                  password=env["DAGSTER_PG_PASSWORD"], dbname=env["DAGSTER_PG_DB"])
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall() if cursor.description is not None else []
        connection.commit()
        return rows
    finally:
        connection.close()


@contextmanager
def redis_server(timeout: float = 30) -> Iterator[str]:
    """A Redis server of its own, no persistence; yields its URL."""
    import redis

    root = Path(tempfile.mkdtemp(prefix="mesh-redis-"))
    port = free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                "--dir", str(root), "--logfile", str(root / "redis.log")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until("redis-server", lambda: redis.Redis(host="127.0.0.1", port=port, socket_timeout=1).ping(), timeout,
                   alive=lambda: process.poll() is None, log=root / "redis.log")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_group(process)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def s3_server(bucket: str = "lake", timeout: float = 60) -> Iterator[tuple[dict[str, str], object]]:
    """moto's standalone S3-protocol server; yields the AWS_* environment (with MESH_PORTS_URI) and a client."""
    import boto3

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until("moto's S3 server", lambda: urllib.request.urlopen(endpoint, timeout=1), timeout,
                   alive=lambda: process.poll() is None)
        env = {"AWS_ACCESS_KEY_ID": "mesh-test", "AWS_SECRET_ACCESS_KEY": "mesh-test", "AWS_REGION": "us-east-1",
               "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "MESH_PORTS_URI": f"s3://{bucket}/mesh"}
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="mesh-test", aws_secret_access_key="mesh-test")
        client.create_bucket(Bucket=bucket)
        yield env, client
    finally:
        stop_group(process)


def graphql(port: int, query: str, **variables) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
                                     data=json.dumps({"query": query, "variables": variables}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body["errors"]
    return body["data"]


LOCATIONS = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
LAUNCH = """mutation($params: ExecutionParams!) { launchPipelineExecution(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
RUN = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


@contextmanager
def mesh_serving(command: str, home: Path, env: dict[str, str], log_path: Path, *args: str, cwd: Path = REPO,
                 timeout: float = 400) -> Iterator[tuple[int, subprocess.Popen]]:
    """`mesh up` (a code server per domain, the webserver and the daemon) or `mesh dev` (`dagster dev`), by default
    on the example mesh; yields the webserver's port once every location is loaded."""
    port = free_port()
    log = open(log_path, "w")
    first_port = ["--first-port", "0"] if command == "up" else []
    process = subprocess.Popen([str(MESH), command, "--port", str(port), *first_port, *args], cwd=cwd,
                               env={**mesh_env(home), **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def loaded():
            entries = graphql(port, LOCATIONS)["workspaceOrError"]["locationEntries"]
            return entries if entries and all(e["loadStatus"] == "LOADED" for e in entries) else None
        wait_until(f"`mesh {command}` to serve every location", loaded, timeout, alive=lambda: process.poll() is None,
                   log=log_path)
        yield port, process
    finally:
        stop_group(process, timeout=60)
        log.close()


def launch(port: int, location: str, asset_keys: list[list[str]]) -> str:
    params = {"selector": {"repositoryLocationName": location, "repositoryName": "__repository__",
                           "jobName": "__ASSET_JOB", "assetSelection": [{"path": key} for key in asset_keys]},
              "runConfigData": {}}
    launched = graphql(port, LAUNCH, params=params)["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def wait_for_runs(port: int, run_ids: list[str], timeout: float) -> dict[str, str]:
    """Each run's final status (SUCCESS, FAILURE or CANCELED)."""
    final: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while len(final) < len(run_ids):
        for run_id in run_ids:
            if run_id not in final:
                status = graphql(port, RUN, id=run_id)["runOrError"]["status"]
                if status in ("SUCCESS", "FAILURE", "CANCELED"):
                    final[run_id] = status
        assert time.monotonic() < deadline, f"runs still not finished after {timeout:.0f} s: {set(run_ids) - set(final)}"
        time.sleep(1)
    return final


def launch_mesh_in_waves(port: int, workspace, timeout: float = 900) -> dict[str, tuple[str, str]]:
    """Launch every domain's products through the webserver, as the UI does: each wave is the domains
    whose upstream domains have all succeeded, launched at once (they run concurrently).
    Returns {domain: (run id, status)}."""
    upstream = {loc.name: {up.domain for _, up in loc.inputs() if up.domain != loc.name} for loc in workspace.locations}
    done: dict[str, tuple[str, str]] = {}
    while len(done) < len(upstream):
        wave = [name for name, ups in upstream.items() if name not in done and ups <= set(done)]
        assert wave, f"no domain can run: {upstream}, done {done}"
        runs = {name: launch(port, name, [list(ref.asset_key.path) for ref in workspace.location(name).products]) for name in wave}
        statuses = wait_for_runs(port, list(runs.values()), timeout)
        done.update({name: (run_id, statuses[run_id]) for name, run_id in runs.items()})
    return done


def code_server_pids(pid: int) -> dict[str, int]:
    """The `dagster code-server start` processes `mesh up` (pid) started, by location name."""
    import psutil

    found = {}
    for child in psutil.Process(pid).children(recursive=True):
        command = child.cmdline()
        if "code-server" in command and "start" in command and "--location-name" in command:
            found[command[command.index("--location-name") + 1]] = child.pid
    return found


def process_tree_rss(pid: int) -> int:
    """Resident memory in bytes of a process and all its descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
    except psutil.NoSuchProcess:
        return 0
