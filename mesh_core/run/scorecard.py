"""`mesh status`: each product against its objectives, read from the Dagster instance's event log.

Per product, over the SLO's window: freshness now (the rules of Dagster's own freshness
evaluators, so it agrees with the UI), the last publish, the runs that tried to publish it and
how many did (the quality objective: a run publishes only when its error-severity checks pass),
the check pass rate, the row-count trend, and what is left of the error budget. The state is
`breached` (stale, or below the objective), `at risk` (freshness warning, or under a quarter of
the budget left), `met`, or `no data`. Beside the scores, its readers over the same window
(mesh_core.run.readers); reads over Delta Sharing are observations, never counted as publishes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Iterable, Sequence

import dagster as dg
from dagster._utils.schedules import get_latest_completed_cron_tick

from mesh_core.declare.ref import ProductRef
from mesh_core.declare.slo import SLO, WARN_SHARE
from mesh_core.run.readers import consumers, product_readers

_PAGE = 1000
AT_RISK_BUDGET = 0.25
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@dataclass(frozen=True)
class ProductScore:
    product: str
    owners: tuple[str, ...]
    objective: str
    state: str  # met | at risk | breached | no data
    freshness: str  # PASS | WARN | FAIL | UNKNOWN (never published) | NOT_APPLICABLE (no freshness objective)
    last_publish: str | None  # ISO 8601, UTC
    age_hours: float | None
    attempts: int  # finished runs in the window that planned to publish it
    published: int  # of those, the runs that published it
    publish_rate: float | None
    checks_passed: int
    checks_run: int
    error_budget_left: float | None  # share of the allowed failed runs still unused (negative: overspent)
    rows: tuple[int, ...]  # row counts of the latest publishes, oldest first
    reasons: tuple[str, ...]
    readers: tuple[str, ...] = ()  # products that read it (lineage), then recipients who read it in the window
    reads: int = 0  # Delta Sharing queries in the window
    reads_by: tuple[tuple[str, int], ...] = ()  # (recipient, queries in the window)

    @property
    def check_pass_rate(self) -> float | None:
        return self.checks_passed / self.checks_run if self.checks_run else None

    def as_dict(self) -> dict:
        values = {**asdict(self), "owners": list(self.owners), "rows": list(self.rows), "reasons": list(self.reasons),
                  "check_pass_rate": self.check_pass_rate, "readers": list(self.readers), "reads_by": dict(self.reads_by)}
        return {key: round(value, 4) if isinstance(value, float) else value for key, value in values.items()}


def freshness_state(slo: SLO, last: datetime | None, now: datetime) -> str:
    """The state Dagster's evaluator would record for this objective (see mesh_core.declare.slo)."""
    if slo.max_age_hours is None and slo.due_by is None:
        return "NOT_APPLICABLE"
    if last is None:
        return "UNKNOWN"
    if slo.max_age_hours is not None:
        age = now - last
        fail = timedelta(hours=slo.max_age_hours)
        return "FAIL" if age >= fail else "WARN" if age >= fail * WARN_SHARE else "PASS"
    policy = slo.freshness_policy()
    tick = get_latest_completed_cron_tick(policy.deadline_cron, now.astimezone(timezone.utc), policy.timezone)
    return "PASS" if last >= tick - policy.lower_bound_delta else "FAIL"


