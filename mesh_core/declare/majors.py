"""Older major versions of a product, published beside the current one for a window.

After a breaking change a producer bumps the major version and keeps serving the old shape:

    @data_product(domain="operations", version="2.0.0", contract=FlightsV2,
                  previous_majors=[PreviousMajor("1.3.0", contract=Flights, until="2027-03-01",
                                                 adapt=lambda flights: flights.rename(columns=...))])

Each run derives the old major from the new output with `adapt`, audits it against the old
contract, and publishes it to its own port (`<product>.v<major>`), until `until`. Consumers
pinned with `"operations.flights@1"` read it; lint lists them, and from `until` on a pin to it
is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Callable

from mesh_core.declare.contract import column_specs, contract_fingerprint, is_contract, table_checks


def major_of(version: str) -> int | None:
    head = str(version).split(".", 1)[0]
    return int(head) if head.isdigit() else None


@dataclass(frozen=True)
class PreviousMajor:
    """An older major of a product: its last version, its contract, the day it stops, and how
    to derive it from the current output."""

    version: str
    contract: Any
    until: date  # from this day on it is not published, and reading it is an error
    adapt: Callable[[Any], Any]  # the current major's audited output -> this major's shape

    def __init__(self, version: str, *, contract: Any, until: "date | str", adapt: Callable[[Any], Any]) -> None:
        if isinstance(until, str):
            try:
                until = date.fromisoformat(until)
            except ValueError:
                raise ValueError(f"PreviousMajor {version!r}: until={until!r} is not a date 'YYYY-MM-DD'.") from None
        if not isinstance(until, date):
            raise ValueError(f"PreviousMajor {version!r}: until={until!r} is not a date 'YYYY-MM-DD'.")
        if major_of(version) is None:
            raise ValueError(f"PreviousMajor {version!r}: the version must start with its major number, e.g. '1.4.0'.")
        if not is_contract(contract):
            raise ValueError(f"PreviousMajor {version!r}: contract={contract!r} is not a Pandera DataFrameModel.")
        if not callable(adapt):
            raise ValueError(f"PreviousMajor {version!r}: adapt must be a function from the current output to this major's shape.")
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "contract", contract)
        object.__setattr__(self, "until", until)
        object.__setattr__(self, "adapt", adapt)

    @property
    def major(self) -> int:
        return major_of(self.version)  # type: ignore[return-value]  # checked in __init__

    def published_on(self, day: date) -> bool:
        return day < self.until

    def metadata(self) -> dict[str, Any]:
        return {
            "major": self.major, "version": self.version, "until": self.until.isoformat(),
            "contract": self.contract.__name__, "contract_fingerprint": contract_fingerprint(self.contract),
            "columns": column_specs(self.contract), "table_checks": table_checks(self.contract),
        }
