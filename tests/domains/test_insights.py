"""The insights products written in SQL and Polars publish exactly what their pandas versions did.

Each rewritten product runs both ways on the example's real data: its pandas version as it was
before the rewrite (kept here as the reference) and the product itself, its inputs handed over in
its engine from Parquet files the way a step hands them over, its output taken as the Arrow stream
Mesh publishes. Both are held against the product's contract (as publishing coerces them) and
compared row for row, sorted by the contract's key.
"""

from __future__ import annotations

import pandas as pd
import pytest

from tests.support import needs_example, run_in_engine

pytestmark = needs_example("operations", "reference", "fleet", "weather", "insights")


# -- the pandas versions, as they were before the rewrite --------------------------------------

def pandas_carrier_on_time_performance(flights: pd.DataFrame, airlines: pd.DataFrame) -> pd.DataFrame:
    from domains.insights import contracts

    completed = flights["status"].isin(["on_time", "delayed"])
    per_carrier = flights.assign(
        is_cancelled=flights["status"].eq("cancelled"),
        is_diverted=flights["status"].eq("diverted"),
        is_on_time=flights["status"].eq("on_time"),
        completed=completed,
        completed_delay=flights["arr_delay"].where(completed),
    ).groupby("carrier", as_index=False).agg(
        flights=("status", "size"),
        cancelled=("is_cancelled", "sum"),
        diverted=("is_diverted", "sum"),
        on_time=("is_on_time", "sum"),
        completed=("completed", "sum"),
        mean_arr_delay=("completed_delay", "mean"),
    )
    per_carrier["on_time_rate"] = per_carrier["on_time"] / per_carrier["completed"]
    named = per_carrier.merge(airlines.rename(columns={"name": "airline_name"}), on="carrier", how="left")
    return named[list(contracts.CarrierOnTimePerformanceContract.to_schema().columns)]


def pandas_route_performance(flights: pd.DataFrame, airports: pd.DataFrame) -> pd.DataFrame:
    from domains.insights import contracts

    routes = (
        flights.assign(is_cancelled=flights["status"].eq("cancelled"))
        .groupby(["origin", "dest"], as_index=False)
        .agg(
            flights=("status", "size"),
            cancelled_share=("is_cancelled", "mean"),
            mean_arr_delay=("arr_delay", "mean"),
            distance=("distance", "median"),
        )
    )
    named = routes.merge(airports[["faa", "name"]].rename(columns={"faa": "dest", "name": "dest_name"}), on="dest", how="left")
    return named[list(contracts.RoutePerformanceContract.to_schema().columns)]


def pandas_delay_vs_weather(flights: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    import numpy as np

    conditions = ["clear", "low_visibility", "no_observation", "precipitation", "strong_wind"]  # sorted
    departed = flights.loc[flights["status"] != "cancelled", ["origin", "time_hour", "dep_delay"]]
    observed = weather[["origin", "time_hour", "precip", "visib", "wind_speed"]]
    joined = departed.merge(observed, on=["origin", "time_hour"], how="left", indicator=True)
    wind = joined["wind_speed"].where(joined["wind_speed"] <= 150)
    codes = np.select(
        [joined["_merge"] == "left_only", joined["precip"] > 0, joined["visib"] < 3, wind > 25],
        [conditions.index(c) for c in ("no_observation", "precipitation", "low_visibility", "strong_wind")],
        default=conditions.index("clear"),
    )
    per_flight = pd.DataFrame({
        "origin": joined["origin"], "condition": pd.Categorical.from_codes(codes, categories=conditions),
        "dep_delay": joined["dep_delay"], "is_delayed": joined["dep_delay"] > 15,
    })
    summary = per_flight.groupby(["origin", "condition"], as_index=False, observed=True).agg(
        flights=("dep_delay", "size"), mean_dep_delay=("dep_delay", "mean"), delayed_share=("is_delayed", "mean"))
    return summary.astype({"condition": str})


def pandas_fleet_utilisation(flights: pd.DataFrame, aircraft: pd.DataFrame) -> pd.DataFrame:
    from domains.insights import contracts

    flown = flights[flights["tailnum"].notna() & (flights["status"] != "cancelled")]
    usage = flown.groupby("tailnum", as_index=False).agg(
        flights=("carrier", "size"), distance_miles=("distance", "sum"), air_minutes=("air_time", "sum"))
    counts = flown.groupby(["tailnum", "carrier"], as_index=False).size()
    most = counts.sort_values(["tailnum", "size", "carrier"], ascending=[True, False, True]).drop_duplicates("tailnum")
    usage = usage.merge(most[["tailnum", "carrier"]], on="tailnum", how="left")
    usage["air_hours"] = usage.pop("air_minutes") / 60
    joined = usage.merge(aircraft[["tailnum", "manufacturer", "model", "seats"]], on="tailnum", how="left", indicator=True)
    joined["in_fleet_registry"] = joined.pop("_merge") == "both"
    return joined[list(contracts.FleetUtilisationContract.to_schema().columns)]


REWRITTEN = {  # product -> (its pandas version, the engine it is written in, the contract's key)
    "carrier_on_time_performance": (pandas_carrier_on_time_performance, "duckdb", ["carrier"]),
    "route_performance": (pandas_route_performance, "duckdb", ["origin", "dest"]),
    "delay_vs_weather": (pandas_delay_vs_weather, "duckdb", ["origin", "condition"]),
    "fleet_utilisation": (pandas_fleet_utilisation, "duckdb", ["tailnum"]),
}


@pytest.fixture(scope="module")
def published():
    """The upstream products as their ports hold them: computed from the example data, coerced by their contracts."""
    from domains.fleet.products import aircraft
    from domains.operations.products import flights
    from domains.reference.products import airlines, airports
    from domains.weather.products import hourly_observations

    def frame(output):  # operations.flights is a Polars product: its LazyFrame, collected here (1x)
        return output.collect().to_pandas() if hasattr(output, "collect") else output

    return {str(product.ref): product.contract.validate(frame(product.fn()), lazy=True)
            for product in (flights, airlines, airports, aircraft, hourly_observations)}


@pytest.mark.parametrize("name", sorted(REWRITTEN))
def test_a_rewritten_product_publishes_what_its_pandas_version_did(name, published, tmp_path):
    from domains.insights import products

    product = getattr(products, name)
    pandas_version, engine, key = REWRITTEN[name]
    assert product.engine.value == engine and all(e.value == engine for e in product.read_as.values())
    frames = {param: published[str(spec.ref)][list(spec.columns or published[str(spec.ref)].columns)]
              for param, spec in product.inputs.items()}

    before = product.contract.validate(pandas_version(**frames), lazy=True)
    after = run_in_engine(product, frames, tmp_path)
    assert list(after.columns) == list(before.columns)  # the contract's order, straight from the engine
    whole = [column for column, spec in product.contract.to_schema().columns.items() if str(spec.dtype) == "int64"]
    # Publishing casts to the contract's types losslessly only: what it declares whole must come out whole.
    assert (after[whole].dropna() % 1 == 0).all().all(), after[whole].describe()
    after = product.contract.validate(after, lazy=True)
    print(f"{product.ref}: {len(before)} rows in pandas, {len(after)} in {engine}")

    def ordered(frame):  # a null is a null (NaN in pandas' object columns, None from Arrow)
        frame = frame.sort_values(key).reset_index(drop=True)
        return frame.astype({c: object for c in frame.select_dtypes(object)}).where(frame.notna(), None)

    assert len(after) == len(before) > 0
    pd.testing.assert_frame_equal(ordered(after), ordered(before), check_exact=False, rtol=1e-12)
