"""Run a product's expectation suite with Great Expectations 1.x, imported only here."""

from __future__ import annotations

import os
from typing import Sequence

import pandas as pd

from mesh_core.expectation import Expectation, Severity
from mesh_core.validation.outcome import CheckOutcome

_GX_SEVERITY = {Severity.ERROR: "critical", Severity.WARNING: "warning"}
_RESULT_KEYS = ("element_count", "unexpected_count", "unexpected_percent", "missing_count", "observed_value")


def build_gx_expectations(expectations: Sequence[Expectation]) -> list:
    """The GX expectation objects for a suite; raises if a type or argument is unknown to GX."""
    import great_expectations as gx

    built = []
    for item in expectations:
        cls = getattr(gx.expectations, item.type, None)
        if cls is None:
            raise ValueError(f"{item.type} is not a Great Expectations {gx.__version__} expectation.")
        built.append(
            cls(**item.gx_kwargs, severity=_GX_SEVERITY[item.severity], meta={"mesh_check": item.name})
        )
    return built


def run_suite(suite_name: str, expectations: Sequence[Expectation], frame: pd.DataFrame) -> list[CheckOutcome]:
    """Validate `frame` against the suite in an ephemeral GX context: one outcome per expectation."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("mesh")
        .add_dataframe_asset(name=suite_name)
        .add_batch_definition_whole_dataframe("output")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name, expectations=build_gx_expectations(expectations)))
    validation = context.validation_definitions.add(gx.ValidationDefinition(name=suite_name, data=batch, suite=suite))
    result = validation.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY")

    by_name = {item.name: item for item in expectations}
    outcomes = []
    for evr in result.results:
        item = by_name[evr.expectation_config.meta["mesh_check"]]
        details = evr.result or {}
        metadata: dict = {"expectation": item.summary(), "suite": suite_name}
        metadata.update({k: _plain(details[k]) for k in _RESULT_KEYS if details.get(k) is not None})
        if details.get("partial_unexpected_list"):
            metadata["unexpected_sample"] = ", ".join(map(str, details["partial_unexpected_list"][:20]))
        exception = _exception_message(evr.exception_info)
        if exception:
            metadata["exception"] = exception
        passed = bool(evr.success)
        outcomes.append(CheckOutcome(item.name, passed, item.severity, _describe(item, passed, details, exception), metadata))
    return outcomes


def _exception_message(info) -> str | None:
    """GX nests exception details, per metric, at varying depth."""
    if not isinstance(info, dict):
        return None
    if info.get("exception_message"):
        return str(info["exception_message"])
    return next((m for v in info.values() if (m := _exception_message(v))), None)


def _plain(value):
    if isinstance(value, (int, float, str, bool)):
        return value
    return str(value)


def _describe(item: Expectation, passed: bool, details: dict, exception: str | None) -> str:
    text = item.description or item.summary()
    if passed:
        return text
    if exception:
        return f"{text}: could not be evaluated: {exception}"
    if details.get("unexpected_count") is not None:
        return f"{text}: {details['unexpected_count']} of {details.get('element_count')} rows unexpected"
    return f"{text}: observed {details.get('observed_value')!r}"
