"""Benchmark 6: publish and read operations.flights in the old and new (Delta Lake) port formats.

At 1x (336,776 rows) and at 10x (3.4M rows: bench/flights10x.py's copies). Both formats run in
the same process, alternated, on the same frame; medians of REPEATS. The integrity check's cost
is measured apart: SHA-256 over the data file against the whole read. Ratios are new/old.
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the example domains: not installed, beside bench/

import legacy_port  # noqa: E402
import pandas as pd  # noqa: E402

from domains.operations.products import flights  # noqa: E402
from mesh_core import DomainStorage, ProductRef  # noqa: E402
from mesh_core.run.validation.contract import run_contract  # noqa: E402

REF = ProductRef("operations", "flights")


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def measure(frame: pd.DataFrame, repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in ("old publish", "new publish", "old read", "new read", "sha256")}
    with tempfile.TemporaryDirectory() as old_root, tempfile.TemporaryDirectory() as new_root:
        storage = DomainStorage(Path(new_root), "operations")
        reader = DomainStorage(Path(new_root), "insights")
        for i in range(repeats):
            times["old publish"].append(timed(lambda: legacy_port.publish(Path(old_root), "operations", "flights", frame, f"run{i:05d}")))
            times["new publish"].append(timed(lambda: storage.publish("flights", frame, version="1.0.0", access="public",
                                                                      run_id=f"run{i:05d}")))
            times["old read"].append(timed(lambda: legacy_port.read(Path(old_root), "operations", "flights")))
            times["new read"].append(timed(lambda: reader.read(REF)))
            [name] = storage.current(REF).files
            data = (Path(new_root) / "operations" / "ports" / "flights" / name).read_bytes()
            times["sha256"].append(timed(lambda: hashlib.sha256(data).hexdigest()))
    return {k: statistics.median(v) for k, v in times.items()}


def main(table) -> None:
    from harness import REPEATS

    _, frame = run_contract(flights.contract, flights.fn(), min_rows=1)  # the frame a run publishes
    for factor in (1, 10):
        big = frame if factor == 1 else pd.concat(
            [frame.assign(flight=frame["flight"] + k * 10_000) for k in range(factor)], ignore_index=True)
        print(f"6. port publish and read, operations.flights x{factor}: {len(big):,} rows", flush=True)
        median = measure(big, REPEATS)
        for step in ("publish", "read"):
            old, new = median[f"old {step}"], median[f"new {step}"]
            table.add(f"6. {step} flights x{factor} ({len(big) / 1e6:.1f}M rows): Delta port vs old Parquet + pointer",
                      f"{old:.2f} s", f"{new:.2f} s", f"{new / old:.2f}x", "report", None)
        table.add(f"   x{factor}: SHA-256 of the data file, share of a new read", "-",
                  f"{median['sha256']:.2f} s", f"{median['sha256'] / median['new read']:.0%}", "-", None)
        del big


if __name__ == "__main__":
    from harness import Table

    result = Table()
    main(result)
    print(result.render())
