"""Contract snapshots and the breaking-change gate.

Each public product's contract is kept as an ODCS v3 YAML document in its domain's folder,
one per major version: `<domain folder>/snapshots/<domain>.<product>.v<major>.odcs.yaml`,
committed and reviewed like code. `mesh contracts check` (and `mesh lint`) compares the code
with the snapshot of the same major: a breaking change without a major bump is an error that
names every product of every domain reading it, with its owners.

Breaking: a column removed, its type changed, a required column made nullable, a column or
table check removed or changed (a changed check counts as removed: Mesh does not judge whether
it was loosened), the product removed or made internal. Not breaking: a column added, a
nullable column made required, a check added, documentation changed. After a major bump the
old snapshot stays, and lint lists the readers to check, until it is deleted.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import dagster as dg
import yaml

from mesh_core.errors import Violation
from mesh_core.ref import ProductRef
from mesh_core.workspace import Location, MeshWorkspace

ODCS_VERSION = "v3.0.2"


@dataclass(frozen=True)
class Change:
    what: str
    breaking: bool


def major(version: str) -> str:
    return version.split(".", 1)[0]


def snapshot_folder(location: Location) -> Path:
    """`snapshots/` beside the module that defines the domain's code location."""
    spec = importlib.util.find_spec(location.module)
    return (Path(spec.origin).parent if spec and spec.origin else Path.cwd()) / "snapshots"


def snapshot_path(location: Location, ref: ProductRef, version: str) -> Path:
    return snapshot_folder(location) / f"{ref}.v{major(version)}.odcs.yaml"


def contract_document(ref: ProductRef, spec: dg.AssetSpec) -> dict:
    """The product's published contract as an ODCS v3 document, from what its asset declares."""
    schema = spec.metadata["dagster/column_schema"]
    columns = getattr(schema, "schema", schema).columns  # a TableSchema, or its metadata value
    table = spec.metadata.get("mesh/table_checks")
    return {
        "apiVersion": ODCS_VERSION,
        "kind": "DataContract",
        "id": str(ref),
        "name": ref.product,
        "version": spec.metadata["mesh/version"],
        "status": spec.tags.get("mesh/status", "active"),
        "domain": ref.domain,
        "description": {"purpose": spec.description or ""},
        "team": [{"username": owner, "role": "owner"} for owner in spec.owners],
        "schema": [{
            "name": ref.product,
            "physicalType": "table",
            "quality": [{"type": "custom", "engine": "pandera", "implementation": check}
                        for check in getattr(table, "value", table) or []],
            "properties": [
                {
                    "name": column.name,
                    "physicalType": column.type,
                    "description": column.description or "",
                    "required": not column.constraints.nullable,
                    "unique": bool(column.constraints.unique),
                    "quality": [{"type": "custom", "engine": "pandera", "implementation": check}
                                for check in column.constraints.other],
                }
                for column in columns
            ],
        }],
        "customProperties": [{"property": "access", "value": spec.metadata["mesh/access"]}],
    }


def compare(old: dict, new: dict | None) -> list[Change]:
    """Every difference between a snapshot and the code, each marked breaking or not."""
    if new is None:
        return [Change("the product was removed", True)]
    changes = []
    access = lambda doc: next((p["value"] for p in doc.get("customProperties", []) if p["property"] == "access"), "public")  # noqa: E731
    if access(old) == "public" and access(new) != "public":
        changes.append(Change(f"the product was made {access(new)}", True))
    old_table, new_table = ({q["implementation"] for q in doc["schema"][0].get("quality", [])} for doc in (old, new))
    changes += [Change(f"the table lost check {check}", True) for check in sorted(old_table - new_table)]
    changes += [Change(f"the table gained check {check}", False) for check in sorted(new_table - old_table)]
    before, after = ({c["name"]: c for c in doc["schema"][0]["properties"]} for doc in (old, new))
    for name, was in before.items():
        now = after.get(name)
        if now is None:
            changes.append(Change(f"column '{name}' was removed", True))
            continue
        if was["physicalType"] != now["physicalType"]:
            changes.append(Change(f"column '{name}' changed type {was['physicalType']} -> {now['physicalType']}", True))
        if was["required"] and not now["required"]:
            changes.append(Change(f"column '{name}' may now be null", True))
        elif now["required"] and not was["required"]:
            changes.append(Change(f"column '{name}' may no longer be null", False))
        old_checks = {q["implementation"] for q in was.get("quality", [])}
        new_checks = {q["implementation"] for q in now.get("quality", [])}
        changes += [Change(f"column '{name}' lost check {check}", True) for check in sorted(old_checks - new_checks)]
        changes += [Change(f"column '{name}' gained check {check}", False) for check in sorted(new_checks - old_checks)]
        if was.get("description") != now.get("description"):
            changes.append(Change(f"column '{name}' description changed", False))
    changes += [Change(f"column '{name}' was added", False) for name in after if name not in before]
    if old.get("description") != new.get("description"):
        changes.append(Change("the description changed", False))
    return changes


