"""What the fleet domain promises about the aircraft it publishes."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series


class AircraftContract(pa.DataFrameModel):
    tailnum: Series[str] = pa.Field(unique=True, description="Tail number (registration).")
    year: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=1950, le=2014, description="Year manufactured; null where the registry does not say.")
    type: Series[str] = pa.Field(description="Aircraft type.")
    manufacturer: Series[str] = pa.Field(description="Manufacturer, normalised (e.g. AIRBUS INDUSTRIE -> AIRBUS).")
    model: Series[str] = pa.Field(description="Model.")
    engines: Series[int] = pa.Field(ge=1, le=4, description="Number of engines.")
    seats: Series[int] = pa.Field(ge=1, le=500, description="Number of seats.")
    speed: Series[float] = pa.Field(nullable=True, gt=0, description="Average cruising speed, mph; mostly unknown.")
    engine: Series[str] = pa.Field(description="Engine type.")

    class Config:
        strict = True
        coerce = True
