"""Insights products: joins of other domains' public products, in each style a product may take:
SQL (carrier_on_time_performance), Polars (route_performance) and pandas (the others)."""

import numpy as np
import pandas as pd
import polars as pl

from domains.insights import contracts, suites
from mesh_core import SLO, Expectation, Input, data_product

OWNERS = ["team:network-insights"]
DAILY = SLO(max_age_hours=26)  # refreshed after each day's upstream publishes, with two hours to spare
DELAYED_MINUTES = 15
# Readings above this are instrument faults (weather.hourly_observations warns on them).
MAX_PLAUSIBLE_WIND_MPH = 150
CONDITIONS = ["clear", "low_visibility", "no_observation", "precipitation", "strong_wind"]  # sorted


@data_product(
    domain="insights",
    description="""
        One row per carrier: scheduled, cancelled and diverted flights from New York in 2013,
        the on-time rate of completed flights and their mean arrival delay.
    """,
    owners=OWNERS,
    contract=contracts.CarrierOnTimePerformanceContract,
    suite=suites.CARRIER_ON_TIME_PERFORMANCE,
    version="1.0.0",
    slo=DAILY,
    inputs={"flights": Input("operations.flights", columns=["carrier", "status", "arr_delay"]),
            "airlines": "reference.airlines"},
    sql="carrier_on_time_performance.sql",
)
def carrier_on_time_performance(flights, airlines):
    """Written in SQL: carrier_on_time_performance.sql, beside this file, run in DuckDB."""


@data_product(
    domain="insights",
    description="""
        One row per New York airport and weather condition at the departure hour: how many
        flights departed and how late. Flights in hours with no observation are counted as
        'no_observation'.
    """,
    owners=OWNERS,
    contract=contracts.DelayVsWeatherContract,
    suite=suites.DELAY_VS_WEATHER,
    version="1.0.0",
    slo=DAILY,
    inputs={
        "flights": Input(
            "operations.flights", columns=["origin", "time_hour", "status", "dep_delay"],
            # What this product relies on; the operations domain's audit runs it before publishing.
            expectations=[Expectation("ExpectColumnValuesToNotBeNull", column="dep_delay", name="departed_have_delay",
                                      row_condition='col("status") != "cancelled"', condition_parser="great_expectations",
                                      description="dep_delay is known for every flight that departed")],
        ),
        "weather": "weather.hourly_observations",
    },
)
def delay_vs_weather(flights: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    departed = flights.loc[flights["status"] != "cancelled", ["origin", "time_hour", "dep_delay"]]
    # Only the weather columns the conditions use: the join has one row per departed flight.
    observed = weather[["origin", "time_hour", "precip", "visib", "wind_speed"]]
    joined = departed.merge(observed, on=["origin", "time_hour"], how="left", indicator=True)
    wind = joined["wind_speed"].where(joined["wind_speed"] <= MAX_PLAUSIBLE_WIND_MPH)
    # A category per flight (codes, not one string per row); CONDITIONS is in sorted order, as groupby sorts.
    codes = np.select(
        [joined["_merge"] == "left_only", joined["precip"] > 0, joined["visib"] < 3, wind > 25],
        [CONDITIONS.index(c) for c in ("no_observation", "precipitation", "low_visibility", "strong_wind")],
        default=CONDITIONS.index("clear"),
    )
    per_flight = pd.DataFrame({
        "origin": joined["origin"], "condition": pd.Categorical.from_codes(codes, categories=CONDITIONS),
        "dep_delay": joined["dep_delay"], "is_delayed": joined["dep_delay"] > DELAYED_MINUTES,
    })
    del joined
    summary = per_flight.groupby(["origin", "condition"], as_index=False, observed=True).agg(
        flights=("dep_delay", "size"), mean_dep_delay=("dep_delay", "mean"), delayed_share=("is_delayed", "mean"))
    return summary.astype({"condition": str})


@data_product(
    domain="insights",
    description="""
        One row per tail number flown from New York in 2013: flights, distance and hours in the
        air, with the aircraft's maker, model and seats where the fleet registry knows it.
    """,
    owners=OWNERS,
    contract=contracts.FleetUtilisationContract,
    suite=suites.FLEET_UTILISATION,
    version="1.0.0",
    slo=DAILY,
    inputs={"flights": Input("operations.flights", columns=["carrier", "tailnum", "status", "distance", "air_time"]),
            "aircraft": Input("fleet.aircraft", columns=["tailnum", "manufacturer", "model", "seats"])},
)
def fleet_utilisation(flights: pd.DataFrame, aircraft: pd.DataFrame) -> pd.DataFrame:
    flown = flights[flights["tailnum"].notna() & (flights["status"] != "cancelled")]
    usage = flown.groupby("tailnum", as_index=False).agg(
        flights=("carrier", "size"),
        distance_miles=("distance", "sum"),
        air_minutes=("air_time", "sum"),
    )
    # The carrier that flew it most (ties: the first by code), without a Python call per tail number.
    counts = flown.groupby(["tailnum", "carrier"], as_index=False).size()
    most = counts.sort_values(["tailnum", "size", "carrier"], ascending=[True, False, True]).drop_duplicates("tailnum")
    usage = usage.merge(most[["tailnum", "carrier"]], on="tailnum", how="left")
    usage["air_hours"] = usage.pop("air_minutes") / 60
    joined = usage.merge(aircraft[["tailnum", "manufacturer", "model", "seats"]], on="tailnum", how="left", indicator=True)
    joined["in_fleet_registry"] = joined.pop("_merge") == "both"
    return joined[list(contracts.FleetUtilisationContract.to_schema().columns)]


@data_product(
    domain="insights",
    description="""
        One row per route (origin, destination) flown from New York in 2013: flights, share
        cancelled and mean arrival delay, with the destination's name from the FAA list.
    """,
    owners=OWNERS,
    contract=contracts.RoutePerformanceContract,
    suite=suites.ROUTE_PERFORMANCE,
    version="1.0.0",
    slo=DAILY,
    inputs={"flights": Input("operations.flights", columns=["origin", "dest", "status", "arr_delay", "distance"]),
            "airports": Input("reference.airports", columns=["faa", "name"])},
)
def route_performance(flights: pl.LazyFrame, airports: pl.LazyFrame) -> pl.LazyFrame:
    # Written in Polars: the inputs arrive as LazyFrames over the pinned versions, and the plan runs
    # in Polars' streaming engine as Mesh publishes it; nothing here collects.
    routes = flights.group_by("origin", "dest").agg(
        flights=pl.len(),
        cancelled_share=(pl.col("status") == "cancelled").mean(),
        mean_arr_delay=pl.col("arr_delay").mean(),
        distance=pl.col("distance").median(),
    )
    names = airports.select(dest="faa", dest_name="name")
    return routes.join(names, on="dest", how="left").select(list(contracts.RoutePerformanceContract.to_schema().columns))
