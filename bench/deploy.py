"""`python bench/deploy.py`: the figures in docs/deploy.md, measured on this machine with the
real servers the deployment tests start (PostgreSQL, Redis, Celery, code servers, daemon).

1. The whole example mesh, the same selection each time: `mesh materialize` on the embedded sqlite
   instance and on PostgreSQL; then through the webserver and daemon (`mesh up`, runs launched over
   GraphQL, domains of a wave concurrently) with steps in the run process and with steps on Celery.
2. Each domain's code server's resident memory, idle (process tree).
3. The daemon on a simulated workspace of N domains: N code locations served over gRPC (by a few
   real code servers of generated domains, several location names each: memory for 100 real code
   servers is not on this machine), on PostgreSQL, each domain's failure sensor every 5 s; the
   sensor daemon's pass over all of them is the median gap between two ticks of one sensor.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.deploy.servers import (code_server_pids, launch_mesh_in_waves, mesh_serving, pg_query, postgres_server,  # noqa: E402
                                  process_tree_rss, redis_server, stop_group, wait_until)
from tests.support import MESH, mesh_env  # noqa: E402

SENSOR_SECONDS = 5


def materialize_seconds(env: dict[str, str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "dagster_home"
        started = time.perf_counter()
        run = subprocess.run([str(MESH), "materialize", "--json"], cwd=REPO, env={**mesh_env(home), **env},
                             capture_output=True, text=True, timeout=1200)
        wall = time.perf_counter() - started
        assert run.returncode == 0, run.stderr[-2000:]
        return wall


def through_the_webserver(env: dict[str, str], *, celery_broker: str | None = None) -> tuple[float, dict[str, float]]:
    """Seconds to run the whole mesh through `mesh up`, and each code server's idle RSS (MiB)."""
    from mesh_core.governance.workspace import MeshWorkspace

    workspace = MeshWorkspace.load(REPO / "workspace.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "dagster_home"
        worker = None
        if celery_broker:
            env = {**env, "MESH_EXECUTOR": "celery", "MESH_CELERY_BROKER": celery_broker}
            subprocess.run([sys.executable, "-c", "import sys; from mesh_core.instance.home import prepare_instance; "
                            "prepare_instance(sys.argv[1])", str(home)], env={**mesh_env(home), **env}, check=True)
            (Path(tmp) / "celery.yaml").write_text(f"execution:\n  config:\n    broker: {celery_broker}\n    backend: {celery_broker}\n")
            bin_dir = Path(sys.executable).parent
            log = Path(tmp) / "worker.log"
            worker = subprocess.Popen([str(bin_dir / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                                       "-y", str(Path(tmp) / "celery.yaml"), "--", "--concurrency=2"],
                                      cwd=REPO, env={**mesh_env(home), **env, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
                                      stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
            wait_until("the Celery worker", lambda: "ready." in log.read_text(), 120)
        try:
            with mesh_serving("up", home, env, Path(tmp) / "up.log") as (port, up):
                rss = {name: process_tree_rss(pid) / 2**20 for name, pid in code_server_pids(up.pid).items()}
                started = time.perf_counter()
                results = launch_mesh_in_waves(port, workspace, timeout=1800)
                seconds = time.perf_counter() - started
                assert {status for _, status in results.values()} == {"SUCCESS"}, results
        finally:
            if worker:
                stop_group(worker)
    return seconds, rss


def queue_throughput(env: dict[str, str], per_domain: int = 3) -> dict[str, float]:
    """Runs per minute through the queue: the mesh published once, then `per_domain` runs of every
    domain submitted at once (the coordinator starts at most 4, one per domain) until all finish."""
    from mesh_core.governance.workspace import MeshWorkspace
    from tests.deploy.servers import launch, wait_for_runs

    workspace = MeshWorkspace.load(REPO / "workspace.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "dagster_home"
        with mesh_serving("up", home, env, Path(tmp) / "up.log") as (port, up):
            launch_mesh_in_waves(port, workspace, timeout=1800)
            started = time.perf_counter()
            run_ids = [launch(port, loc.name, [list(ref.asset_key.path) for ref in loc.products])
                       for _ in range(per_domain) for loc in workspace.locations]
            statuses = wait_for_runs(port, run_ids, 1800)
            seconds = time.perf_counter() - started
    return {"runs": len(run_ids), "seconds": round(seconds, 1), "runs_per_minute": round(60 * len(run_ids) / seconds, 1),
            "succeeded": sum(status == "SUCCESS" for status in statuses.values())}


def generated_domains(root: Path, count: int) -> list[tuple[str, str]]:
    """`count` small generated domains (bench/synthetic.py's generator): (location, module) pairs."""
    sys.path.insert(0, str(REPO / "bench"))
    from synthetic import generate

    generate(root, count, 3)
    return [(f"domain_{d:02d}", f"gen.domain_{d:02d}") for d in range(count)]


def daemon_pass_seconds(pg: dict[str, str], domains: int, *, threads: int = 0, servers: int = 5,
                        passes: int = 3, timeout: float = 480) -> dict[str, float]:
    """The sensor daemon on `domains` simulated domains: seconds from its start until every sensor has
    ticked once, and the median gap between two ticks of one sensor (a pass over all of them; each
    sensor asks for one every SENSOR_SECONDS). `threads`: Dagster's sensors.use_threads workers."""
    from dagster._grpc.client import DagsterGrpcClient

    from tests.support import free_port

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        real = generated_domains(root, servers)
        home = root / "dagster_home"
        env = {**mesh_env(home), **pg, "MESH_INSTANCE": "postgres", "PYTHONPATH": str(root),
               "MESH_FAILURE_SENSOR_INTERVAL_SECONDS": str(SENSOR_SECONDS), "MESH_AUTOMATION_INTERVAL_SECONDS": str(SENSOR_SECONDS)}
        subprocess.run([sys.executable, "-c", "import sys; from mesh_core.instance.home import prepare_instance; "
                        "prepare_instance(sys.argv[1])", str(home)], env=env, check=True)
        if threads:
            with open(home / "dagster.yaml", "a") as config:
                config.write(f"\nsensors:\n  use_threads: true\n  num_workers: {threads}\n")
        ports, processes = [], []
        try:
            for location, module in real:
                port = free_port()
                ports.append(port)
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "dagster", "code-server", "start", "-h", "127.0.0.1", "-p", str(port), "-m", module,
                     "-d", str(root), "--location-name", location], cwd=root, env=env,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
            for port in ports:
                wait_until("a code server", lambda: DagsterGrpcClient(port=port, host="127.0.0.1").ping("x"), 300)
            # N location names over the real servers: the daemon keeps N locations and ticks N sets of sensors.
            lines = [f"  - grpc_server: {{host: 127.0.0.1, port: {ports[i % servers]}, location_name: sim_{i:03d}}}"
                     for i in range(domains)]
            (root / "workspace.yaml").write_text("load_from:\n" + "\n".join(lines) + "\n")
            log = root / "daemon.log"
            started = time.time()
            daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(root / "workspace.yaml")],
                                      cwd=root, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
            processes.append(daemon)
            expected = domains  # each domain's failure sensor (the sensor daemon's work; automation has its own daemon)
            by_sensor: dict[str, list] = {}
            while time.time() - started < timeout:
                time.sleep(5)
                by_sensor = {}
                for selector, stamp in pg_query(pg, "SELECT selector_id, timestamp FROM job_ticks ORDER BY timestamp"):
                    by_sensor.setdefault(selector, []).append(stamp.timestamp())
                if sum(len(stamps) > passes for stamps in by_sensor.values()) >= expected:
                    break
        finally:
            for process in processes:
                stop_group(process)
    gaps = [b - a for stamps in by_sensor.values() for a, b in zip(stamps, stamps[1:])]
    firsts = sorted(stamps[0] for stamps in by_sensor.values())
    return {"sensors": expected, "sensors_ticked": len(by_sensor), "ticks": sum(map(len, by_sensor.values())),
            "all_ticked_once_s": round(firsts[expected - 1] - started, 1) if len(firsts) >= expected else None,
            "median_gap_s": round(statistics.median(gaps), 1) if gaps else None,
            "p90_gap_s": round(statistics.quantiles(gaps, n=10)[-1], 1) if len(gaps) > 10 else None}


def main() -> None:
    """MESH_BENCH_PARTS picks parts (default: all): materialize, webserver, celery, queue, daemon."""
    parts = os.environ.get("MESH_BENCH_PARTS", "materialize,webserver,celery,queue,daemon").split(",")
    figures: dict[str, object] = {}
    if "materialize" in parts:
        figures["materialize_sqlite_s"] = round(materialize_seconds({}), 1)
        with postgres_server() as pg:
            figures["materialize_postgres_s"] = round(materialize_seconds({"MESH_INSTANCE": "postgres", **pg}), 1)
        print(figures, flush=True)
    if "webserver" in parts:
        with postgres_server() as pg:
            seconds, rss = through_the_webserver({"MESH_INSTANCE": "postgres", **pg})
        figures["webserver_in_process_s"] = round(seconds, 1)
        figures["code_server_rss_mib"] = {name: round(value) for name, value in sorted(rss.items())}
        print(figures, flush=True)
    if "celery" in parts:
        with postgres_server() as pg, redis_server() as broker:
            figures["webserver_celery_s"] = round(through_the_webserver({"MESH_INSTANCE": "postgres", **pg}, celery_broker=broker)[0], 1)
        print(figures, flush=True)
    if "queue" in parts:
        with postgres_server() as pg:
            figures["queue_postgres"] = queue_throughput({"MESH_INSTANCE": "postgres", **pg})
        print(figures, flush=True)
    if "daemon" in parts:
        for n in [int(n) for n in os.environ.get("MESH_BENCH_DOMAINS", "10,50,100").split(",")]:
            for threads in [int(t) for t in os.environ.get("MESH_BENCH_THREADS", "0,8").split(",")]:
                with postgres_server() as pg:
                    figures[f"daemon_{n}_domains_{threads}_threads"] = daemon_pass_seconds(pg, n, threads=threads)
                print(figures, flush=True)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
