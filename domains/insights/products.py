"""Insights products: joins of other domains' public products, written in SQL
(carrier_on_time_performance) and Polars (the others): the flights they read arrive as lazy scans,
and nothing holds all of them in memory (the example's other domains show pandas)."""

import polars as pl

from domains.insights import contracts, suites
from mesh_core import SLO, Expectation, Input, data_product

OWNERS = ["team:network-insights"]
DAILY = SLO(max_age_hours=26)  # refreshed after each day's upstream publishes, with two hours to spare
DELAYED_MINUTES = 15
# Readings above this are instrument faults (weather.hourly_observations warns on them).
MAX_PLAUSIBLE_WIND_MPH = 150


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
def delay_vs_weather(flights: pl.LazyFrame, weather: pl.LazyFrame) -> pl.LazyFrame:
    departed = flights.filter(pl.col("status") != "cancelled").select("origin", "time_hour", "dep_delay")
    # Only the weather columns the conditions use: the join has one row per departed flight.
    observed = weather.select("origin", "time_hour", "precip", "visib", "wind_speed", observed=pl.lit(True))
    wind = pl.when(pl.col("wind_speed") <= MAX_PLAUSIBLE_WIND_MPH).then(pl.col("wind_speed"))
    condition = (pl.when(pl.col("observed").is_null()).then(pl.lit("no_observation"))
                 .when(pl.col("precip") > 0).then(pl.lit("precipitation"))
                 .when(pl.col("visib") < 3).then(pl.lit("low_visibility"))
                 .when(wind > 25).then(pl.lit("strong_wind"))
                 .otherwise(pl.lit("clear")))
    return (departed.join(observed, on=["origin", "time_hour"], how="left")
            .group_by("origin", condition=condition)
            .agg(flights=pl.len(), mean_dep_delay=pl.col("dep_delay").mean(),
                 delayed_share=(pl.col("dep_delay") > DELAYED_MINUTES).fill_null(False).mean()))


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
def fleet_utilisation(flights: pl.LazyFrame, aircraft: pl.LazyFrame) -> pl.LazyFrame:
    # One pass over the flights to a row per (tail number, carrier); everything after it is small.
    # (Two aggregations of the same filtered flights would make Polars hold that whole frame.)
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
            .select(list(contracts.FleetUtilisationContract.to_schema().columns)))


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
    # A median holds every value of its group in memory; a route has a handful of distinct distances,
    # so count each and take the middle of the counts: the same median, from a small table.
    per_distance = flights.group_by("origin", "dest", "distance").agg(
        n=pl.len(), cancelled=(pl.col("status") == "cancelled").sum(),
        delay_sum=pl.col("arr_delay").sum(), delays=pl.col("arr_delay").count())
    middle = pl.col("n").sum() / 2
    upto, distance = pl.col("n").sort_by("distance").cum_sum(), pl.col("distance").sort()
    routes = per_distance.group_by("origin", "dest").agg(
        flights=pl.col("n").sum(),
        cancelled_share=pl.col("cancelled").sum() / pl.col("n").sum(),
        mean_arr_delay=pl.when(pl.col("delays").sum() > 0).then(pl.col("delay_sum").sum() / pl.col("delays").sum()),
        # the values at positions ceil(n/2) and floor(n/2) + 1: one value for odd n, two to average for even n
        distance=(distance.filter(upto >= middle).first() + distance.filter(upto >= middle + 0.5).first()) / 2,
    )
    names = airports.select(dest="faa", dest_name="name")
    return routes.join(names, on="dest", how="left").select(list(contracts.RoutePerformanceContract.to_schema().columns))
