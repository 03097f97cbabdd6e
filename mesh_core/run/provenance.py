"""Which port version a run reads, decided from the Dagster instance's event log.

A run reads each upstream product at the version whose materialization the instance recorded
last *before the run was created*, or at the version published earlier in the same run.
Dagster logs a run's planned materializations when it creates the run (for a run launched from
the UI or the daemon, when it is queued), in the same cross-run index as materializations, so
their storage ids order the two. The rule needs no clock, lock or shared file: every step of a
run, in any process of any executor, computes the same answer, and the consumer's
materialization records it as provenance. A run that plans no asset materialization (an op
job reading a product) has no position and reads the latest version.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import dagster as dg

from mesh_core.declare.majors import major_of
from mesh_core.declare.ref import ProductRef
from mesh_core.errors import ProductNotPublishedError
from mesh_core.storage.port import PortVersion

_PAGE, _MAX_PAGES = 100, 50
PORT_VERSION = "mesh/port_version"  # materialization metadata: the Delta version published
MAJOR_VERSIONS = "mesh/major_versions"  # ... and of each older major published beside it: {"1": 7}
UNFINISHED = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING,
              dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def pinned_version(instance: dg.DagsterInstance, run_id: str, ref: ProductRef) -> int:
    """The port version of `ref` that run `run_id` reads, in every one of its steps."""
    return pinned_read(instance, run_id, ref)[1]


def pinned_read(instance: dg.DagsterInstance, run_id: str, ref: ProductRef, major: int | None = None
                ) -> tuple[int | None, int]:
    """(port, version) that run `run_id` reads of `ref` pinned to `major`: port None is the
    product's own port (its current major); a number is the port of that older major."""
    for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records:
        materialization = record.asset_materialization
        if materialization is not None and materialization.asset_key == ref.asset_key:
            return _port_version(materialization, ref, major)
    pinned = _latest_before(instance, ref, _run_position(instance, run_id), major)
    if pinned is None:
        raise not_published(run_id, [ref])
    return pinned


def unpublished(instance: dg.DagsterInstance, run_id: str, refs: Iterable[ProductRef]) -> list[ProductRef]:
    """Of `refs`, those run `run_id` has no version of at all: none published before it started, nor in it."""
    own = {record.asset_materialization.asset_key for record in instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records if record.asset_materialization}
    position = _run_position(instance, run_id)
    return [ref for ref in refs if ref.asset_key not in own and not instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=ref.asset_key, before_storage_id=position), limit=1).records]


def not_published(run_id: str, refs: Sequence[ProductRef]) -> ProductNotPublishedError:
    """The error for inputs with no version to read, naming every one and every domain to run first."""
    refs = sorted(set(refs), key=str)
    domains = sorted({ref.domain for ref in refs})

    def listed(items: list[str]) -> str:
        return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"

    return ProductNotPublishedError(
        f"{'Product' if len(refs) == 1 else 'Products'} {listed([str(r) for r in refs])} had no published version "
        f"when run {run_id[:8]} started. Materialize the {listed([repr(d) for d in domains])} "
        f"domain{'s' if len(domains) > 1 else ''} first, e.g. "
        f"`mesh materialize {' '.join(f'--domain {domain}' for domain in domains)}`."
    )


def versions_in_use(instance: dg.DagsterInstance, ref: ProductRef) -> set[int]:
    """Versions of `ref` that a queued or running run may still read: retention keeps them."""
    in_use = set()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED)):
        pinned = _latest_before(instance, ref, _run_position(instance, run.run_id))
        if pinned is not None:
            in_use.add(pinned[1])
    return in_use