def check_contracts(workspace: MeshWorkspace) -> tuple[list[Violation], list[Violation]]:
    """(errors, warnings) of every public product's contract against its snapshots."""
    readers = _readers(workspace)
    errors, warnings = [], []
    current = {ref: (loc, spec) for loc in workspace.locations for ref, spec in loc.products.items()}
    for ref, (location, spec) in current.items():
        if spec.metadata["mesh/access"] != "public":
            continue
        version = spec.metadata["mesh/version"]
        path = snapshot_path(location, ref, version)
        if not path.exists():
            errors.append(Violation(ref.domain, ref.product, "contract-snapshotted",
                                    f"has no contract snapshot for major version {major(version)} ({path}).",
                                    "run `mesh contracts update` and commit the file it writes."))
            continue
        older = [p for p in sorted(path.parent.glob(f"{ref}.v*.odcs.yaml")) if p != path]
        if older:  # consumers cannot pin a major yet: whoever read the old one must be checked by hand
            warnings.append(Violation(
                ref.domain, ref.product, "contract-major-migrated",
                f"is at major version {major(version)}, and {', '.join(p.name for p in older)} remain(s). Readers written "
                f"against an older major: {_impact(readers.get(ref, []))}.",
                "check each reader against the new contract, then delete the old snapshot(s).",
            ))
        changes = compare(yaml.safe_load(path.read_text()), contract_document(ref, spec))
        breaking = [c.what for c in changes if c.breaking]
        if breaking:
            errors.append(Violation(
                ref.domain, ref.product, "contract-compatible",
                f"breaking change(s) without a major version bump: {'; '.join(breaking)}. "
                f"Read by: {_impact(readers.get(ref, []))}.",
                f"bump the major version (version='{int(major(version)) + 1 if major(version).isdigit() else 'N'}.0.0') "
                "and run `mesh contracts update`, or undo the change.",
            ))
        elif changes:
            warnings.append(Violation(ref.domain, ref.product, "contract-snapshot-current",
                                      f"the snapshot {path.name} is behind the code: {'; '.join(c.what for c in changes)}.",
                                      "run `mesh contracts update` and commit the file."))
    for location in workspace.locations:  # snapshots whose product is gone
        for path in sorted(snapshot_folder(location).glob(f"{location.name}.*.odcs.yaml")):
            ref = ProductRef.parse(path.name.split(".v")[0])
            if ref not in current:
                errors.append(Violation(ref.domain, ref.product, "contract-compatible",
                                        f"was removed, but its contract {path.name} is still published. "
                                        f"Read by: {_impact(readers.get(ref, []))}.",
                                        "delete the snapshot once no domain reads the product."))
    return errors, warnings


def update_snapshots(workspace: MeshWorkspace, domains: Sequence[str] | None = None) -> list[Path]:
    """Write the current contract of every public product to its major's snapshot."""
    written = []
    for location in workspace.locations:
        if domains and location.name not in domains:
            continue
        for ref, spec in location.products.items():
            if spec.metadata["mesh/access"] != "public":
                continue
            path = snapshot_path(location, ref, spec.metadata["mesh/version"])
            text = yaml.safe_dump(contract_document(ref, spec), sort_keys=False, allow_unicode=True)
            if not path.exists() or path.read_text() != text:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                written.append(path)
    return written


def _readers(workspace: MeshWorkspace) -> dict[ProductRef, list[tuple[ProductRef, tuple[str, ...]]]]:
    readers: dict[ProductRef, list] = {}
    for location in workspace.locations:
        for consumer, upstream in location.inputs():
            readers.setdefault(upstream, []).append((consumer, tuple(location.products[consumer].owners)))
    return readers


def _impact(readers: list[tuple[ProductRef, tuple[str, ...]]]) -> str:
    if not readers:
        return "no product in this mesh"
    return ", ".join(f"{consumer} ({', '.join(owners)})" for consumer, owners in sorted(readers))
