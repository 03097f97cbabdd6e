"""Audit one output before it is published: the contract, then the suite."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mesh_core.product import DataProduct
from mesh_core.validation.contract import run_contract
from mesh_core.validation.outcome import CheckOutcome
from mesh_core.validation.suite import run_suite


@dataclass(frozen=True)
class AuditReport:
    outcomes: tuple[CheckOutcome, ...]
    frame: pd.DataFrame | None  # what may be published; None when blocked

    @property
    def blocked(self) -> bool:
        return self.frame is None or any(o.blocks_publish for o in self.outcomes)

    @property
    def failures(self) -> tuple[CheckOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.passed)


def audit(product: DataProduct, frame: pd.DataFrame) -> AuditReport:
    """Run every check, even after one failed, so one run reports every problem."""
    contract_outcome, validated = run_contract(product.contract, frame, min_rows=product.min_rows)
    suite_outcomes = run_suite(product.suite_name, product.suite, validated if validated is not None else frame)
    return AuditReport((contract_outcome, *suite_outcomes), validated)
