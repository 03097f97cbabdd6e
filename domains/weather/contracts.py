"""What the weather domain promises about its observations."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

NYC_AIRPORTS = ["EWR", "JFK", "LGA"]


class HourlyObservationsContract(pa.DataFrameModel):
    origin: Series[str] = pa.Field(isin=NYC_AIRPORTS, description="Airport where the observation was made.")
    time_hour: Series[pd.DatetimeTZDtype("ns", "UTC")] = pa.Field(description="Hour of the observation, UTC.")
    temp: Series[float] = pa.Field(nullable=True, ge=-40, le=130, description="Temperature, F.")
    dewp: Series[float] = pa.Field(nullable=True, ge=-40, le=100, description="Dew point, F.")
    humid: Series[float] = pa.Field(nullable=True, ge=0, le=100, description="Relative humidity, %.")
    wind_dir: Series[float] = pa.Field(nullable=True, ge=0, le=360, description="Wind direction, degrees.")
    wind_speed: Series[float] = pa.Field(nullable=True, ge=0, description="Wind speed, mph (the suite warns on implausible values).")
    wind_gust: Series[float] = pa.Field(nullable=True, ge=0, description="Gust speed, mph.")
    precip: Series[float] = pa.Field(ge=0, description="Precipitation, inches.")
    pressure: Series[float] = pa.Field(nullable=True, ge=900, le=1100, description="Sea level pressure, millibars.")
    visib: Series[float] = pa.Field(ge=0, le=10, description="Visibility, miles.")

    class Config:
        strict = True
        coerce = True
        unique = ["origin", "time_hour"]
