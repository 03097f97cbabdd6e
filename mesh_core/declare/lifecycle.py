"""A product's lifecycle: draft, active, deprecated (with a date and a successor), retired.

Reading a deprecated product warns, naming the date and the successor, until the date; after
it, reading is an error. Reading another domain's draft product, or any retired one, is an
error. Retired products are not materialized.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date

from mesh_core.declare.metadata import meta_value
from mesh_core.declare.ref import ProductRef
from mesh_core.errors import Violation


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


def read_findings(consumer: ProductRef, upstream: ProductRef, lifecycle: Lifecycle, today: date) -> tuple[list[Violation], list[Violation]]:
    """(errors, warnings) of `consumer` reading `upstream` in its current lifecycle state."""
    def violation(rule: str, message: str, fix: str) -> Violation:
        return Violation(consumer.domain, consumer.product, rule, message, fix)

    if lifecycle.status is Status.RETIRED:
        return [violation("reads-no-retired", f"reads {upstream}, which is retired.",
                          f"read {lifecycle.successor} instead." if lifecycle.successor
                          else f"stop reading it; ask the '{upstream.domain}' owners what replaces it.")], []
    if lifecycle.status is Status.DRAFT and upstream.domain != consumer.domain:
        return [violation("reads-no-drafts", f"reads {upstream}, a draft of the '{upstream.domain}' domain.",
                          f"wait until its owners make it active, or read a product that is.")], []
    if lifecycle.status is Status.DEPRECATED:
        when = lifecycle.deprecated_on
        message = f"reads {upstream}, deprecated on {when.isoformat()} in favour of {lifecycle.successor}."
        fix = f"read {lifecycle.successor} instead."
        if today >= when:
            return [violation("reads-no-deprecated", message.replace("deprecated on", "deprecated since"), fix)], []
        return [], [violation("reads-no-deprecated", message, fix)]
    return [], []
