"""Insights products: joins of other domains' public products, written in SQL that DuckDB and Spark
SQL both run. The domain runs in DuckDB (its inputs handed over as lazy scans, nothing holding all
the flights in memory) or, once it has a Spark (MESH_SPARK_REMOTE on its code location), on Spark:
configuration alone, no code change (docs/deploy.md). The example's other domains show pandas and Polars."""

from domains.insights import contracts, suites
from mesh_core import SLO, Expectation, Input, data_product

OWNERS = ["team:network-insights"]
DAILY = SLO(max_age_hours=26)  # refreshed after each day's upstream publishes, with two hours to spare


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
    """Written in SQL: carrier_on_time_performance.sql, beside this file."""


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
    sql="delay_vs_weather.sql",
)
def delay_vs_weather(flights, weather):
    """Written in SQL: delay_vs_weather.sql, beside this file."""


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
    sql="fleet_utilisation.sql",
)
def fleet_utilisation(flights, aircraft):
    """Written in SQL: fleet_utilisation.sql, beside this file."""


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
    sql="route_performance.sql",
)
def route_performance(flights, airports):
    """Written in SQL: route_performance.sql, beside this file."""
