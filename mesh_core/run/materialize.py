"""Materialize the mesh headlessly: one run per domain, in dependency order.

Assets of different code locations cannot share a run, so the mesh is a
sequence of runs. Each runs in process (no subprocess per step) against the
real Dagster instance, so the runs, materializations and check evaluations
appear in the UI like any other. A domain with its own virtualenv (workspace.yaml's
`executable_path`) runs in its own interpreter, in its turn (run/delegated.py).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import dagster as dg

from mesh_core.declare.lifecycle import Lifecycle, Status
from mesh_core.declare.ref import ProductRef
from mesh_core.declare.tags import domain_tags
from mesh_core.governance.workspace import Location, MeshWorkspace
from mesh_core.instance.home import fail_dead_runs, run_tags
from mesh_core.run.delegated import DelegatedRun, delegated_entries, run_delegated
from mesh_core.run.failure import failure_text
from mesh_core.run.notify import notify_headless_run
from mesh_core.storage.domain_storage import resolve_data_dir


@dataclass(frozen=True)
class CheckSummary:
    name: str
    passed: bool
    severity: str  # "ERROR" or "WARN"
    description: str


@dataclass(frozen=True)
class ProductResult:
    ref: ProductRef
    status: str  # published | blocked | failed | skipped
    rows: int | None
    checks: tuple[CheckSummary, ...]
    message: str = ""  # why it was not published; for a published product, what needs attention

    @property
    def ok(self) -> bool:
        return self.status == "published"


@dataclass(frozen=True)
class DomainResult:
    domain: str
    run_id: str
    seconds: float
    products: tuple[ProductResult, ...]
    error: str = ""  # the domain did not run at all (its own interpreter could not run it)

    @property
    def ok(self) -> bool:
        return not self.error and all(p.ok for p in self.products)


@dataclass
class MeshRunSummary:
    domains: list[DomainResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def products(self) -> list[ProductResult]:
        return [p for d in self.domains for p in d.products]

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self.domains)

    def counts(self) -> dict[str, int]:
        checks = [c for p in self.products for c in p.checks]
        return {
            "domains": len(self.domains),
            "domains_not_run": sum(bool(d.error) for d in self.domains),
            "products": len(self.products),
            **{status: sum(p.status == status for p in self.products) for status in ("published", "blocked", "failed", "skipped")},
            "checks_passed": sum(c.passed for c in checks),
            "checks_warned": sum(not c.passed and c.severity == "WARN" for c in checks),
            "checks_failed": sum(not c.passed and c.severity == "ERROR" for c in checks),
        }


def materialize_mesh(
    workspace: MeshWorkspace,
    instance: dg.DagsterInstance,
    *,
    domains: Sequence[str] | None = None,
    on_domain_start: Callable[[Location, int, int], None] = lambda loc, i, n: None,
    on_domain_done: Callable[[DomainResult], None] = lambda result: None,
    log_level: str = "WARNING",
    registry: str | None = None,
) -> MeshRunSummary:
    """Run every domain (or the named ones) once, upstream domains first; a domain with its own
    interpreter (`executable_path`) is run by that interpreter, in the same instance, with the contract
    registry at URI `registry` (if any) as this run's."""
    fail_dead_runs(instance)  # runs of killed `mesh materialize` processes must not stay STARTED
    delegated = delegated_entries(workspace.path)
    order = _domain_order(workspace, delegated)
    if domains:
        known = {loc.name for loc in order}
        wanted = {name if name in known else workspace.location(name).name for name in domains}  # unknown: did-you-mean
        order = [loc for loc in order if loc.name in wanted]
    summary = MeshRunSummary()
    started = time.perf_counter()
    for index, location in enumerate(order, start=1):
        on_domain_start(location, index, len(order))
        if location.name in delegated:
            result = _delegated_result(location, run_delegated(
                delegated[location.name], dagster_home=instance.root_directory or os.environ["DAGSTER_HOME"],
                data_dir=str(resolve_data_dir()), registry=registry, verbose=log_level in ("INFO", "DEBUG")))
        else:
            result = materialize_domain(location, instance, log_level=log_level)
        summary.domains.append(result)
        on_domain_done(result)
    summary.seconds = time.perf_counter() - started
    return summary


