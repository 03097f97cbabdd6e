"""`mesh catalog`: every product of the mesh, described for people who do not read Dagster.

Per product: its domain, description, owners, access, lifecycle status, version, objectives, the
products it reads and the products that read it (across domains), its columns, and from the
instance its last publish, the latest result of each check, and the Delta Sharing recipients who
read it over the last 30 days. Products of domains whose code is not here (the contract registry's,
or another virtualenv's) are listed too, from what they published; this instance may never have
materialized them, so their instance columns may be empty. As a table, JSON, or a folder of
linked Markdown pages (one per domain and product) to browse or publish.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

import dagster as dg

from mesh_core.declare.contract import specs_from_metadata
from mesh_core.declare.lifecycle import Lifecycle
from mesh_core.declare.metadata import meta_value
from mesh_core.declare.ref import ProductRef
from mesh_core.declare.slo import SLO
from mesh_core.instance.usage import reads

SHARED_DAYS = 30


@dataclass(frozen=True)
class Entry:
    product: str
    domain: str
    description: str
    owners: tuple[str, ...]
    access: str
    status: str
    version: str
    objective: str
    reads: tuple[str, ...]  # its inputs, as written (pins included)
    read_by: tuple[str, ...]  # products that read it, in any domain
    columns: tuple[dict, ...]  # name, type, description, nullable
    last_publish: str | None  # ISO 8601, UTC
    port_version: int | None
    rows: int | None
    checks: tuple[dict, ...]  # name, passed (None: never run), at
    shared_with: tuple[dict, ...] = ()  # Delta Sharing recipients over SHARED_DAYS: recipient, major, reads, rows, last_read
    reads_30d: int = 0  # their queries over SHARED_DAYS
    source: str = "code"  # where it is described: this workspace's code, else its location's module ("registry:<uri>")

    def as_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


def build_catalog(workspace, instance: dg.DagsterInstance, domains: Sequence[str] | None = None,
                  now: datetime | None = None) -> list[Entry]:
    since = (now or datetime.now(timezone.utc)) - timedelta(days=SHARED_DAYS)
    readers: dict[ProductRef, list[str]] = {}
    for location in workspace.all_locations:
        for consumer, _, spec in location.reads():
            readers.setdefault(spec.ref, []).append(str(consumer))
    entries = []
    for location in workspace.domain_order(remote=True):  # domains known from the registry too
        if domains and location.name not in domains:
            continue
        for ref, spec in sorted(location.products.items()):
            meta = spec.metadata
            latest = instance.get_latest_materialization_event(ref.asset_key)
            shared = reads(instance, ref, since)
            published = latest.asset_materialization.metadata if latest else {}
            checks = []
            for key in sorted(_check_keys(location, ref), key=lambda k: k.name):
                [record] = instance.event_log_storage.get_asset_check_execution_history(key, limit=1) or [None]
                passed = None if record is None or record.status.value not in ("SUCCEEDED", "FAILED") \
                    else record.status.value == "SUCCEEDED"
                checks.append({"name": key.name, "passed": passed,
                               "at": _iso(record.create_timestamp) if record is not None else None})
            entries.append(Entry(
                product=str(ref), domain=ref.domain, description=spec.description or "", owners=tuple(spec.owners),
                access=meta_value(meta, "mesh/access"), status=Lifecycle.from_metadata(meta).status.value, version=meta_value(meta, "mesh/version"),
                objective=SLO.from_metadata(meta).describe(),
                reads=tuple(sorted(f"{v['product']}@{v['major']}" if v.get("major") is not None else v["product"]
                                   for v in (meta_value(meta, "mesh/inputs") or {}).values())),
                read_by=tuple(sorted(set(readers.get(ref, ())))),
                columns=tuple({"name": c["name"], "type": c["type"], "description": c["description"] or "",
                               "nullable": c["nullable"]} for c in (specs_from_metadata(meta) if "dagster/column_schema" in meta else ())),
                last_publish=_iso(latest.timestamp) if latest else None,
                port_version=int(published["mesh/port_version"].value) if "mesh/port_version" in published else None,
                rows=int(published["dagster/row_count"].value) if "dagster/row_count" in published else None,
                checks=tuple(checks),
                shared_with=tuple(r.as_dict() for r in shared), reads_30d=sum(r.reads for r in shared),
                source="code" if location.defs is not None else location.module,
            ))
    return entries


def _check_keys(location, ref: ProductRef):
    """The product's checks, as its code defines them; a domain whose code is not here: none known."""
    return location.defs.resolve_assets_def(ref.asset_key).check_keys if location.defs is not None else ()


def write_markdown(entries: Sequence[Entry], folder: Path) -> list[Path]:
    """index.md, one page per domain and one per product, linked both ways."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    by_domain: dict[str, list[Entry]] = {}
    for entry in entries:
        by_domain.setdefault(entry.domain, []).append(entry)
    known = {entry.product for entry in entries}

    def link(product: str, here: str) -> str:
        ref = product.split("@")[0]
        if ref not in known:
            return f"`{product}`"
        domain, name = ref.split(".")
        return f"[{product}]({'' if domain == here else f'../{domain}/'}{name}.md)"

    def write(path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)

    write(folder / "index.md", "# Data products\n\n" + "\n".join(
        f"- [{domain}]({domain}/index.md): {len(items)} product(s)" for domain, items in by_domain.items()) + "\n")
    for domain, items in by_domain.items():
        write(folder / domain / "index.md", f"# Domain {domain}\n\n[All domains](../index.md)\n\n"
              "| product | status | access | owners | last publish |\n| --- | --- | --- | --- | --- |\n" + "".join(
                  f"| [{e.product}]({e.product.split('.')[1]}.md) | {e.status} | {e.access} | {', '.join(e.owners)} | "
                  f"{e.last_publish or 'never'} |\n" for e in items))
        for e in items:
            failing = [c["name"] for c in e.checks if c["passed"] is False]
            lines = [
                f"# {e.product}", "", f"[Domain {domain}](index.md)", "", e.description, "",
                f"- **Owners:** {', '.join(e.owners)}", f"- **Version:** {e.version} · **access:** {e.access} · "
                f"**status:** {e.status}", f"- **Objective:** {e.objective}",
                f"- **Last publish:** {e.last_publish or 'never'}"
                + (f" (port version {e.port_version}, {e.rows:,} rows)" if e.port_version is not None else ""),
                f"- **Checks:** {sum(c['passed'] is True for c in e.checks)} of {len(e.checks)} passed at the last run"
                + (f"; failing: {', '.join(failing)}" if failing else ""),
                f"- **Reads:** {', '.join(link(p, domain) for p in e.reads) or 'nothing (source-aligned)'}",
                f"- **Read by:** {', '.join(link(p, domain) for p in e.read_by) or 'no product yet'}",
                f"- **Shared with (last {SHARED_DAYS} days):** " + ("; ".join(
                    f"{r['recipient']}: {r['reads']:,} read(s) of major {r['major']}, last {r['last_read']}"
                    for r in e.shared_with) or "no recipient read it"),
                "", "| column | type | nullable | description |", "| --- | --- | --- | --- |",
                *(f"| {c['name']} | {c['type']} | {'yes' if c['nullable'] else 'no'} | {c['description'].replace('|', '/')} |"
                  for c in e.columns), "",
            ]
            write(folder / domain / f"{e.product.split('.')[1]}.md", "\n".join(lines))
    return written


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")
