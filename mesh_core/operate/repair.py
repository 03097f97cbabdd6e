"""`mesh repair`: bring every domain's storage and the instance back in line with the ports.

The ports are the truth. Repair marks dead runs failed, sets aside a current version that does not
read back whole (bringing the port back to its newest readable one), deletes what killed publishes left,
moves a corrupt DuckDB store aside and rebuilds each product's table from its port, records
versions whose run died between the Delta commit and Dagster's record of it, and reads each
current version back in full, checksums verified, so a missing or corrupt file is reported. Every run
of a product does the same for that product first, so repair is only needed to heal without
running anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import dagster as dg

from mesh_core.declare.ref import ProductRef
from mesh_core.errors import MeshError
from mesh_core.governance.workspace import MeshWorkspace
from mesh_core.instance.home import fail_dead_runs
from mesh_core.run.io_manager import IO_MANAGER_KEY
from mesh_core.run.provenance import record_rollback, record_unreported
from mesh_core.storage.port import SetAside


@dataclass(frozen=True)
class RepairResult:
    ref: ProductRef | None  # None: a domain-wide action
    domain: str
    ok: bool
    message: str


def repair_mesh(workspace: MeshWorkspace, instance: dg.DagsterInstance, *, domains: Sequence[str] | None = None) -> list[RepairResult]:
    results = [RepairResult(None, "*", True, f"marked failed run {run_id}, whose process died")
               for run_id in fail_dead_runs(instance)]
    locations = [workspace.location(name) for name in domains] if domains else list(workspace.locations)
    for location in locations:
        storage = location.defs.resources[IO_MANAGER_KEY].storage()
        try:
            damage = storage.warehouse.damage()
            if damage:
                aside = storage.rebuild_warehouse()
                results.append(RepairResult(None, location.name, True, f"moved the damaged DuckDB store to {aside} ({damage})"))
        except MeshError as exc:
            results.append(RepairResult(None, location.name, False, str(exc)))
            continue
        for ref in location.products:
            try:
                moved = storage.set_aside_unreadable(ref.product)
                if moved is not None:
                    results.append(RepairResult(ref, location.name, True, _set_aside_message(moved)))
                    if moved.restored is not None:
                        record_rollback(instance, moved.restored, moved.versions, moved.where, ref.asset_key)
                history = storage.reconcile(ref.product)
                if not history:
                    results.append(RepairResult(ref, location.name, True, "never published; nothing to repair"))
                    continue
                held = history[0]
                storage.port(ref).read(held.version)  # the current version must read back whole and verified
                recorded = record_unreported(instance, history, ref.asset_key)
                note = f"; recorded version(s) {recorded} that Dagster had missed" if recorded else ""
                results.append(RepairResult(ref, location.name, True, f"port and DuckDB store at version {held.version}{note}"))
            except MeshError as exc:
                results.append(RepairResult(ref, location.name, False, str(exc)))
    return results


def _set_aside_message(moved: SetAside) -> str:
    newest = max(moved.versions)
    back = (f"the port is back at version {moved.restored.version}, its newest readable one" if moved.restored
            else "no older version reads, so the port is empty until the next run publishes")
    return (f"set aside unreadable version(s) {', '.join(map(str, moved.versions))} in {moved.where} (kept, with a "
            f"set_aside.json saying why); {back}. Version {newest} failed: {moved.causes[newest]}")
