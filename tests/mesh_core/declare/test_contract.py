"""A contract's checks as the rules the UI shows, and as the Pandera text snapshots compare."""

import pandera.pandas as pa
from pandera.typing import Series

from mesh_core.declare.contract import column_checks, column_schema, contract_rules


class RulesContract(pa.DataFrameModel):
    seats: Series[int] = pa.Field(ge=0, le=500)
    carrier: Series[str] = pa.Field(isin=["AA", "B6", "UA"], str_length=2)
    distance: Series[float] = pa.Field(ge=0)
    air_time: Series[float] = pa.Field(gt=0, lt=1000, nullable=True)
    share: Series[float] = pa.Field(in_range={"min_value": 0, "max_value": 1, "include_min": False})
    tailnum: Series[str] = pa.Field(unique=True, str_matches=r"^N\w+$", nullable=True)
    status: Series[str] = pa.Field(notin=["unknown"])
    flight: Series[int] = pa.Field(ne=0)

    @pa.check("flight", name="odd_flight_number")
    def odd(cls, series):
        return series % 2 == 1

    class Config:
        unique = ["carrier", "flight"]


def test_each_column_shows_its_checks_as_short_readable_rules():
    schema = column_schema(RulesContract)
    shown = {c.name: (c.constraints.other, c.constraints.nullable, c.constraints.unique) for c in schema.columns}
    assert shown == {
        "seats": (["between 0 and 500"], False, False),
        "carrier": (["in {AA, B6, UA}", "length 2"], False, False),
        "distance": ([">= 0"], False, False),
        "air_time": (["> 0 and < 1000"], True, False),
        "share": (["> 0 and <= 1"], False, False),
        "tailnum": (["matches ^N\\w+$"], True, True),
        "status": (["not in {unknown}"], False, False),
        "flight": (["!= 0", "odd_flight_number"], False, False),
    }
    # The UI cuts a constraint after 27 characters: every rule here fits whole.
    assert all(len(rule) <= 30 for c in schema.columns for rule in c.constraints.other)
    assert schema.constraints.other == ["unique (carrier, flight)"]


def test_the_contract_reads_as_one_rule_line_per_column_then_the_table():
    lines = contract_rules(RulesContract).splitlines()
    assert lines[0] == "**RulesContract**"
    assert "- `seats` (int64): between 0 and 500; not null" in lines
    assert "- `tailnum` (str): matches ^N\\w+$; unique; nullable" in lines
    assert lines[-1] == "- table: unique (carrier, flight)"


def test_snapshots_and_fingerprints_keep_comparing_pandera_text_not_the_rules():
    checks = column_checks(RulesContract)
    assert checks["seats"] == ["<Check greater_than_or_equal_to: greater_than_or_equal_to(0)>",
                               "<Check less_than_or_equal_to: less_than_or_equal_to(500)>"]
    assert set(checks) == {c.name for c in column_schema(RulesContract).columns}
