"""Expectation suites of the operations domain (operations.<product>)."""

from mesh_core import Expectation

from domains.operations.contracts import NYC_AIRPORTS, STATUSES

FLIGHTS = [
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
