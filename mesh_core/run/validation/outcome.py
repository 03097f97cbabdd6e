"""One outcome type for every engine, mapped onto Dagster's AssetCheckResult."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import dagster as dg
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
