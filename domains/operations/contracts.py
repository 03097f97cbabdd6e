"""What the operations domain promises about the flights it publishes."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

STATUSES = ["on_time", "delayed", "cancelled", "diverted"]
NYC_AIRPORTS = ["EWR", "JFK", "LGA"]


class FlightsContract(pa.DataFrameModel):
    carrier: Series[str] = pa.Field(str_length=2, description="Operating carrier code.")
    flight: Series[int] = pa.Field(ge=1, description="Flight number.")
    tailnum: Series[str] = pa.Field(nullable=True, description="Tail number; null for some cancelled flights.")
    origin: Series[str] = pa.Field(isin=NYC_AIRPORTS, description="Departure airport.")
    dest: Series[str] = pa.Field(str_length=3, description="Destination airport code.")
    scheduled_departure: Series[pd.Timestamp] = pa.Field(description="Scheduled departure, local New York time.")
    time_hour: Series[pd.DatetimeTZDtype("ns", "UTC")] = pa.Field(description="Hour of scheduled departure, UTC (joins weather).")
    dep_delay: Series[float] = pa.Field(nullable=True, description="Departure delay, minutes; null when cancelled.")
    arr_delay: Series[float] = pa.Field(nullable=True, description="Arrival delay, minutes; null when cancelled or diverted.")
    air_time: Series[float] = pa.Field(nullable=True, gt=0, description="Minutes in the air; null when cancelled or diverted.")
    distance: Series[int] = pa.Field(gt=0, description="Great-circle distance, miles.")
    status: Series[str] = pa.Field(isin=STATUSES, description="on_time (arrived <= 15 min late), delayed, cancelled or diverted.")

    class Config:
        strict = True
        coerce = True
        unique = ["carrier", "flight", "origin", "scheduled_departure"]
    # "A flight has a departure delay exactly when it was not cancelled" spans two columns, which no
    # built-in Field check can say: it is two expectations of the suite (suites.FLIGHTS), so that it
    # runs in the product's engine.
