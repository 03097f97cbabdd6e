"""Run a product's Pandera contract on its output, collecting every failure."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pandera.errors

from mesh_core.declare.contract import contract_columns
from mesh_core.declare.expectation import Severity
from mesh_core.run.validation.coercion import SAMPLE, changed_by_coercion
from mesh_core.run.validation.outcome import CheckOutcome, describe_counts, failure_table, shown_value

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
        by_check = exc.failure_cases.groupby(["column", "check"], dropna=False)
        value_sets = _value_set_checks(contract)
        offending: dict[str, dict[str, int]] = {}
        for (col, check), group in by_check:
            if str(check).startswith("dtype("):  # Pandera's own words: expected <type>, got <type>
                got = ", ".join(sorted({str(v) for v in group["failure_case"]}))
                problems.append(f"{col}: expected {str(check)[7:-2]}, got {got}")
            elif str(check).startswith("coerce_dtype("):  # a value that does not parse, or does not fit
                sample = ", ".join(list(dict.fromkeys(shown_value(v) for v in group["failure_case"]))[:SAMPLE])
                problems.append(f"{col}: {len(group)} value(s) do not convert to {str(check)[14:-2]} ({sample})")
            elif (col, str(check)) in value_sets:  # which values are not allowed, and how often
                counts = _value_counts(group["failure_case"])
                offending[f"{col}: {check}"] = counts
                problems.append(f"{col}: {check} ({len(group)} failures: {describe_counts(counts)})")
            else:
                problems.append(f"{col}: {check} ({len(group)} failures)")
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
    if len(frame) < min_rows:
        problems.append(
            f"{len(frame)} rows, fewer than the {min_rows} the product requires "
            "(declare min_rows=0 to allow an empty product)"
        )
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


def _value_set_checks(contract) -> set[tuple[str, str]]:
    """(column, check) of the contract's checks against a set of values (isin, notin, and custom
    checks whose statistics hold a collection), as Pandera names them in failure cases."""
    schema = contract.to_schema()
    checks = [(name, check) for name, column in schema.columns.items() for check in column.checks]
    return {(name, str(check.error)) for name, check in checks
            if any(isinstance(value, (list, tuple, set, frozenset)) for value in (check.statistics or {}).values())}


def _value_counts(values: pd.Series) -> dict[str, int]:
    return {str(value): int(count) for value, count in values.map(shown_value).value_counts().items()}
