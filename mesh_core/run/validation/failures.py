"""Pandera's failures as the problems a contract outcome lists: one wording for every engine.

Pandas and Polars report the same kinds of failure (a wrong type, a value that does not convert,
a value outside a set, any other check): both engines turn them into `FailureGroup`s and read them
out here, so a broken rule reads the same whichever engine ran the contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from mesh_core.run.validation.outcome import describe_counts, shown_value

SAMPLE = 5  # values quoted in a problem


@dataclass(frozen=True)
class FailureGroup:
    """The failures of one check on one column: how many, and some of the values that failed
    (all of them on pandas; a bounded sample in an engine, which counts without collecting)."""

    column: str
    check: str
    count: int
    values: Sequence = ()
    value_counts: Mapping[str, int] | None = None  # a check against a set of values: each value, how often


def unconvertible(column: str, count: int, dtype: str, values: Sequence) -> str:
    """`col: N value(s) do not convert to T (sample)`: the words of a failed coercion, for a contract
    check and for a stream conformed to a contract alike."""
    sample = ", ".join(list(dict.fromkeys(shown_value(v) for v in values))[:SAMPLE])
    return f"{column}: {count} value(s) do not convert to {dtype} ({sample})"


def describe_failures(groups: Sequence[FailureGroup]) -> tuple[list[str], dict[str, dict[str, int]]]:
    """The problems, ordered by column then check (as pandas groups them), and the offending values
    of every check against a set of values."""
    problems: list[str] = []
    offending: dict[str, dict[str, int]] = {}
    for group in sorted(groups, key=lambda g: (str(g.column), str(g.check))):
        col, check = group.column, str(group.check)
        if check.startswith("dtype("):  # Pandera's own words: expected <type>, got <type>
            got = ", ".join(sorted({str(v) for v in group.values}))
            problems.append(f"{col}: expected {check[7:-2]}, got {got}")
        elif check.startswith("coerce_dtype("):  # a value that does not parse, or does not fit
            problems.append(unconvertible(col, group.count, check[14:-2], group.values))
        elif group.value_counts is not None:  # which values are not allowed, and how often
            counts = dict(group.value_counts or {})
            offending[f"{col}: {check}"] = counts
            problems.append(f"{col}: {check} ({group.count} failures: {describe_counts(counts)})")
        else:
            problems.append(f"{col}: {check} ({group.count} failures)")
    return problems, offending


def value_set_checks(schema) -> set[tuple[str, str]]:
    """(column, check) of a Pandera schema's checks against a set of values (isin, notin, and custom
    checks whose statistics hold a collection), as Pandera names them in failure cases."""
    checks = [(name, check) for name, column in schema.columns.items() for check in column.checks]
    return {(name, str(check.error)) for name, check in checks
            if any(isinstance(value, (list, tuple, set, frozenset)) for value in (check.statistics or {}).values())}


def too_few_rows(rows: int, min_rows: int) -> str | None:
    """The min_rows rule, in one wording."""
    if rows >= min_rows:
        return None
    return f"{rows} rows, fewer than the {min_rows} the product requires (declare min_rows=0 to allow an empty product)"
