"""What a product reads from an upstream product, and what it relies on (consumer-driven contracts).

`inputs={"flights": "operations.flights"}` reads the producer's current major version;
`"operations.flights@1"` pins major 1, which the producer keeps publishing beside a newer one
for a declared window. `Input(..., columns=[...], expectations=[...])` also says which columns
the consumer relies on and what it expects of them: lint checks them against the producer's
contract, the breaking-change gate counts only consumers that rely on what changed, and the
producer's write-audit-publish runs the expectations (see `mesh_core.governance.consumers`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from mesh_core.declare.expectation import Expectation
from mesh_core.declare.names import is_valid_name
from mesh_core.declare.ref import ProductRef

_PINNED = re.compile(r"^(?P<ref>[^@]+)@(?P<major>[0-9]{1,6})$")


@dataclass(frozen=True)
class Input:
    """One upstream product a product reads: `Input("operations.flights@1", columns=["dep_delay"])`."""

    ref: ProductRef
    major: int | None = None  # None: whatever major the producer publishes as current
    columns: tuple[str, ...] | None = None  # None: relies on every column
    expectations: tuple[Expectation, ...] = ()
    # How the product's code receives it (an engine name); None: as its parameter's annotation says, else pandas.
    # The consumer's own business: not part of what it publishes about its reads (as_dict).
    as_: str | None = None

    def __init__(self, source: "ProductRef | str", *, major: int | None = None,
                 columns: Iterable[str] | None = None, expectations: Iterable[Expectation] = (),
                 as_: str | None = None) -> None:
        ref, pinned = _split(source)
        if major is not None and pinned is not None and major != pinned:
            raise ValueError(f"Input {source!r} pins major {pinned} and major={major}: pin it once.")
        major = pinned if major is None else major
        if major is not None and (isinstance(major, bool) or not isinstance(major, int) or major < 0):
            raise ValueError(f"Invalid major version {major!r} for {ref}: a whole number, e.g. 'operations.flights@1'.")
        if isinstance(columns, str):
            columns = [columns]
        columns = None if columns is None else tuple(columns)
        bad = [c for c in columns or () if not is_valid_name(c)]
        if bad:
            raise ValueError(f"Invalid column name(s) {bad} read from {ref}: columns are lower snake case names.")
        if columns is not None and len(set(columns)) != len(columns):
            raise ValueError(f"Columns read from {ref} name a column twice: {list(columns)}.")
        expectations = tuple(expectations)
        if not all(isinstance(item, Expectation) for item in expectations):
            raise ValueError(f"Expectations on {ref} must be mesh_core.Expectation('ExpectColumn...', column=...).")
        names = [item.name for item in expectations]
        if len(set(names)) != len(names):
            raise ValueError(f"Expectations on {ref} use a check name twice: give each its own name=... .")
        if as_ is not None:
            from mesh_core.declare.engine import Engine

            try:
                as_ = Engine(as_).value
            except ValueError:
                raise ValueError(f"Input {ref} as_={as_!r}: read an input as one of "
                                 f"{', '.join(e.value for e in Engine)}.") from None
        object.__setattr__(self, "as_", as_)
        object.__setattr__(self, "ref", ref)
        object.__setattr__(self, "major", major)
        object.__setattr__(self, "columns", columns)
        object.__setattr__(self, "expectations", expectations)

    @classmethod
    def parse(cls, value: "Input | ProductRef | str") -> "Input":
        return value if isinstance(value, Input) else cls(value)

    def relied_on(self) -> set[str] | None:
        """The producer's columns this consumer relies on; None when it has not said (all of them)."""
        return None if self.columns is None else self.named_columns()

    def named_columns(self) -> set[str]:
        """Every column this input names: those it reads and those its expectations check."""
        found = set(self.columns or ())
        for item in self.expectations:
            found |= {item.column} if item.column else set()
            found |= {item.params[key] for key in ("column_A", "column_B") if isinstance(item.params.get(key), str)}
            found |= set(item.params.get("column_list") or ())
            found |= _condition_columns(item.params.get("row_condition"), item.params.get("condition_parser"))
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "product": str(self.ref),
            "major": self.major,
            "columns": None if self.columns is None else list(self.columns),
            "expectations": [item.as_dict() for item in self.expectations],
        }

    @classmethod
    def from_dict(cls, value: "dict | str") -> "Input":
        if isinstance(value, str):  # metadata written before inputs carried more than the reference
            return cls(value)
        return cls(value["product"], major=value.get("major"), columns=value.get("columns"),
                   expectations=[Expectation.from_dict(item) for item in value.get("expectations") or ()])

    def __str__(self) -> str:
        return f"{self.ref}@{self.major}" if self.major is not None else str(self.ref)


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NAME = re.compile(r"(?<![.\w])([a-z_][a-z0-9_]*)\b(?!\s*\()")
_GX_COLUMN = re.compile(r"col\(\s*['\"]([A-Za-z0-9_]+)['\"]\s*\)")
_NOT_COLUMNS = {"and", "or", "not", "in", "is", "true", "false", "none", "nan"}


def _condition_columns(condition: object, parser: object) -> set[str]:
    """Columns a row condition reads: `col("x")` for GX's parser; bare names for pandas' query syntax."""
    if not isinstance(condition, str):
        return set()
    if parser == "great_expectations":
        return set(_GX_COLUMN.findall(condition))
    return {name for name in _NAME.findall(_QUOTED.sub(" ", condition)) if name not in _NOT_COLUMNS}


def _split(source: "ProductRef | str") -> tuple[ProductRef, int | None]:
    if isinstance(source, str):
        match = _PINNED.fullmatch(source.strip())
        if match:
            return ProductRef.parse(match["ref"]), int(match["major"])
        if "@" in source:
            raise ValueError(f"Invalid pinned reference {source!r}: write 'domain.product@<major>', e.g. 'operations.flights@1'.")
    return ProductRef.parse(source), None
