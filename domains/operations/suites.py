"""Expectation suites of the operations domain (operations.<product>)."""

from mesh_core import Expectation

from domains.operations.contracts import NYC_AIRPORTS, STATUSES

CANCELLED = 'col("status") == "cancelled"'  # GX's own condition syntax: runs on pandas and in SQL engines alike

FLIGHTS = [
    # A flight has a departure delay exactly when it was not cancelled.
    Expectation("ExpectColumnValuesToBeNull", column="dep_delay", name="cancelled_flights_have_no_departure",
                row_condition=CANCELLED, condition_parser="great_expectations",
                description="dep_delay is null for every cancelled flight"),
    Expectation("ExpectColumnValuesToNotBeNull", column="dep_delay", name="departed_flights_have_a_departure_delay",
                row_condition='col("status") != "cancelled"', condition_parser="great_expectations",
                description="dep_delay is known for every flight that was not cancelled"),
    Expectation("ExpectColumnValuesToNotBeNull", column="status"),
    Expectation("ExpectColumnValuesToBeInSet", column="status", value_set=STATUSES),
    Expectation("ExpectColumnValuesToBeInSet", column="origin", value_set=NYC_AIRPORTS),
    Expectation("ExpectColumnValuesToNotBeNull", column="carrier"),
    Expectation("ExpectColumnValuesToBeBetween", column="distance", min_value=1, max_value=5000),
    # 2,512 flights (mostly cancelled ones) carry no tail number: reported, not blocking.
    Expectation("ExpectColumnValuesToNotBeNull", column="tailnum", severity="warning"),
    # A few flights left more than 10 hours late; real, but worth a look.
    Expectation("ExpectColumnValuesToBeBetween", column="dep_delay", min_value=-60, max_value=600, severity="warning"),
]
