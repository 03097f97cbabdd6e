"""Benchmark 7: `mesh serve` under concurrent readers vs reading the same Delta version directly.

One published port (operations.flights, the rows a run publishes), one `mesh serve` on loopback, and
CLIENTS threads each running QUERIES reads, alternated with the baseline, REPEATS times:

- Mesh: a Delta Sharing read as a client makes it: POST .../query with the bearer token, GET the
  signed file URL it returns, decode the Parquet into Arrow (what every client then does).
- baseline: the same version read directly with deltalake (`DeltaTable(uri, version).to_pyarrow_table()`),
  a reader that can open the port's files, no server, no token, no HTTP.

Reported: reads per second over the whole run (wall time), and the p95 of one read's latency.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the example domains: not installed, beside bench/

from harness import BIN, REPEATS, REPO, Table, run_alone, scratch  # noqa: E402

CLIENTS = int(os.environ.get("BENCH_SHARE_CLIENTS", "20"))
QUERIES = int(os.environ.get("BENCH_SHARE_QUERIES", "20"))
PREFIX = "/delta-sharing"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def publish(home: Path) -> tuple[str, int, int]:
    """operations.flights as a run publishes it, into a port under `home`: (port uri, version, rows)."""
    from domains.operations.products import flights
    from mesh_core import DomainStorage, ProductRef
    from mesh_core.run.validation.contract import run_contract

    _, frame = run_contract(flights.contract, flights.fn(), min_rows=1)
    storage = DomainStorage(home / "data", "operations")
    published = storage.publish("flights", frame, version="1.0.0", access="public", run_id="bench-sharing").version
    return storage.port(ProductRef("operations", "flights")).uri, published.version, published.rows


def serve(home: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    env.pop("MESH_DATA_DIR", None)
    server = subprocess.Popen([str(BIN / "mesh"), "serve", "--port", str(port), "--rate-limit", "100000"],
                              cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"mesh serve exited {server.returncode}:\n{log.read_text()[-4000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{PREFIX}/shares", timeout=5)
        except urllib.error.HTTPError:
            return server  # up: it refused a request without a token
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"mesh serve did not answer in 120 s:\n{log.read_text()[-4000:]}") from None
            time.sleep(0.3)


def token(home: Path, port: int) -> str:
    profile = home / "bench.share"
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    env.pop("MESH_DATA_DIR", None)
    subprocess.run([str(BIN / "mesh"), "share", "token", "create", "bench-reader", "--profile", str(profile),
                    "--endpoint", f"http://127.0.0.1:{port}{PREFIX}"], cwd=REPO, env=env, check=True,
                   capture_output=True, text=True)
    return json.loads(profile.read_text())["bearerToken"]


def shared_read(port: int, bearer: str, version: int) -> Callable[[], int]:
    import pyarrow.parquet as pq

    query = urllib.request.Request(
        f"http://127.0.0.1:{port}{PREFIX}/shares/operations/schemas/operations/tables/flights/query",
        data=json.dumps({"version": version}).encode(), method="POST",
        headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"})

    def read() -> int:
        with urllib.request.urlopen(query, timeout=120) as answer:
            lines = [json.loads(line) for line in answer.read().splitlines() if line.strip()]
        rows = 0
        for line in lines:
            if "file" in line:
                with urllib.request.urlopen(line["file"]["url"], timeout=120) as data:
                    rows += pq.read_table(io.BytesIO(data.read())).num_rows
        return rows

    return read


def direct_read(uri: str, version: int) -> Callable[[], int]:
    from deltalake import DeltaTable

    def read() -> int:
        return DeltaTable(uri, version=version).to_pyarrow_table().num_rows

    return read


def load(read: Callable[[], int], rows: int) -> tuple[float, float]:
    """CLIENTS threads x QUERIES reads: (reads per second, p95 seconds). Every read must return `rows`."""

    def client(_: int) -> list[float]:
        took = []
        for _ in range(QUERIES):
            started = time.perf_counter()
            got = read()
            took.append(time.perf_counter() - started)
            if got != rows:
                raise RuntimeError(f"a read returned {got} rows, not {rows}")
        return took

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        latencies = sorted(t for each in pool.map(client, range(CLIENTS)) for t in each)
    seconds = time.perf_counter() - started
    return len(latencies) / seconds, latencies[max(0, int(0.95 * len(latencies)) - 1)]


def main(table: Table) -> None:
    print(f"7. mesh serve: {CLIENTS} clients x {QUERIES} reads vs reading the Delta version directly", flush=True)
    with scratch("bench-sharing-") as work:
        home = work / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text((REPO / "dagster_home" / "dagster.yaml").read_text())
        uri, version, rows = publish(home)
        port = _free_port()
        bearer = token(home, port)
        server = serve(home, port, work / "serve.log")
        try:
            sides = {"baseline": direct_read(uri, version), "Mesh": shared_read(port, bearer, version)}
            sides["Mesh"]()  # the first query builds the version's snapshot: not counted
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
            for i in range(REPEATS):
                for name, read in sides.items():
                    results[name].append(load(read, rows))
                print(f"  #{i + 1}: " + " | ".join(f"{name} {r[-1][0]:6.1f} reads/s p95 {r[-1][1] * 1000:5.0f} ms"
                                                   for name, r in results.items()), flush=True)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
    rate = {name: statistics.median(r for r, _ in values) for name, values in results.items()}
    p95 = {name: statistics.median(p for _, p in values) for name, values in results.items()}
    what = f"{CLIENTS} x {QUERIES}, flights ({rows / 1e6:.1f}M rows)"
    table.add(f"7. reads/s (higher is better), {what}: mesh serve vs Delta directly", f"{rate['baseline']:.1f}/s",
              f"{rate['Mesh']:.1f}/s", f"{rate['Mesh'] / rate['baseline']:.2f}x", "report", None)
    table.add("   p95 latency of one read (query + file + decode)", f"{p95['baseline'] * 1000:.0f} ms",
              f"{p95['Mesh'] * 1000:.0f} ms", f"{p95['Mesh'] / p95['baseline']:.2f}x", "report", None)


if __name__ == "__main__":
    run_alone(main)