def _domain_order(workspace: MeshWorkspace, delegated) -> list:
    """The domains this workspace runs (its code locations, and its entries with their own interpreter),
    each after the domains it reads; domains known from the registry only are ordered, never run."""
    runs = {loc.name for loc in workspace.locations} | set(delegated)
    return [loc for loc in workspace.domain_order(remote=True) if loc.name in runs]


def _delegated_result(location, run: DelegatedRun) -> DomainResult:
    """The domain's outcome as its own interpreter reported it."""
    if run.summary is None:
        return DomainResult(location.name, "", 0.0, (), error=run.error)
    products = tuple(
        ProductResult(ProductRef.parse(p["product"]), p["status"], p["rows"],
                      tuple(CheckSummary(c["name"], c["passed"], c["severity"], c["description"]) for c in p["checks"]),
                      p["message"])
        for p in run.summary["products"])
    return DomainResult(location.name, run.summary["run_id"], run.summary["seconds"], products)


def materialize_domain(location: Location, instance: dg.DagsterInstance, *, log_level: str = "WARNING",
                       products: Sequence[ProductRef] | None = None, notify: bool = True) -> DomainResult:
    """One in-process run of the domain's live products (with `products`, only those of them).
    `notify=False`: no owner hears of a failure (a sandbox run, e.g. `mesh preview`'s)."""
    job = location.defs.resolve_implicit_global_asset_job_def()
    started = time.perf_counter()
    selected = [ref for ref in _live(location) if products is None or ref in products]  # retired ones never run
    live = [ref.asset_key for ref in selected]
    if not live:
        return DomainResult(location.name, "", 0.0, ())
    result = job.execute_in_process(
        instance=instance,
        asset_selection=live,
        raise_on_error=False,
        tags={**domain_tags(location.name), **run_tags()},
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )
    seconds = time.perf_counter() - started
    if not result.success and notify:  # no sensor sees an in-process run: tell the owners as the daemon would
        try:
            notify_headless_run(location.defs, location.name, instance, result.run_id)
        except Exception as exc:
            logging.getLogger("mesh").warning("Could not notify the owners of %s's failed run %s: %s",
                                              location.name, result.run_id, exc)
    return DomainResult(location.name, result.run_id, seconds, tuple(_product_results(location, result.all_events, selected)))


def _product_results(location: Location, events, selected: Sequence[ProductRef] | None = None) -> list[ProductResult]:
    rows: dict[ProductRef, int | None] = {}
    checks: dict[ProductRef, list[CheckSummary]] = {}
    failures: dict[str, str] = {}
    notes: dict[ProductRef, str] = {}
    for event in events:
        data = event.event_specific_data
        if event.event_type_value == "ASSET_MATERIALIZATION":
            meta = event.step_materialization_data.materialization.metadata
            ref = ProductRef.from_asset_key(event.asset_key)
            rows[ref] = meta["dagster/row_count"].value if "dagster/row_count" in meta else None
            if "mesh/warnings" in meta:  # published, but something after the commit needs attention
                notes[ref] = meta["mesh/warnings"].value
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            checks.setdefault(ProductRef.from_asset_key(data.asset_key), []).append(
                CheckSummary(data.check_name, data.passed, data.severity.value, data.description or "")
            )
        elif event.event_type_value == "STEP_FAILURE":
            failures[event.step_key] = failure_text(data.error)
    results = []
    for ref in (_live(location) if selected is None else selected):
        step = "__".join(ref.asset_key.path)
        product_checks = tuple(checks.get(ref, ()))
        if ref in rows:
            results.append(ProductResult(ref, "published", rows[ref], product_checks, notes.get(ref, "")))
        elif step in failures:
            blocked = any(not c.passed and c.severity == "ERROR" for c in product_checks)
            results.append(ProductResult(ref, "blocked" if blocked else "failed", None, product_checks, failures[step]))
        else:
            results.append(ProductResult(ref, "skipped", None, product_checks, "an upstream product in this run was not published"))
    return results


def _live(location: Location) -> list[ProductRef]:
    return [ref for ref, spec in location.products.items() if Lifecycle.from_metadata(spec.metadata).status is not Status.RETIRED]

