"""Audit one output before it is published: the contract, then the suite."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import pandas as pd

from mesh_core.expectation import Severity
from mesh_core.majors import PreviousMajor
from mesh_core.product import DataProduct
from mesh_core.validation.contract import run_contract
from mesh_core.validation.outcome import CheckOutcome
from mesh_core.validation.suite import run_suite


@dataclass(frozen=True)
class AuditReport:
    outcomes: tuple[CheckOutcome, ...]
    frame: pd.DataFrame | None  # what may be published; None when blocked
    previous: Mapping[int, pd.DataFrame] = field(default_factory=dict)  # older majors to publish beside it

    @property
    def blocked(self) -> bool:
        return self.frame is None or any(o.blocks_publish for o in self.outcomes)

    @property
    def failures(self) -> tuple[CheckOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.passed)


def audit(product: DataProduct, frame: pd.DataFrame, previous_majors: Sequence[PreviousMajor] = ()) -> AuditReport:
    """Run every check, even after one failed, so one run reports every problem; then derive
    each older major still published from the validated output and audit it against its own contract."""
    contract_outcome, validated = run_contract(product.contract, frame, min_rows=product.min_rows)
    checked = validated if validated is not None else frame
    outcomes = [contract_outcome, *run_suite(product.suite_name, product.suite, checked),
                *_consumers_expectations(product, checked)]
    previous = {}
    for item in previous_majors:
        name = previous_check_name(item.major)
        if validated is None:
            outcomes.append(CheckOutcome(name, False, Severity.ERROR, f"Major {item.major} was not derived: "
                                         "the current output failed its contract."))
            continue
        try:
            adapted = item.adapt(validated.copy(deep=False))
            if not isinstance(adapted, pd.DataFrame):
                raise TypeError(f"it returned {type(adapted).__name__}, not a pandas DataFrame")
        except Exception as exc:  # the producer's own code: report it as this major's failed check
            outcomes.append(CheckOutcome(name, False, Severity.ERROR,
                                         f"adapt() of major {item.major} failed: {type(exc).__name__}: {exc}"))
            continue
        outcome, old = run_contract(item.contract, adapted, min_rows=product.min_rows)
        outcomes.append(replace(outcome, check_name=name,
                                description=f"Major {item.major}: {outcome.description}"))
        if old is not None:
            previous[item.major] = old
    return AuditReport(tuple(outcomes), validated, previous)


def _consumers_expectations(product: DataProduct, frame: pd.DataFrame) -> list[CheckOutcome]:
    """The expectations consumers rely on: one that GX cannot even build (a consumer's typo)
    is reported as a failed warning, never a reason to stop the producer's run."""
    if not product.relied_on:
        return []
    try:
        return run_suite(f"{product.suite_name}.consumers", product.relied_on, frame)
    except Exception as exc:
        return [CheckOutcome(item.name, False, Severity.WARNING,
                             f"{item.description}: could not be evaluated: {type(exc).__name__}: {exc}")
                for item in product.relied_on]


def previous_check_name(major: int) -> str:
    return f"contract_v{major}"
