"""`make bench`: publish and read operations.flights (336,776 rows) in the old and new port formats.

Both formats run in the same process, alternated, on the same frame; medians of REPEATS. The
integrity check's cost is measured apart: SHA-256 over the data file against the whole read.
Prints ratios new/old (1.00 = as fast as the foundation's format).
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import legacy_port  # noqa: E402

from domains.operations.products import flights  # noqa: E402
from mesh_core import DomainStorage, ProductRef  # noqa: E402
from mesh_core.validation.contract import run_contract  # noqa: E402

REPEATS = 5
REF = ProductRef("operations", "flights")


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    _, frame = run_contract(flights.contract, flights.fn(), min_rows=1)  # the frame a run publishes
    print(f"operations.flights: {len(frame):,} rows x {frame.shape[1]} columns, {REPEATS} repeats, medians\n")
    times: dict[str, list[float]] = {k: [] for k in ("old publish", "new publish", "old read", "new read", "sha256")}
    with tempfile.TemporaryDirectory() as old_root, tempfile.TemporaryDirectory() as new_root:
        storage = DomainStorage(Path(new_root), "operations")
        reader = DomainStorage(Path(new_root), "insights")
        for i in range(REPEATS):
            times["old publish"].append(timed(lambda: legacy_port.publish(Path(old_root), "operations", "flights", frame, f"run{i:05d}")))
            times["new publish"].append(timed(lambda: storage.publish("flights", frame, version="1.0.0", access="public",
                                                                      run_id=f"run{i:05d}")))
            times["old read"].append(timed(lambda: legacy_port.read(Path(old_root), "operations", "flights")))
            times["new read"].append(timed(lambda: reader.read(REF)))
            [name] = storage.current(REF).files
            data = (Path(new_root) / "operations" / "ports" / "flights" / name).read_bytes()
            times["sha256"].append(timed(lambda: hashlib.sha256(data).hexdigest()))
        size = len(data)
    median = {k: statistics.median(v) for k, v in times.items()}
    for step in ("publish", "read"):
        old, new = median[f"old {step}"], median[f"new {step}"]
        print(f"{step:8} old {old * 1000:7.1f} ms   new {new * 1000:7.1f} ms   ratio new/old {new / old:5.2f}")
    print(f"integrity: SHA-256 of the {size / 1e6:.1f} MB data file {median['sha256'] * 1000:.1f} ms, "
          f"{median['sha256'] / median['new read']:.0%} of a new read")


if __name__ == "__main__":
    main()
