"""Run a product's Pandera contract on its output, collecting every failure."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pandera.errors

from mesh_core.declare.contract import contract_columns
from mesh_core.declare.expectation import Severity
from mesh_core.run.validation.coercion import changed_by_coercion
from mesh_core.run.validation.failures import FailureGroup, describe_failures, too_few_rows, value_set_checks
from mesh_core.run.validation.outcome import CheckOutcome, failure_table, shown_value

CHECK_NAME = "contract"


def run_contract(contract, frame: pd.DataFrame, *, min_rows: int) -> tuple[CheckOutcome, pd.DataFrame | None]:
    """Validate `frame` lazily. Returns the outcome and, when it passed, the validated frame
    (coerced by the contract, with its columns in contract order). A coercion that would change
    a value fails the contract (see `mesh_core.run.validation.coercion`)."""
    problems: list[str] = []
    cases: list[pd.DataFrame] = []
    metadata: dict = {"dagster/row_count": len(frame), "contract": contract.__name__}
    validated = coerced = None
    failures = 0
    try:
        validated = coerced = contract.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        coerced = exc.data  # what Pandera could coerce, so changed values are reported beside the rest
        failures += len(exc.failure_cases)
        cases.append(exc.failure_cases)
        value_sets = value_set_checks(contract.to_schema())
        groups = [
            FailureGroup(col, str(check), len(group), list(group["failure_case"]),
                         _value_counts(group["failure_case"]) if (col, str(check)) in value_sets else None)
            for (col, check), group in exc.failure_cases.groupby(["column", "check"], dropna=False)
        ]
        found, offending = describe_failures(groups)
        problems.extend(found)
        if offending:
            metadata["offending_values"] = dg.MetadataValue.json(offending)
    except pandera.errors.SchemaError as exc:  # raised before lazy collection, e.g. a wrong type
        failures += 1
        problems.append(str(exc))
    if isinstance(coerced, pd.DataFrame):
        for changed in changed_by_coercion(contract.to_schema(), frame, coerced):
            failures += changed.count
            cases.append(changed.failure_cases())
            problems.append(changed.problem())
    if failures:
        metadata["failure_count"] = failures
    if cases:
        metadata["failure_cases"] = failure_table(pd.concat(cases, ignore_index=True))
    if few := too_few_rows(len(frame), min_rows):
        problems.append(few)
    if problems:
        metadata["problems"] = "\n".join(problems)
        return CheckOutcome(
            CHECK_NAME, False, Severity.ERROR,
            f"Contract {contract.__name__} failed: " + "; ".join(problems[:5]), metadata,
        ), None
    ordered = [c for c in contract_columns(contract) if c in validated.columns]  # optional ones may be absent
    order = ordered + [c for c in validated.columns if c not in ordered]
    if list(validated.columns) != order:  # reordering copies the whole frame: only when needed
        validated = validated[order]
    return CheckOutcome(
        CHECK_NAME, True, Severity.ERROR, f"Contract {contract.__name__} passed.", metadata
    ), validated


def _value_counts(values: pd.Series) -> dict[str, int]:
    return {str(value): int(count) for value, count in values.map(shown_value).value_counts().items()}
