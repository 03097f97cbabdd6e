"""The insights domain as a plain PySpark script: the baseline of `make bench BENCH=spark`.

The same work as `mesh materialize -d insights` with MESH_SPARK_REMOTE set, without a framework:
the inputs are the same pinned Parquet files of each upstream version (listed in INPUTS, a JSON
file bench/spark.py writes), each a temp view; the same four SQL files of domains/insights run in
Spark SQL; each result is cast to its contract's types and written by the executors with
df.write.parquet; then the written files are checked as Mesh audits them: the contract written
directly as a Pandera pyspark model (data-level checks on), and the product's suite written directly
in GX, run on GX's Spark engine. An error-severity failure stops the script. No Dagster, no
mesh_core, no Delta commit, no DuckDB store.

    python bench/baseline_spark.py INPUTS OUT_DIR --remote sc://host:port
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("PANDERA_VALIDATION_DEPTH", "SCHEMA_AND_DATA")  # data-level checks, not only the schema
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

import pandera.pyspark as pa  # noqa: E402
import pyspark.sql.types as T  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

SQL = Path(__file__).resolve().parents[1] / "domains" / "insights"
CONDITIONS = ["clear", "precipitation", "low_visibility", "strong_wind", "no_observation"]
PRODUCTS = ["carrier_on_time_performance", "delay_vs_weather", "fleet_utilisation", "route_performance"]


# -- the contracts, written directly for Pandera's pyspark backend --------------------------------
# Pandera's pyspark backend checks a key given in Config.unique (a Spark group-by); a single unique
# column is such a key of one column.

class CarrierOnTimePerformance(pa.DataFrameModel):
    carrier: T.StringType() = pa.Field()
    airline_name: T.StringType() = pa.Field(nullable=True)
    flights: T.LongType() = pa.Field(ge=1)
    cancelled: T.LongType() = pa.Field(ge=0)
    diverted: T.LongType() = pa.Field(ge=0)
    on_time_rate: T.DoubleType() = pa.Field(ge=0, le=1)
    mean_arr_delay: T.DoubleType() = pa.Field()

    class Config:
        strict = True
        unique = ["carrier"]


class DelayVsWeather(pa.DataFrameModel):
    origin: T.StringType() = pa.Field()
    condition: T.StringType() = pa.Field(isin=CONDITIONS)
    flights: T.LongType() = pa.Field(ge=1)
    mean_dep_delay: T.DoubleType() = pa.Field()
    delayed_share: T.DoubleType() = pa.Field(ge=0, le=1)

    class Config:
        strict = True
        unique = ["origin", "condition"]


class FleetUtilisation(pa.DataFrameModel):
    tailnum: T.StringType() = pa.Field()
    carrier: T.StringType() = pa.Field()
    flights: T.LongType() = pa.Field(ge=1)
    distance_miles: T.LongType() = pa.Field(ge=0)
    air_hours: T.DoubleType() = pa.Field(ge=0)
    manufacturer: T.StringType() = pa.Field(nullable=True)
    model: T.StringType() = pa.Field(nullable=True)
    seats: T.DoubleType() = pa.Field(nullable=True, ge=1)
    in_fleet_registry: T.BooleanType() = pa.Field()

    class Config:
        strict = True
        unique = ["tailnum"]


class RoutePerformance(pa.DataFrameModel):
    origin: T.StringType() = pa.Field()
    dest: T.StringType() = pa.Field()
    dest_name: T.StringType() = pa.Field(nullable=True)
    flights: T.LongType() = pa.Field(ge=1)
    cancelled_share: T.DoubleType() = pa.Field(ge=0, le=1)
    mean_arr_delay: T.DoubleType() = pa.Field(nullable=True)
    distance: T.LongType() = pa.Field(gt=0)

    class Config:
        strict = True
        unique = ["origin", "dest"]


CONTRACTS = {"carrier_on_time_performance": CarrierOnTimePerformance, "delay_vs_weather": DelayVsWeather,
             "fleet_utilisation": FleetUtilisation, "route_performance": RoutePerformance}


# -- the suites, written directly in GX -----------------------------------------------------------

def suites(gxe) -> dict[str, list]:
    warn = {"severity": "warning"}
    return {
        "carrier_on_time_performance": [
            gxe.ExpectColumnValuesToBeUnique(column="carrier"),
            gxe.ExpectColumnValuesToBeBetween(column="on_time_rate", min_value=0, max_value=1),
            gxe.ExpectColumnValuesToNotBeNull(column="airline_name")],
        "delay_vs_weather": [
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["origin", "condition"]),
            gxe.ExpectColumnValuesToBeBetween(column="delayed_share", min_value=0, max_value=1)],
        "fleet_utilisation": [
            gxe.ExpectColumnValuesToBeUnique(column="tailnum"),
            gxe.ExpectColumnValuesToBeBetween(column="flights", min_value=1),
            gxe.ExpectColumnValuesToBeInSet(column="in_fleet_registry", value_set=[True], **warn)],
        "route_performance": [
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["origin", "dest"]),
            gxe.ExpectColumnValuesToBeBetween(column="cancelled_share", min_value=0, max_value=1),
            gxe.ExpectColumnValuesToNotBeNull(column="dest_name", **warn)],
    }


class Checks:
    """GX on its Spark engine (the session it finds is this script's, through SPARK_REMOTE)."""

    def __init__(self):
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = self.context.data_sources.add_spark("baseline", persist=False)
        self.suites = suites(gx.expectations)

    def failed(self, name: str, frame) -> list[str]:
        """What of the contract and the suite fails on `frame` at error severity."""
        errors = CONTRACTS[name].validate(frame, lazy=True).pandera.errors
        problems = [f"{name}: {reason}: {found}" for reasons in errors.values() for reason, found in reasons.items()]
        gx = self.gx
        batch = self.source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe("output")
        suite = self.context.suites.add(gx.ExpectationSuite(name=name, expectations=self.suites[name]))
        result = self.context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite)
                                                         ).run(batch_parameters={"dataframe": frame})
        return problems + [f"{name}: {r.expectation_config.type} failed" for r in result.results
                           if not r.success and r.expectation_config.severity.value == "critical"]


def typed(frame, contract):
    """The result in its contract's column order and Spark types (what a count or an average gives
    is widened, as Mesh does before writing)."""
    columns = contract.to_schema().columns
    return frame.select(*[F.col(name).cast(column.dtype.type) for name, column in columns.items()])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("inputs", type=Path, help="JSON: view name -> the Parquet files of its pinned version")
    parser.add_argument("out", type=Path)
    parser.add_argument("--remote", required=True, help="Spark Connect URL")
    args = parser.parse_args()
    started = time.perf_counter()
    os.environ["SPARK_REMOTE"] = args.remote  # GX's Spark engine asks the builder for a session
    spark = SparkSession.builder.remote(args.remote).getOrCreate()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    for view, files in json.loads(args.inputs.read_text()).items():
        spark.read.parquet(*["file://" + f for f in files]).createOrReplaceTempView(view)
    checks = Checks()
    problems = []
    for name in PRODUCTS:
        folder = "file://" + str(args.out.resolve() / name)
        typed(spark.sql((SQL / f"{name}.sql").read_text()), CONTRACTS[name]).write.mode("overwrite").parquet(folder)
        problems += checks.failed(name, spark.read.parquet(folder))
    if problems:
        raise SystemExit("\n".join(problems))
    print(f"{time.perf_counter() - started:.3f}")


if __name__ == "__main__":
    main()
