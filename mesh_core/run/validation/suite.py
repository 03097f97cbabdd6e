"""Run a product's expectation suite with Great Expectations 1.x, imported only here."""

from __future__ import annotations

import json
import os
import threading
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from mesh_core.declare.expectation import Expectation, Severity
from mesh_core.run.validation.outcome import CheckOutcome, describe_counts, shown_value

_GX_SEVERITY = {Severity.ERROR: "critical", Severity.WARNING: "warning"}
_SAMPLE = 20  # failing rows shown per expectation; the counts cover all of them
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


def run_suite(suite_name: str, expectations: Sequence[Expectation], frame: pd.DataFrame,
              keys: Sequence[str] = ()) -> list[CheckOutcome]:
    """Validate `frame` against the suite in an ephemeral GX context: one outcome per expectation.
    A failure's sample names its rows by the `keys` columns (by their position when there are none)."""
    keys = [key for key in keys if key in frame.columns]
    with SUITES.lock:  # the context's batch cache is shared: one validation at a time per process
        source = SUITES.source(_PANDAS_SOURCE, lambda context: context.data_sources.add_pandas(_PANDAS_SOURCE))
        validation = SUITES.validation(suite_name, expectations, source, _dataframe_batch)
        try:
            result = validation.run(batch_parameters={"dataframe": frame}, result_format=result_format(keys))
        finally:
            SUITES.release()
    return suite_outcomes(suite_name, expectations, result, keys)


def result_format(keys: Sequence[str]) -> dict:
    """What GX reports per expectation, the same for every engine: counts, and a sample named by `keys`."""
    return {"result_format": "SUMMARY", "partial_unexpected_count": _SAMPLE,
            **({"unexpected_index_column_names": list(keys)} if keys else {})}


def suite_outcomes(suite_name: str, expectations: Sequence[Expectation], result, keys: Sequence[str]) -> list[CheckOutcome]:
    """A GX validation result as one CheckOutcome per expectation, whichever engine computed it, in the
    suite's order (GX orders its results by how it resolved them, which differs between engines)."""
    by_name = {item.name: item for item in expectations}
    outcomes = {}
    for evr in result.results:
        item = by_name[evr.expectation_config.meta["mesh_check"]]
        details = evr.result or {}
        metadata: dict = {"expectation": item.summary(), "suite": suite_name}
        metadata.update({k: _plain(details[k]) for k in _RESULT_KEYS if details.get(k) is not None})
        if details.get("partial_unexpected_list"):
            metadata["unexpected_sample"] = _sample(item, details, keys)
        exception = _exception_message(evr.exception_info)
        if exception:
            metadata["exception"] = exception
        passed = bool(evr.success)
        outcomes[item.name] = CheckOutcome(item.name, passed, item.severity, _describe(item, passed, details, exception), metadata)
    return [outcomes[item.name] for item in expectations]


_PANDAS_SOURCE = "mesh"


def _dataframe_batch(source, name: str):
    return source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe("output")


class _Suites:
    """One ephemeral GX context per process, a datasource per engine, and one validation definition
    per suite and engine, built the first time the suite runs there and run again on every later
    output: setting up a context, a datasource and a suite costs more than validating a small product."""

    def __init__(self):
        self.lock = threading.RLock()
        self._context = None
        self._sources: dict[str, object] = {}
        self._count = 0
        self._built: dict[tuple[str, str], tuple[str, object]] = {}  # (source, suite) -> (built from, definition)

    def source(self, name: str, add: Callable[[object], object]):
        """The datasource `name`, added to the context by `add(context)` the first time."""
        with self.lock:
            if name not in self._sources:
                self._sources[name] = add(self._context_once())
            return self._sources[name]

    def validation(self, suite_name: str, expectations: Sequence[Expectation], source,
                   batch_definition: Callable[[object, str], object]):
        """The suite's validation definition on `source` (a datasource of `source()`), its batch made
        by `batch_definition(source, name)`."""
        declared = json.dumps([item.as_dict() for item in expectations], sort_keys=True, default=str)
        with self.lock:
            built = self._built.get((source.name, suite_name))
            if built is not None and built[0] == declared:
                return built[1]
            context = self._context_once()
            import great_expectations as gx

            # GX names are unique in a context: a suite declared anew (a reloaded product) gets a new name.
            self._count += 1
            name = f"{suite_name}#{self._count}"
            batch = batch_definition(source, name)
            suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=build_gx_expectations(expectations)))
            definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
            self._built[(source.name, suite_name)] = (declared, definition)
            return definition

    def release(self) -> None:
        """Drop what GX keeps as its active batches: the validated output must not outlive its step."""
        with self.lock:
            for source in self._sources.values():
                batches = source.get_execution_engine().batch_manager
                batches.reset_batch_cache()
                batches.batch_data_cache.clear()

    def _context_once(self):
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # read when GX is imported
        import great_expectations as gx

        if self._context is None:
            from great_expectations.data_context.types.base import ProgressBarsConfig

            self._context = gx.get_context(mode="ephemeral")
            self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
        return self._context


SUITES = _Suites()


def _exception_message(info) -> str | None:
    """GX nests exception details, per metric, at varying depth."""
    if not isinstance(info, dict):
        return None
    if info.get("exception_message"):
        return str(info["exception_message"])
    return next((m for v in info.values() if (m := _exception_message(v))), None)


def _plain(value):
    if isinstance(value, np.generic):  # pandas' metrics are numpy scalars, SQL's are Python ones: the same number
        value = value.item()
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
        found = f"{text}: {details['unexpected_count']} of {details.get('element_count')} rows unexpected"
        if "value_set" in item.params and details.get("partial_unexpected_counts"):  # which values, how often
            counts = {shown_value(c["value"]): int(c["count"]) for c in details["partial_unexpected_counts"]}
            complete = sum(counts.values()) >= details["unexpected_count"]
            found += f" ({'' if complete else f'among the first {_SAMPLE}: '}{describe_counts(counts)})"
        return found
    return f"{text}: observed {details.get('observed_value')!r}"


def _sample(item: Expectation, details: dict, keys: Sequence[str]) -> str:
    """The first failing rows, each by its key columns and the values checked: `flight_id=7: dep_delay=null`."""
    values = details.get("partial_unexpected_list") or []
    rows = details.get("partial_unexpected_index_list") or []
    if len(rows) != len(values):  # no row index (GX's SQL engine gives none without keys): the values alone
        return "; ".join(_checked(item, value) for value in values)
    shown = []
    for row, value in zip(rows, values):
        if isinstance(row, dict):  # {key: ..., checked column: ...}
            named = ", ".join(f"{k}={shown_value(row[k])}" for k in keys if k in row)
            checked = ", ".join(f"{k}={shown_value(v)}" for k, v in row.items() if k not in keys)
            shown.append(f"{named}: {checked}" if checked else named)
        else:
            shown.append(f"row {row}: {_checked(item, value)}")
    return "; ".join(shown)


def _checked(item: Expectation, value) -> str:
    if isinstance(value, dict):  # several columns, by name
        return ", ".join(f"{k}={shown_value(v)}" for k, v in value.items())
    if isinstance(value, tuple):  # a pair or several columns: the values in the order GX checked them
        return "(" + ", ".join(map(shown_value, value)) + ")"
    return f"{item.column}={shown_value(value)}" if item.column else shown_value(value)
