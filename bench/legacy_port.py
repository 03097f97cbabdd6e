"""The foundation's port format (commit 2cf729a), kept only as the benchmark's baseline.

A Parquet snapshot written to a staged name and renamed into place, the DuckDB table replaced
in one transaction, then a JSON pointer swapped atomically; readers follow the pointer. This
is the format the Delta Lake ports replaced; it has none of their guarantees.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def publish(root: Path, domain: str, product: str, frame: pd.DataFrame, run_id: str) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    port = root / domain / "ports" / product
    port.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    snapshot = f"{now:%Y%m%dT%H%M%S%fZ}-{run_id[:8]}.parquet"
    staged = port / f".{snapshot}.staged"
    try:
        pq.write_table(table, staged)
        with duckdb.connect(str(root / domain / "warehouse.duckdb")) as con:
            con.execute("BEGIN TRANSACTION")
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{domain}"')
            con.register("mesh_frame", table)
            con.execute(f'CREATE OR REPLACE TABLE "{domain}"."{product}" AS SELECT * FROM mesh_frame')
            con.execute("COMMIT")
        os.replace(staged, port / snapshot)
    finally:
        staged.unlink(missing_ok=True)
    pointer = {"snapshot": snapshot, "rows": table.num_rows, "run_id": run_id, "published_at": now.isoformat()}
    fd, tmp = tempfile.mkstemp(dir=port, prefix=".current.json.")
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(pointer))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, port / "current.json")
    for old in sorted(port.glob("*.parquet"))[:-3]:
        old.unlink(missing_ok=True)


def read(root: Path, domain: str, product: str) -> pd.DataFrame:
    port = root / domain / "ports" / product
    pointer = json.loads((port / "current.json").read_text())
    return pq.read_table(port / pointer["snapshot"]).to_pandas()