def score_product(instance: dg.DagsterInstance, ref: ProductRef, slo: SLO, *, owners: Sequence[str] = (),
                  check_keys: Iterable[dg.AssetCheckKey] = (), now: datetime | None = None,
                  publishing_run: str | None = None, publishing_checks: Sequence[bool] = ()) -> ProductScore:
    """Score one product. `publishing_run`: a run publishing it right now, counted as published;
    `publishing_checks`: whether each of that run's checks passed (Dagster records them only after
    the publish, so without them a first publish would have no check pass rate)."""
    now = now or datetime.now(timezone.utc)
    since = (now - timedelta(days=slo.window_days)).timestamp()
    key = ref.asset_key
    materializations = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, after_timestamp=since), limit=_PAGE, ascending=False).records
    if publishing_run is not None:  # publishing now: no need to ask when it last did
        last = now
    else:
        latest = materializations[:1] or instance.fetch_materializations(key, limit=1, ascending=False).records
        last = datetime.fromtimestamp(latest[0].timestamp, timezone.utc) if latest else None
    planned = {r.run_id for r in instance.fetch_planned_materializations(
        dg.AssetRecordsFilter(asset_key=key, after_timestamp=since), limit=_PAGE, ascending=False).records}
    finished = {run.run_id for run in instance.get_runs(filters=dg.RunsFilter(run_ids=sorted(planned)))
                if run.status in FINISHED} if planned else set()
    published_runs = {r.run_id for r in materializations}
    if publishing_run is not None:
        finished.add(publishing_run)
        published_runs.add(publishing_run)
    attempts, published = len(finished), len(finished & published_runs)
    passed, run = sum(publishing_checks), len(publishing_checks)
    for check_key in check_keys:
        for record in instance.event_log_storage.get_asset_check_execution_history(check_key, limit=_PAGE):
            if (record.create_timestamp < since or record.status.value not in ("SUCCEEDED", "FAILED")
                    or record.run_id == publishing_run):  # counted from publishing_checks
                continue
            run += 1
            passed += record.status.value == "SUCCEEDED"
    rows = tuple(int(r.asset_materialization.metadata["dagster/row_count"].value)
                 for r in reversed(materializations[:5]) if "dagster/row_count" in r.asset_materialization.metadata)
    fresh = freshness_state(slo, last, now)
    rate = published / attempts if attempts else None
    allowed = (1 - slo.pass_rate) * attempts
    failed = attempts - published
    budget = None if not attempts else (1.0 if failed == 0 else (allowed - failed) / allowed if allowed else -float(failed))
    reasons = []
    if fresh == "FAIL":
        reasons.append(f"stale: {slo.describe().split(';')[0]} is not met")
    if rate is not None and rate < slo.pass_rate:
        reasons.append(f"{failed} of {attempts} run(s) in {slo.window_days} days did not publish "
                       f"(objective {slo.pass_rate:.1%})")
    if reasons:
        state = "breached"
    elif last is None:
        state = "no data"
    elif fresh == "WARN" or (budget is not None and budget < AT_RISK_BUDGET):
        state = "at risk"
        reasons.append("freshness warning" if fresh == "WARN" else f"{max(budget, 0):.0%} of the error budget left")
    else:
        state = "met"
    return ProductScore(
        product=str(ref), owners=tuple(owners), objective=slo.describe(), state=state, freshness=fresh,
        last_publish=last.isoformat(timespec="seconds") if last else None,
        age_hours=round((now - last).total_seconds() / 3600, 2) if last else None,
        attempts=attempts, published=published, publish_rate=rate, checks_passed=passed, checks_run=run,
        error_budget_left=budget, rows=rows, reasons=tuple(reasons),
    )


def score_metadata(score: ProductScore) -> dict:
    """Numbers recorded on each materialization, so Dagster plots them over time."""
    values = {"mesh/slo_publish_rate": score.publish_rate, "mesh/slo_check_pass_rate": score.check_pass_rate,
              "mesh/slo_error_budget_left": score.error_budget_left}
    return {key: float(value) for key, value in values.items() if value is not None}


def score_mesh(workspace, instance: dg.DagsterInstance, *, domains: Sequence[str] | None = None,
               window_days: int | None = None, now: datetime | None = None) -> dict[str, list[ProductScore]]:
    """Scores of every product, by domain, in the workspace's dependency order, with its readers
    (products that read it, and Delta Sharing recipients over the same window)."""
    scores: dict[str, list[ProductScore]] = {}
    lineage = consumers(workspace)
    for location in workspace.all_locations:  # a domain whose code is not here: from what it published
        if domains and location.name not in domains:
            continue
        for ref, spec in location.products.items():
            slo = SLO.from_metadata(spec.metadata)
            if window_days is not None:
                slo = SLO(slo.max_age_hours, slo.due_by, slo.timezone, slo.pass_rate, window_days)
            checks = location.defs.resolve_assets_def(ref.asset_key).check_keys if location.defs is not None else ()
            score = score_product(instance, ref, slo, owners=spec.owners, check_keys=checks, now=now)
            read = product_readers(instance, ref, spec.metadata, window_days=slo.window_days,
                                   lineage=lineage.get(ref, ()), now=now)
            names = tuple(dict.fromkeys(r.name for r in read.readers))
            scores.setdefault(location.name, []).append(
                replace(score, readers=names, reads=read.reads, reads_by=tuple(sorted(read.reads_by.items()))))
    return scores


def domain_state(scores: Sequence[ProductScore]) -> str:
    for state in ("breached", "at risk", "no data"):
        if any(score.state == state for score in scores):
            return state
    return "met"