def record_unreported(instance: dg.DagsterInstance, history: Iterable[PortVersion], asset_key: dg.AssetKey) -> list[int]:
    """Report, as materializations, port versions committed by runs that died before Dagster
    recorded them. The Delta commit is the commit point: once it exists, the version is published."""
    recorded = _latest_before(instance, ProductRef.from_asset_key(asset_key), None)
    reported = []
    for version in sorted(history, key=lambda item: item.version):
        if recorded is not None and version.version <= recorded[1]:
            continue
        run = instance.get_run_by_id(version.run_id)
        if run is not None and run.status in UNFINISHED:
            continue  # its own run is about to record it
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=asset_key,
                description=f"Version {version.version} was committed by {version.run_id}, which Dagster had "
                            "not recorded (a run that stopped early, or a publish outside Dagster); recorded by "
                            "Mesh's reconciliation.",
                metadata={PORT_VERSION: version.version, "dagster/row_count": version.rows,
                          "mesh/version": version.product_version, "mesh/published_by_run": version.run_id,
                          "mesh/recovered": True},
            )
        )
        reported.append(version.version)
    return reported


def record_rollback(instance: dg.DagsterInstance, restored: PortVersion, set_aside: Sequence[int], where: str,
                    asset_key: dg.AssetKey) -> None:
    """Report the version a port was brought back to as the latest materialization, so that runs
    pin it rather than the set-aside version Dagster recorded last."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=asset_key,
            description=f"Version(s) {list(set_aside)} did not read back whole and were set aside in {where}; "
                        f"the port is back at version {restored.version} (by `mesh repair`).",
            metadata={PORT_VERSION: restored.version, "dagster/row_count": restored.rows,
                      "mesh/version": restored.product_version, "mesh/published_by_run": restored.run_id,
                      "mesh/set_aside": dg.MetadataValue.json({"versions": list(set_aside), "where": where}),
                      "mesh/recovered": True},
        )
    )


def _run_position(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The cross-run storage id of the run's first planned materialization.

    A run's own event ids are not comparable across runs (sqlite keeps one database per
    run), but planned materializations are mirrored into the index with materializations."""
    if run_id in _positions:  # logged when the run was created: it never moves
        return _positions[run_id]
    first = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, limit=1, ascending=True
    ).records
    if not first:
        return None
    key = first[0].event_log_entry.dagster_event.asset_key
    cursor = None
    for _ in range(_MAX_PAGES):  # newest first: the run is normally on the first page
        page = instance.fetch_planned_materializations(key, limit=_PAGE, cursor=cursor, ascending=False)
        for record in page.records:
            if record.run_id == run_id:
                if len(_positions) >= _KEEP_POSITIONS:
                    _positions.clear()
                _positions[run_id] = record.storage_id
                return record.storage_id
        if not page.has_more:
            break
        cursor = page.cursor
    return None


# Run positions already found, by run id (ids are UUIDs): every input and every publish of a run
# asks for its run's position, which costs a few event-log queries to find.
_positions: dict[str, int] = {}
_KEEP_POSITIONS = 1000


def _latest_before(instance: dg.DagsterInstance, ref: ProductRef, storage_id: int | None,
                   major: int | None = None) -> tuple[int | None, int] | None:
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=ref.asset_key, before_storage_id=storage_id), limit=1, ascending=False
    )
    if not result.records:
        return None
    return _port_version(result.records[0].asset_materialization, ref, major)


def _port_version(materialization: dg.AssetMaterialization, ref: ProductRef, major: int | None = None
                  ) -> tuple[int | None, int]:
    metadata = materialization.metadata
    value = metadata.get(PORT_VERSION)
    if value is None:
        raise ProductNotPublishedError(
            f"The latest materialization of {ref} records no port version (it predates Mesh's Delta Lake "
            f"ports). Materialize the '{ref.domain}' domain again: `mesh materialize --domain {ref.domain}`."
        )
    current = major_of(getattr(metadata.get("mesh/version"), "value", ""))
    if major is None or major == current:
        return None, int(value.value)
    older = getattr(metadata.get(MAJOR_VERSIONS), "value", None) or {}
    if str(major) in older:
        return major, int(older[str(major)])
    beside = f" (and {', '.join(sorted(older))} beside it)" if older else ""
    raise ProductNotPublishedError(
        f"{ref}@{major} is not published: the version of {ref} this run reads is major {current}{beside}. "
        f"Check the consumer against major {current} and pin '{ref}@{current}', or ask the '{ref.domain}' owners "
        f"to keep major {major} published with previous_majors=[PreviousMajor(...)]."
    )
