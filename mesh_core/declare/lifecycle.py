"""A product's lifecycle: draft, active, deprecated (with a date and a successor), retired.

Reading a deprecated product warns, naming the date and the successor, until the date; after
it, reading is an error. Reading another domain's draft product, or any retired one, is an
error (decided, with access, in `mesh_core.declare.readable`). Retired products are not materialized.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date

from mesh_core.declare.metadata import meta_value
from mesh_core.declare.ref import ProductRef


class Status(str, enum.Enum):
    DRAFT = "draft"
    ACTIVE = "active"
    DEPRECATED = "deprecated"
    RETIRED = "retired"


@dataclass(frozen=True)
class Lifecycle:
    status: Status = Status.ACTIVE
    deprecated_on: date | None = None  # from this day on, reading the product is an error
    successor: ProductRef | None = None

    def metadata(self) -> dict[str, str]:
        return {
            "mesh/status": self.status.value,
            **({"mesh/deprecated_on": self.deprecated_on.isoformat()} if self.deprecated_on else {}),
            **({"mesh/successor": str(self.successor)} if self.successor else {}),
        }

    @classmethod
    def from_metadata(cls, metadata) -> "Lifecycle":
        deprecated_on, successor = meta_value(metadata, "mesh/deprecated_on"), meta_value(metadata, "mesh/successor")
        return cls(Status(meta_value(metadata, "mesh/status") or "active"),
                   date.fromisoformat(deprecated_on) if deprecated_on else None,
                   ProductRef.parse(successor) if successor else None)
