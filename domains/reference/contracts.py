"""What the reference domain promises about the columns it publishes."""

import pandera.pandas as pa
from pandera.typing import Series


class AirlinesContract(pa.DataFrameModel):
    carrier: Series[str] = pa.Field(unique=True, str_length=2, description="Two-letter IATA carrier code.")
    name: Series[str] = pa.Field(description="Full airline name.")

    class Config:
        strict = True
        coerce = True


class AirportsContract(pa.DataFrameModel):
    faa: Series[str] = pa.Field(unique=True, str_length={"min_value": 3, "max_value": 4}, description="FAA airport code.")
    name: Series[str] = pa.Field(description="Airport name.")
    lat: Series[float] = pa.Field(ge=-90, le=90, description="Latitude, degrees.")
    lon: Series[float] = pa.Field(ge=-180, le=180, description="Longitude, degrees.")
    alt: Series[int] = pa.Field(description="Altitude, feet.")
    tz: Series[int] = pa.Field(ge=-12, le=14, description="Offset from UTC, hours.")
    dst: Series[str] = pa.Field(isin=["A", "U", "N"], description="Daylight saving: A (US), U (unknown), N (none).")
    tzone: Series[str] = pa.Field(nullable=True, description="IANA time zone; null where unknown.")

    class Config:
        strict = True
        coerce = True
