"""A product's contract as an ODCS v3 document, from what its asset declares.

The one form a contract is compared in: a major's committed snapshot, the registry's copy of it
(what other repositories check themselves against), and `mesh contracts export` all start here.
"""

from __future__ import annotations

import dagster as dg

from mesh_core.declare.contract import specs_from_metadata
from mesh_core.declare.metadata import meta_value
from mesh_core.declare.ref import ProductRef

ODCS_VERSION = "v3.0.2"


def contract_document(ref: ProductRef, spec: dg.AssetSpec, previous: dict | None = None) -> dict:
    """The product's published contract as an ODCS v3 document, from what its asset declares;
    with `previous` (an entry of `mesh/previous_majors`), the contract of that older major."""
    if previous is None:
        columns = specs_from_metadata(spec.metadata)
        table, version = meta_value(spec.metadata, "mesh/table_checks"), spec.metadata["mesh/version"]
    else:
        columns, table, version = previous["columns"], previous["table_checks"], previous["version"]
    return {
        "apiVersion": ODCS_VERSION,
        "kind": "DataContract",
        "id": str(ref),
        "name": ref.product,
        "version": version,
        "status": spec.tags.get("mesh/status", "active"),
        "domain": ref.domain,
        "description": {"purpose": spec.description or ""},
        "team": [{"username": owner, "role": "owner"} for owner in spec.owners],
        "schema": [{
            "name": ref.product,
            "physicalType": "table",
            "quality": [{"type": "custom", "engine": "pandera", "implementation": check} for check in table or []],
            "properties": [
                {
                    "name": column["name"],
                    "physicalType": column["type"],
                    "description": column["description"] or "",
                    "required": not column["nullable"],
                    "unique": column["unique"],
                    "quality": [{"type": "custom", "engine": "pandera", "implementation": check}
                                for check in column["checks"]],
                }
                for column in columns
            ],
        }],
        "customProperties": [{"property": "access", "value": spec.metadata["mesh/access"]}],
    }
