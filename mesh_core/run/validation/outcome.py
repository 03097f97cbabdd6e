"""One outcome type for every engine, mapped onto Dagster's AssetCheckResult."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import dagster as dg
import numpy as np
import pandas as pd

from mesh_core.declare.expectation import Severity

_DAGSTER_SEVERITY = {Severity.ERROR: dg.AssetCheckSeverity.ERROR, Severity.WARNING: dg.AssetCheckSeverity.WARN}
MAX_FAILURE_ROWS = 50  # failure cases shown in the UI; the counts cover all of them


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one check on one output, before it is published."""

    check_name: str
    passed: bool
    severity: Severity
    description: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def blocks_publish(self) -> bool:
        return not self.passed and self.severity is Severity.ERROR

    def to_check_result(self, asset_key: dg.AssetKey) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            asset_key=asset_key,
            check_name=self.check_name,
            passed=self.passed,
            severity=_DAGSTER_SEVERITY[self.severity],
            description=self.description,
            metadata=dict(self.metadata),
        )


def failure_table(frame: pd.DataFrame) -> dg.TableMetadataValue:
    """Show failure cases as a table in the UI (values as text, first rows only)."""
    head = frame.head(MAX_FAILURE_ROWS)
    columns = [str(c) for c in head.columns]
    records = [
        dg.TableRecord({col: (None if pd.isna(value) else str(value)) for col, value in zip(columns, row)})
        for row in head.itertuples(index=False, name=None)
    ]
    schema = dg.TableSchema(columns=[dg.TableColumn(name=col, type="string") for col in columns])
    return dg.MetadataValue.table(records=records, schema=schema)


def shown_value(value) -> str:
    """One value as a message quotes it: text in quotes (so "3" and 3 read apart), numbers plain,
    a missing value as null."""
    if value is None or (not isinstance(value, (list, tuple, dict)) and pd.isna(value)):
        return "null"
    if isinstance(value, np.generic) and not isinstance(value, (np.datetime64, np.timedelta64)):
        value = value.item()  # np.int64(2) reads 2
    return repr(value) if isinstance(value, str) else str(value)


def describe_counts(counts: dict[str, int], limit: int = 10) -> str:
    """'C' (2 rows), 'D' (1 row), …: the most frequent first, as counted."""
    shown = [f"{value} ({count} row{'s' if count != 1 else ''})" for value, count in list(counts.items())[:limit]]
    more = len(counts) - limit
    return ", ".join(shown) + (f" and {more} more value(s)" if more > 0 else "")
