"""Benchmark 5: validation throughput on 1M and 10M rows.

One contract (unique id, a category in a set, a bounded nullable value, a timestamp) and one
three-expectation suite, on the same frame:
- Mesh: `audit()` of a product declaring them (Pandera, then GX, outcomes as Mesh reports them);
- direct: the same Pandera `validate(lazy=True)` and the same expectations written in GX
  (one context, a fresh asset, suite and validation definition per call, as a script would);
- the floor: one DuckDB SQL query counting every violation of the same rules;
- in-engine, as Mesh audits an engine product's staged files: `run_contract_polars` (Pandera's
  polars backend, data-level checks on) over a LazyFrame of the Parquet file, then
  `run_suite_duckdb` (GX's SQL engine over DuckDB) on the same file, against the floor over the
  file: the same DuckDB query reading the Parquet file.
All alternate in one process (after one warm-up call each), medians of REPEATS.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import REPEATS, Table, scratch  # noqa: E402

SIZES = (1_000_000, 10_000_000) if os.environ.get("BENCH_FULL") else (1_000_000, 3_000_000)
SENSORS = ["north", "south", "east"]


def frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    value = rng.uniform(0, 1000, rows)
    value[rng.random(rows) < 0.01] = np.nan
    return pd.DataFrame({
        "reading_id": np.arange(rows, dtype="int64"),
        "sensor": np.array(SENSORS, dtype=object)[rng.integers(0, 3, rows)],
        "value": value,
        "taken_at": pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(rows) % 86_400, unit="s"),
    })


class ReadingsContract(pa.DataFrameModel):
    reading_id: Series[int] = pa.Field(unique=True, ge=0, description="The reading.")
    sensor: Series[str] = pa.Field(isin=SENSORS, description="Where.")
    value: Series[float] = pa.Field(nullable=True, ge=0, le=1000, description="What.")
    taken_at: Series[pd.Timestamp] = pa.Field(description="When.")

    class Config:
        strict = True
        coerce = True


def main(table: Table) -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import duckdb
    import great_expectations as gx

    from mesh_core import Expectation, data_product
    from mesh_core.run.validation.audit import audit

    Contract = ReadingsContract
    suite = [Expectation("ExpectColumnValuesToNotBeNull", column="sensor"),
             Expectation("ExpectColumnValuesToBeInSet", column="sensor", value_set=SENSORS),
             Expectation("ExpectColumnValuesToBeBetween", column="value", min_value=0, max_value=1000)]

    @data_product(domain="lab", name="readings", description="One row per reading.", owners=["team:lab"],
                  contract=Contract, suite=suite)
    def readings():
        return None

    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # as Mesh runs it
    source = context.data_sources.add_pandas("direct")
    calls = iter(range(10**6))

    def direct(data: pd.DataFrame) -> bool:
        validated = Contract.validate(data, lazy=True)
        name = f"lab.readings.{next(calls)}"
        batch = source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe("output")
        expectations = [gx.expectations.ExpectColumnValuesToNotBeNull(column="sensor"),
                        gx.expectations.ExpectColumnValuesToBeInSet(column="sensor", value_set=SENSORS),
                        gx.expectations.ExpectColumnValuesToBeBetween(column="value", min_value=0, max_value=1000)]
        result = context.validation_definitions.add(gx.ValidationDefinition(
            name=name, data=batch, suite=context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations)))
        ).run(batch_parameters={"dataframe": validated}, result_format="SUMMARY")
        return result.success

    def mesh(data: pd.DataFrame) -> bool:
        return not audit(readings, data).blocked

    sql = f"""SELECT count(*) - count(DISTINCT reading_id), count(*) FILTER (reading_id < 0),
                     count(*) FILTER (sensor IS NULL OR sensor NOT IN ({', '.join(f"'{s}'" for s in SENSORS)})),
                     count(*) FILTER (value < 0 OR value > 1000), count(*) FILTER (taken_at IS NULL)
              FROM data"""

    def floor(data: pd.DataFrame) -> bool:
        with duckdb.connect() as con:
            con.register("data", data)
            return not any(con.execute(sql).fetchone())

    import polars as pl

    from mesh_core.run.validation.engine_contract import run_contract_polars
    from mesh_core.run.validation.suite_sql import run_suite_duckdb

    def in_engine(path: str) -> bool:
        outcomes = [run_contract_polars(Contract, [str(path)], min_rows=1),
                    *run_suite_duckdb("lab.readings", suite, [path], keys=["reading_id"])]
        return all(outcome.passed for outcome in outcomes)

    def floor_files(path: str) -> bool:
        with duckdb.connect() as con:
            return not any(con.execute(sql.replace("FROM data", f"FROM read_parquet('{path}')")).fetchone())

    with scratch("mesh-validation-") as work:
        for rows in SIZES:
            print(f"5. validation, {rows:,} rows", flush=True)
            data = frame(rows)
            path = str(work / f"readings-{rows}.parquet")  # as staged: what an engine product's audit reads
            pl.from_pandas(data).write_parquet(path)
            runners = {"direct": lambda: direct(data), "mesh": lambda: mesh(data), "sql": lambda: floor(data),
                       "in_engine": lambda: in_engine(path), "sql_files": lambda: floor_files(path)}
            times = {name: [] for name in runners}
            if rows == SIZES[0]:
                for name, run in runners.items():
                    assert run(), f"{name} found a violation in valid data"  # warm-up, and a sanity check
            for _ in range(REPEATS):
                for name, run in runners.items():
                    started = time.perf_counter()
                    run()
                    times[name].append(time.perf_counter() - started)
            med = {name: sorted(values)[len(values) // 2] for name, values in times.items()}
            print("  " + ", ".join(f"{name} {value:.2f} s" for name, value in med.items()), flush=True)
            label = f"{rows // 1_000_000}M rows"
            table.add(f"5. validation {label}: Mesh audit vs Pandera + GX directly", f"{med['direct']:.2f} s",
                      f"{med['mesh']:.2f} s", f"{med['mesh'] / med['direct']:.2f}x", "<= 1.05x", med["mesh"] / med["direct"] <= 1.05)
            table.add(f"   {label}: Mesh vs one DuckDB SQL query (floor)", f"{med['sql']:.2f} s", f"{med['mesh']:.2f} s",
                      f"{med['mesh'] / med['sql']:.1f}x", "report", None)
            table.add(f"   {label}: in-engine audit of the Parquet file (Pandera polars + GX on DuckDB) vs SQL floor",
                      f"{med['sql_files']:.2f} s", f"{med['in_engine']:.2f} s", f"{med['in_engine'] / med['sql_files']:.1f}x",
                      "<= 2x", med["in_engine"] / med["sql_files"] <= 2)
            del data


if __name__ == "__main__":
    result = Table()
    main(result)
    print(result.render())
