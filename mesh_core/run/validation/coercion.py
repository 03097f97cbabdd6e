"""A contract's coercion may change how a value is stored, never the value.

Pandera coerces with pandas' `astype`, which truncates 39.81 to 39, turns the text "False" into
True, rounds an integer past 2**53 to a float and drops a time zone. Mesh lets Pandera cast, then
compares what it returned with what the product gave, column by column: every value the cast
changed fails the contract, like any other failure. Representations may change (int64 to int32
where every value fits, "3" to 3, a timestamp's unit): those compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa

from mesh_core.run.validation.failures import SAMPLE
from mesh_core.run.validation.outcome import shown_value

MAX_CASES = 50  # changed values kept as failure cases per column; the count covers all


@dataclass(frozen=True)
class ChangedValues:
    """The values of one column that coercion to the contract's type would change."""

    column: str
    dtype: str
    count: int
    before: pd.Series  # the first changed values, as the product gave them
    after: pd.Series  # the same, as coercion made them

    def problem(self) -> str:
        sample = ", ".join(f"{shown_value(b)} → {shown_value(a)}" for b, a in zip(self.before[:SAMPLE], self.after[:SAMPLE]))
        more = f", and {self.count - SAMPLE} more" if self.count > SAMPLE else ""
        return (f"{self.column}: coercion to {self.dtype} would change {self.count} value(s) ({sample}{more}); "
                "a contract may change how a value is stored, never the value: convert or round the column in "
                "the product, or declare the type its values have")

    def failure_cases(self) -> pd.DataFrame:
        """The changed values in the shape of Pandera's failure cases."""
        return pd.DataFrame({
            "schema_context": "Column", "column": self.column, "check": f"coerce_dtype('{self.dtype}') without loss",
            "check_number": None,
            "failure_case": [f"{shown_value(b)} → {shown_value(a)}" for b, a in zip(self.before, self.after)],
            "index": list(self.before.index),
        })


def changed_by_coercion(schema: pa.DataFrameSchema, before: pd.DataFrame, after: pd.DataFrame) -> list[ChangedValues]:
    """Every contract column whose coercion changed a value between `before` (the product's frame)
    and `after` (what Pandera returned, coerced, also when validation failed)."""
    if schema.parsers:  # a frame-wide parser changes values by declaration, before any cast
        return []
    found = []
    for name, column in schema.columns.items():
        if column.regex or column.parsers or not (column.coerce or schema.coerce):
            continue
        old, new = before.get(name), after.get(name)
        if not isinstance(old, pd.Series) or not isinstance(new, pd.Series) or old.dtype == new.dtype:
            continue  # absent, a duplicated label, or not cast
        if len(old) != len(new):  # rows dropped by the contract: compare those kept
            if not old.index.is_unique:
                continue
            old = old.loc[new.index]
        changed = _changed(old, new)
        if changed.any():
            positions = np.flatnonzero(changed)[:MAX_CASES]
            found.append(ChangedValues(name, str(column.dtype), int(changed.sum()),
                                       old.iloc[positions], new.iloc[positions]))
    return found


def _changed(before: pd.Series, after: pd.Series) -> np.ndarray:
    """Where the value after the cast is not the value before it (a null lost or made counts)."""
    present = before.notna().to_numpy(dtype=bool)
    changed = present != after.notna().to_numpy(dtype=bool)
    if _is_text(after.dtype):  # text keeps any value as it was written
        return changed
    both = np.flatnonzero(present & ~changed)
    old, new = before.iloc[both], after.iloc[both]
    if isinstance(old.dtype, pd.DatetimeTZDtype) and not isinstance(new.dtype, pd.DatetimeTZDtype):
        changed[both] = True  # the time zone dropped
        return changed
    if _is_text(old.dtype):  # text parsed: Pandera refuses what does not parse, except into a bool
        if pd.api.types.infer_dtype(old, skipna=True) == "string":  # all text: no per-value look needed
            parsed = np.ones(len(old), dtype=bool)
        else:
            parsed = np.fromiter((isinstance(value, str) for value in old), dtype=bool, count=len(old))
        if parsed.any() and pd.api.types.is_bool_dtype(new.dtype):
            changed[both[parsed]] = [str(b).strip().lower() != str(a).lower() for b, a in zip(old[parsed], new[parsed])]
        both, old, new = both[~parsed], old[~parsed], new[~parsed]
    changed[both] = _differs(old, new)
    return changed


def _differs(old: pd.Series, new: pd.Series) -> np.ndarray:
    """Cast back to the old type and compare: 39 comes back as 39.0, not 39.81; 2**53 + 1 as a float
    comes back as 2**53. A cast back that pandas refuses compares as is."""
    if isinstance(new.dtype, pd.DatetimeTZDtype) and pd.api.types.is_datetime64_dtype(old.dtype):
        new = new.dt.tz_localize(None)  # wall-clock times given a zone: the same times, nothing lost
    try:
        back = new.astype(old.dtype)
    except (TypeError, ValueError, OverflowError):
        back = new
    try:
        return ~np.asarray(back.to_numpy() == old.to_numpy(), dtype=bool)
    except TypeError:  # values that cannot even be compared have changed
        return np.ones(len(old), dtype=bool)


def _is_text(dtype) -> bool:
    return dtype == object or pd.api.types.is_string_dtype(dtype)
