"""Micro-benchmark of `diff_versions`: two versions of an N-row product in a real port.

    python bench/diff.py build DIR ROWS     # publish the two versions (once)
    python bench/peak.py python bench/diff.py run DIR [key|hash]

The second version drops 1% of the rows (a filter), multiplies 10% of the prices by 100 (a unit
change) and renames one carrier code: a diff with every kind of change."""

from __future__ import annotations

import sys
import time
from pathlib import Path

PRODUCT = ("bench", "flights")


def build(root: Path, rows: int) -> None:
    import numpy as np
    import pandas as pd

    from mesh_core import DomainStorage

    rng = np.random.default_rng(7)
    ids = np.arange(rows, dtype=np.int64)
    carriers = np.array(["AA", "DL", "UA", "B6", "WN", "AS", "NK", "F9"])
    origins = np.array([f"A{i:02d}" for i in range(80)])
    frame = pd.DataFrame({
        "flight_id": ids,
        "carrier": carriers[rng.integers(0, len(carriers), rows)],
        "origin": origins[rng.integers(0, len(origins), rows)],
        "tailnum": np.char.add("N", rng.integers(100, 5000, rows).astype(str)),
        "price": rng.gamma(2.0, 150.0, rows).round(2),
        "delay": np.where(rng.random(rows) < 0.05, np.nan, rng.normal(5, 30, rows).round()),
        "departed": pd.Timestamp("2024-01-01") + pd.to_timedelta(ids * 3, unit="s"),
    })
    storage = DomainStorage(root, PRODUCT[0])
    storage.publish(PRODUCT[1], frame, version="1.0.0", access="public", run_id="bench0001-before")
    changed = frame[rng.random(rows) >= 0.01].copy()
    unit = rng.random(len(changed)) < 0.10
    changed.loc[unit, "price"] = changed.loc[unit, "price"] * 100
    changed["carrier"] = changed["carrier"].replace({"DL": "DAL"})
    storage.publish(PRODUCT[1], changed, version="1.0.0", access="public", run_id="bench0002-after")


def run(root: Path, mode: str) -> None:
    from mesh_core import DomainStorage, ProductRef
    from mesh_core.operate.diff import PortSide, diff_versions

    port = DomainStorage(root, PRODUCT[0]).port(ProductRef(*PRODUCT))
    versions = sorted(v.version for v in port.history())
    started = time.perf_counter()
    diff = diff_versions(PortSide(port.uri, versions[-2]), PortSide(port.uri, versions[-1]),
                         key=("flight_id",) if mode == "key" else None)
    seconds = time.perf_counter() - started
    print(f"bench-diff mode={mode} rows {diff.rows_before}->{diff.rows_after} +{diff.added} -{diff.removed} "
          f"~{diff.changed} columns={[c.name for c in diff.columns]} seconds={seconds:.2f}")


if __name__ == "__main__":
    command, folder = sys.argv[1], Path(sys.argv[2])
    if command == "build":
        build(folder, int(sys.argv[3]))
    else:
        run(folder, sys.argv[3] if len(sys.argv) > 3 else "key")
