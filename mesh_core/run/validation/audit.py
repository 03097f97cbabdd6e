"""Audit one output before it is published: the contract, then the suite."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import pandas as pd

from mesh_core.declare.contract import key_columns
from mesh_core.declare.expectation import Severity
from mesh_core.declare.majors import PreviousMajor
from mesh_core.declare.product import DataProduct
from mesh_core.run.validation.contract import run_contract
from mesh_core.run.validation.outcome import CheckOutcome
from mesh_core.run.validation.suite import build_gx_expectations, run_suite


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
    keys = key_columns(product.contract)  # how a failure's sample names its rows
    outcomes = [contract_outcome, *run_suite(product.suite_name, product.suite, checked, keys)]
    previous = {}
    for item in previous_majors:
        name = previous_check_name(item.major)
        if validated is None:
            outcomes.append(CheckOutcome(name, False, Severity.ERROR, f"Major {item.major} was not derived: "
                                         "the current output failed its contract."))
            continue
        try:
            adapted = item.adapt(validated.copy(deep=True))  # never the frame that is published
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
    outcomes += _consumers_expectations(product, checked, previous, keys)
    return AuditReport(tuple(outcomes), validated, previous)


def _consumers_expectations(product: DataProduct, current: pd.DataFrame, previous: Mapping[int, pd.DataFrame],
                            keys: Sequence[str]) -> list[CheckOutcome]:
    """The expectations consumers rely on, each on the major its consumer reads. One that GX
    cannot build (a consumer's typo), or whose major is not published, fails alone, as a warning:
    never a reason to stop the producer, nor to skip the other consumers' checks."""
    outcomes, runnable = [], {}
    for major, item in product.relied_on:
        frame = current if major is None or major == product.major else previous.get(major)
        problem = None if frame is not None else f"major {major} was not derived in this run"
        if problem is None:
            try:
                build_gx_expectations([item])
            except Exception as exc:
                problem = f"{type(exc).__name__}: {exc}"
        if problem:
            outcomes.append(CheckOutcome(item.name, False, Severity.WARNING, f"{item.description}: could not be evaluated: {problem}"))
        else:
            runnable.setdefault(major if frame is not current else None, (frame, []))[1].append(item)
    for major, (frame, items) in runnable.items():
        suffix = "" if major is None else f".v{major}"
        outcomes += run_suite(f"{product.suite_name}.consumers{suffix}", items, frame, keys)
    return outcomes


def previous_check_name(major: int) -> str:
    return f"contract_v{major}"


def audit_files(product: DataProduct, paths: Sequence[str]) -> tuple[CheckOutcome, ...]:
    """The same audit, in the engines, of an output staged as Parquet files at `paths`: the contract
    with Pandera's polars backend over a lazy scan, the suite and the consumers' expectations with
    GX's SQL engine over DuckDB. Nothing is read into memory whole."""
    from mesh_core.run.validation.engine_contract import run_contract_polars
    from mesh_core.run.validation.suite_sql import run_suite_duckdb, sql_problems

    keys = key_columns(product.contract)
    return (run_contract_polars(product.contract, list(paths), min_rows=product.min_rows),
            *run_suite_duckdb(product.suite_name, product.suite, list(paths), keys),
            *_consumers_in_engine(product, sql_problems, lambda name, items: run_suite_duckdb(name, items, list(paths), keys)))


def _consumers_in_engine(product: DataProduct, problems_of, run) -> list[CheckOutcome]:
    """The consumers' expectations of an engine's output, with `run(suite_name, expectations)`. One that
    cannot run there (`problems_of([item])`), or reads an older major (only a pandas product derives
    those), fails alone, as a warning: never a reason to stop the producer."""
    outcomes, current = [], []
    for major, item in product.relied_on:
        if major is not None and major != product.major:
            problem = f"major {major} was not derived in this run"
        else:
            problem = "; ".join(problems_of([item])) or None
        if problem:
            outcomes.append(CheckOutcome(item.name, False, Severity.WARNING,
                                         f"{item.description}: could not be evaluated: {problem}"))
        else:
            current.append(item)
    if current:
        outcomes += run(f"{product.suite_name}.consumers", current)
    return outcomes


def audit_spark(product: DataProduct, frame) -> tuple[CheckOutcome, ...]:
    """The same audit, on Spark, of an output its executors wrote (`frame` reads the staged files): the
    contract with Pandera's pyspark backend, the suite and the consumers' expectations with GX's Spark
    execution engine. Nothing is collected to the driver but counts and bounded failure samples."""
    from mesh_core.run.validation.spark_contract import run_contract_spark
    from mesh_core.run.validation.suite_spark import run_suite_spark, spark_problems

    keys = key_columns(product.contract)
    return (run_contract_spark(product.contract, frame, min_rows=product.min_rows),
            *run_suite_spark(product.suite_name, product.suite, frame, keys),
            *_consumers_in_engine(product, spark_problems, lambda name, items: run_suite_spark(name, items, frame, keys)))
