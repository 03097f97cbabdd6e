"""`make bench`: every benchmark, each against its baseline in the same run, then one table.

    python bench/run.py [names...]     names: mesh synthetic validation storage sharing scale (default: these six),
                                       instance (Mesh's instance storage vs Dagster's; ~3 min),
                                       preview (`mesh preview` vs `mesh materialize` of the same products, 1x and 10x),
                                       spark (insights on a local Spark Connect server at 10x flights vs a plain PySpark script; ~10 min)

BENCH_REPEATS (default 3) sets the repeats; BENCH_FULL=1 adds the long runs (10M-row validation,
`mesh materialize` on 50 x 20, operations + insights at 100x flights). Numbers and the machine go in docs/performance.md.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import example_mesh  # noqa: E402
import instance_storage  # noqa: E402
import preview  # noqa: E402
import scale  # noqa: E402
import sharing  # noqa: E402
import spark  # noqa: E402
import storage  # noqa: E402
import synthetic  # noqa: E402
import validation  # noqa: E402
from harness import REPEATS, Table  # noqa: E402

BENCHMARKS = {"mesh": example_mesh.main, "synthetic": synthetic.main, "validation": validation.main,
              "storage": storage.main, "sharing": sharing.main, "scale": scale.main}
EXTRA = {"instance": instance_storage.main, "preview": preview.main, "spark": spark.main}  # only when named
KNOWN = {**BENCHMARKS, **EXTRA}


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    from importlib.metadata import version

    versions = ", ".join(f"{p} {version(p)}" for p in ("dagster", "pandas", "pandera", "great_expectations",
                                                        "duckdb", "deltalake", "pyarrow"))
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, {versions}; "
            f"load average at the end {load}")


def main(names: list[str]) -> None:
    started = time.perf_counter()
    table = Table()
    unknown = [name for name in names if name not in KNOWN]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {', '.join(unknown)}: choose from {', '.join(KNOWN)}")
    for name in names or BENCHMARKS:
        KNOWN[name](table)
    print(f"\nMedians of {REPEATS}, baseline and Mesh alternated in this run; {time.perf_counter() - started:.0f} s in all.")
    print(machine() + "\n")
    print(table.render())


if __name__ == "__main__":
    main(sys.argv[1:])
