"""Expectation suites of the reference domain (reference.<product>)."""

from mesh_core import Expectation

AIRLINES = [
    Expectation("ExpectColumnValuesToBeUnique", column="carrier"),
    Expectation("ExpectColumnValuesToNotBeNull", column="name"),
    Expectation("ExpectTableRowCountToBeBetween", min_value=10, max_value=100, name="row_count"),
]

AIRPORTS = [
    Expectation("ExpectColumnValuesToBeUnique", column="faa"),
    Expectation("ExpectColumnValuesToBeBetween", column="lat", min_value=-90, max_value=90),
    # Three airports in the FAA list have no IANA zone: reported, not blocking.
    Expectation("ExpectColumnValuesToNotBeNull", column="tzone", severity="warning"),
]
