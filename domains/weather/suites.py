"""Expectation suites of the weather domain (weather.<product>)."""

from mesh_core import Expectation

HOURLY_OBSERVATIONS = [
    Expectation("ExpectCompoundColumnsToBeUnique", column_list=["origin", "time_hour"], name="one_row_per_airport_hour"),
    Expectation("ExpectColumnValuesToBeInSet", column="origin", value_set=["EWR", "JFK", "LGA"]),
    Expectation("ExpectColumnValuesToNotBeNull", column="origin"),
    # The record has one 1,048 mph reading at JFK: an instrument fault, kept but flagged.
    Expectation("ExpectColumnValuesToBeBetween", column="wind_speed", min_value=0, max_value=150, severity="warning"),
]
