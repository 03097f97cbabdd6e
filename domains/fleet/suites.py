"""Expectation suites of the fleet domain (fleet.<product>)."""

from mesh_core import Expectation

AIRCRAFT = [
    Expectation("ExpectColumnValuesToBeUnique", column="tailnum"),
    Expectation("ExpectColumnValuesToNotBeNull", column="tailnum"),
    Expectation("ExpectColumnValuesToBeBetween", column="seats", min_value=1, max_value=500),
    # The registry rarely records cruising speed; a consumer computing speeds must know.
    Expectation("ExpectColumnValuesToNotBeNull", column="speed", mostly=0.5, severity="warning"),
]
