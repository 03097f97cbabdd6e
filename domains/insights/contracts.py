"""What the insights domain promises about its analytical products."""

import pandera.pandas as pa
from pandera.typing import Series


class CarrierOnTimePerformanceContract(pa.DataFrameModel):
    carrier: Series[str] = pa.Field(unique=True, description="Carrier code.")
    airline_name: Series[str] = pa.Field(nullable=True, description="Airline name from reference.airlines.")
    flights: Series[int] = pa.Field(ge=1, description="Scheduled flights.")
    cancelled: Series[int] = pa.Field(ge=0, description="Cancelled flights.")
    diverted: Series[int] = pa.Field(ge=0, description="Diverted flights.")
    on_time_rate: Series[float] = pa.Field(ge=0, le=1, description="Share of completed flights arriving <= 15 min late.")
    mean_arr_delay: Series[float] = pa.Field(description="Mean arrival delay of completed flights, minutes.")

    class Config:
        strict = True
        coerce = True


class DelayVsWeatherContract(pa.DataFrameModel):
    origin: Series[str] = pa.Field(description="Departure airport.")
    condition: Series[str] = pa.Field(
        isin=["clear", "precipitation", "low_visibility", "strong_wind", "no_observation"],
        description="Weather at the departure hour (first that applies: precipitation, low visibility, strong wind).",
    )
    flights: Series[int] = pa.Field(ge=1, description="Flights that departed.")
    mean_dep_delay: Series[float] = pa.Field(description="Mean departure delay, minutes.")
    delayed_share: Series[float] = pa.Field(ge=0, le=1, description="Share departing more than 15 minutes late.")

    class Config:
        strict = True
        coerce = True
        unique = ["origin", "condition"]


class FleetUtilisationContract(pa.DataFrameModel):
    tailnum: Series[str] = pa.Field(unique=True, description="Tail number.")
    carrier: Series[str] = pa.Field(description="Carrier that flew it most.")
    flights: Series[int] = pa.Field(ge=1, description="Flights flown (not cancelled).")
    distance_miles: Series[int] = pa.Field(ge=0, description="Total distance flown, miles.")
    air_hours: Series[float] = pa.Field(ge=0, description="Total time in the air, hours.")
    manufacturer: Series[str] = pa.Field(nullable=True, description="From fleet.aircraft; null when not in the registry.")
    model: Series[str] = pa.Field(nullable=True, description="From fleet.aircraft; null when not in the registry.")
    seats: Series[float] = pa.Field(nullable=True, ge=1, description="From fleet.aircraft; null when not in the registry.")
    in_fleet_registry: Series[bool] = pa.Field(description="Whether fleet.aircraft knows this tail number.")

    class Config:
        strict = True
        coerce = True


class RoutePerformanceContract(pa.DataFrameModel):
    origin: Series[str] = pa.Field(description="Departure airport.")
    dest: Series[str] = pa.Field(description="Destination airport code.")
    dest_name: Series[str] = pa.Field(nullable=True, description="From reference.airports; null when not in the FAA list.")
    flights: Series[int] = pa.Field(ge=1, description="Scheduled flights.")
    cancelled_share: Series[float] = pa.Field(ge=0, le=1, description="Share cancelled.")
    mean_arr_delay: Series[float] = pa.Field(nullable=True, description="Mean arrival delay, minutes; null if none completed.")
    distance: Series[int] = pa.Field(gt=0, description="Route distance, miles.")

    class Config:
        strict = True
        coerce = True
        unique = ["origin", "dest"]
