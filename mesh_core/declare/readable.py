"""Who may read a product: its access and its lifecycle, decided in this one place.

`mesh lint` (and `mesh dev`) apply it to every declared input of the workspace; the storage
applies it to every read at run time, for the run's domain (`mesh_core.storage.acting`), from
the access and lifecycle the product's current version was published with. So a read the
linter refuses is refused when it happens too, however the reading code reached the port.
"""

from __future__ import annotations

from datetime import date

from mesh_core.declare.lifecycle import Lifecycle, Status
from mesh_core.declare.ref import ProductRef
from mesh_core.errors import Violation


def read_findings(reader: ProductRef | str, upstream: ProductRef, access: str, lifecycle: Lifecycle,
                  today: date) -> tuple[list[Violation], list[Violation]]:
    """(errors, warnings) of `reader` (a product, or a domain reading outside any product) reading
    `upstream`, whose access is `access`, in its lifecycle state."""
    domain, product = (reader.domain, reader.product) if isinstance(reader, ProductRef) else (reader, None)

    def violation(rule: str, message: str, fix: str) -> Violation:
        return Violation(domain, product, rule, message, fix)

    errors = []
    if upstream.domain != domain and access != "public":
        errors.append(violation("read-public-only", f"reads {upstream}, whose access is '{access}'.",
                                f"ask the '{upstream.domain}' owners to make it public, or read a public product."))
    if lifecycle.status is Status.RETIRED:
        return errors + [violation("reads-no-retired", f"reads {upstream}, which is retired.",
                                   f"read {lifecycle.successor} instead." if lifecycle.successor
                                   else f"stop reading it; ask the '{upstream.domain}' owners what replaces it.")], []
    if lifecycle.status is Status.DRAFT and upstream.domain != domain:
        return errors + [violation("reads-no-drafts", f"reads {upstream}, a draft of the '{upstream.domain}' domain.",
                                   "wait until its owners make it active, or read a product that is.")], []
    if lifecycle.status is Status.DEPRECATED:
        when = lifecycle.deprecated_on
        message = f"reads {upstream}, deprecated on {when.isoformat()} in favour of {lifecycle.successor}."
        fix = f"read {lifecycle.successor} instead."
        if today >= when:
            return errors + [violation("reads-no-deprecated", message.replace("deprecated on", "deprecated since"), fix)], []
        return errors, [violation("reads-no-deprecated", message, fix)]
    return errors, []
