"""Declaring a Great Expectations suite without importing Great Expectations.

`import great_expectations` costs seconds and hundreds of MB, so a product
declares its suite as plain specs; `mesh_core.run.validation.suite` turns them into
GX 1.x expectations only when a run validates data.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

_GX_CLASS = re.compile(r"^Expect[A-Z][A-Za-z0-9]*$")
_CHECK_NAME = re.compile(r"^[A-Za-z0-9_]{1,100}$")


class Severity(str, enum.Enum):
    """What a failed check does: ERROR blocks publishing, WARNING is reported only."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Expectation:
    """One GX 1.x expectation, by class name, with its arguments.

    `Expectation("ExpectColumnValuesToNotBeNull", column="arr_time", severity="warning")`
    becomes `gx.expectations.ExpectColumnValuesToNotBeNull(column="arr_time", severity="warning")`
    at validation time, and the asset check `not_null_arr_time` in the Dagster UI.
    """

    type: str
    column: str | None = None
    severity: Severity = Severity.ERROR
    name: str | None = None
    description: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def __init__(
        self,
        type: str,
        *,
        column: str | None = None,
        severity: Severity | str = Severity.ERROR,
        name: str | None = None,
        description: str | None = None,
        **params: Any,
    ) -> None:
        if not isinstance(type, str) or not _GX_CLASS.fullmatch(type):
            raise ValueError(
                f"Invalid expectation type {type!r}: use a GX 1.x expectation class name such as "
                "'ExpectColumnValuesToNotBeNull'."
            )
        try:
            severity = Severity(severity)
        except ValueError:
            raise ValueError(
                f"Invalid severity {severity!r} for {type}: use 'error' (blocks publishing) "
                "or 'warning' (reported only)."
            ) from None
        try:
            json.dumps(params)
        except TypeError as exc:
            raise ValueError(
                f"Arguments of {type} must be plain JSON values (numbers, strings, lists): {exc}"
            ) from None
        check_name = name or _default_check_name(type, column)
        if not _CHECK_NAME.fullmatch(check_name):
            raise ValueError(
                f"Invalid check name {check_name!r} for {type}: use letters, digits and underscores."
            )
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "column", column)
        object.__setattr__(self, "severity", severity)
        object.__setattr__(self, "name", check_name)
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "params", MappingProxyType(dict(sorted(params.items()))))

    def __hash__(self) -> int:
        return hash((self.type, self.column, self.severity, self.name, json.dumps(dict(self.params))))

    @property
    def gx_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the GX expectation class."""
        kwargs = dict(self.params)
        if self.column is not None:
            kwargs["column"] = self.column
        return kwargs

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "column": self.column, "severity": self.severity.value, "name": self.name,
                "description": self.description, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> "Expectation":
        return cls(value["type"], column=value.get("column"), severity=value.get("severity", Severity.ERROR),
                   name=value.get("name"), description=value.get("description"), **(value.get("params") or {}))

    def summary(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.gx_kwargs.items())
        return f"{self.type}({args}) [{self.severity.value}]"


def _default_check_name(type: str, column: str | None) -> str:
    # ExpectColumnValuesToNotBeNull + arr_time -> column_values_to_not_be_null__arr_time
    words = re.sub(r"(?<!^)(?=[A-Z])", "_", type).lower().split("_")[1:]
    base = "_".join(words)
    return f"{base}__{column}" if column else base
