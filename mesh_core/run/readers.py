"""Who reads a product: the products that declare it as an input (lineage), and the Delta Sharing
recipients who queried it over a window (usage records in the instance).

One answer for `mesh share usage`, `mesh status` and `mesh catalog`, per product and per major, so
its owners can tell who still reads an older major before they stop publishing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable

import dagster as dg

from mesh_core.declare.majors import major_of
from mesh_core.declare.metadata import meta_value
from mesh_core.declare.ref import ProductRef
from mesh_core.instance.usage import reads


@dataclass(frozen=True)
class Reader:
    name: str  # a consumer product 'domain.product', or a recipient's name
    kind: str  # product | recipient
    major: int | None  # the major it reads (a product's pin, else the producer's current major)
    pinned: bool = False
    reads: int | None = None  # recipients: queries in the window (products: not counted)
    rows: int | None = None
    last_read: str | None = None  # ISO 8601, UTC

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "major": self.major, "pinned": self.pinned, "reads": self.reads,
                "rows": self.rows, "last_read": self.last_read}


@dataclass(frozen=True)
class ProductReaders:
    product: str
    major: int | None  # its current major
    majors: tuple[int, ...]  # every major it publishes now, current first
    window_days: int
    readers: tuple[Reader, ...]

    @property
    def reads(self) -> int:
        return sum(r.reads or 0 for r in self.readers)

    @property
    def reads_by(self) -> dict[str, int]:
        by: dict[str, int] = {}
        for r in self.readers:
            if r.kind == "recipient":
                by[r.name] = by.get(r.name, 0) + (r.reads or 0)
        return by

    def of_major(self, major: int) -> "ProductReaders":
        return ProductReaders(self.product, self.major, self.majors, self.window_days,
                              tuple(r for r in self.readers if r.major == major))

    def as_dict(self) -> dict:
        return {"product": self.product, "major": self.major, "majors": list(self.majors), "window_days": self.window_days,
                "readers": [r.as_dict() for r in self.readers], "reads": self.reads, "reads_by": self.reads_by}


def consumers(workspace) -> dict[ProductRef, list[tuple[ProductRef, int | None]]]:
    """{producer: [(consumer, pinned major or None)]} over every domain of the workspace, those whose
    code is not here (the registry's) included."""
    found: dict[ProductRef, list[tuple[ProductRef, int | None]]] = {}
    for location in workspace.all_locations:
        for consumer, _, spec in location.reads():
            found.setdefault(spec.ref, []).append((consumer, spec.major))
    return found


def product_readers(instance: dg.DagsterInstance, ref: ProductRef, metadata, *, window_days: int,
                    lineage: Iterable[tuple[ProductRef, int | None]] = (), now: datetime | None = None) -> ProductReaders:
    """The readers of one product (its spec's `metadata`) over the last `window_days`."""
    now = now or datetime.now(timezone.utc)
    current = major_of(meta_value(metadata, "mesh/version") or "")
    older = sorted({int(item["major"]) for item in meta_value(metadata, "mesh/previous_majors") or []}, reverse=True)
    readers = {Reader(str(consumer), "product", current if major is None else major, pinned=major is not None)
               for consumer, major in lineage}
    found = [Reader(r.recipient, "recipient", r.major, reads=r.reads, rows=r.rows, last_read=r.last_read)
             for r in reads(instance, ref, now - timedelta(days=window_days))]
    ordered = sorted(readers, key=lambda r: (-(r.major or 0), r.name)) + sorted(found, key=lambda r: (-(r.major or 0), r.name))
    return ProductReaders(str(ref), current, tuple(m for m in (current, *older) if m is not None), window_days, tuple(ordered))


def mesh_readers(workspace, instance: dg.DagsterInstance, *, window_days: int, domains: Iterable[str] | None = None,
                 now: datetime | None = None) -> dict[ProductRef, ProductReaders]:
    """The readers of every product (of `domains`), in the workspace's dependency order."""
    lineage = consumers(workspace)
    domains = set(domains or ())
    return {ref: product_readers(instance, ref, spec.metadata, window_days=window_days, lineage=lineage.get(ref, ()), now=now)
            for location in workspace.domain_order() if not domains or location.name in domains
            for ref, spec in sorted(location.products.items())}
