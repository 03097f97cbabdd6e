"""Tell a product's owners when it was not published: a run-failure sensor and pluggable notifiers.

Each domain's code location has a `<domain>_failures` sensor (running by default, ticked by the
daemon). When one of the domain's runs fails, it finds each product whose step failed, says
whether its publish was blocked by a failed check or failed outright, and hands a `Notification`
to the domain's notifier. The default appends one JSON line per notification to
`$DAGSTER_HOME/mesh/notifications.jsonl` and logs it; subclass `Notifier` to send it elsewhere
(see the README for Slack and email).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import dagster as dg

from mesh_core.declare.product import DataProduct
from mesh_core.errors import PublishBlockedError, plain_message
from mesh_core.run.failure import error_chain, error_names, failure_text

FAILURE_SENSOR_INTERVAL_ENV = "MESH_FAILURE_SENSOR_INTERVAL_SECONDS"


@dataclass(frozen=True)
class Notification:
    product: str  # domain.product
    owners: tuple[str, ...]
    outcome: str  # "blocked": an error-severity check failed; "failed": the run broke before publishing
    run_id: str
    message: str
    at: str  # ISO 8601, UTC

    def as_dict(self) -> dict:
        return {**asdict(self), "owners": list(self.owners)}


class Notifier:
    """Where notifications go. Subclass and override `notify`. If it raises, the notification is
    kept in $DAGSTER_HOME/mesh/undelivered.jsonl and logged as an error: Dagster does not retry
    a run-failure sensor, so nothing else would keep it."""

    def notify(self, notification: Notification, log) -> None:
        raise NotImplementedError


class JsonLinesNotifier(Notifier):
    """Appends each notification as one JSON line (default: $DAGSTER_HOME/mesh/notifications.jsonl) and logs it."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = path

    def target(self) -> Path:
        if self.path is not None:
            return Path(self.path)
        return Path(os.environ.get("DAGSTER_HOME", ".")) / "mesh" / "notifications.jsonl"

    def notify(self, notification: Notification, log) -> None:
        log.warning(f"{notification.product} was {notification.outcome} in run {notification.run_id}; "
                    f"owners {', '.join(notification.owners)}: {notification.message}")
        _append(self.target(), notification.as_dict())


def _append(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:  # one write per line: appends do not interleave
        handle.write(json.dumps(record) + "\n")


def deliver(notifier: Notifier, notification: Notification, log) -> None:
    """Hand one notification to the notifier; keep it (and say so) if the notifier fails."""
    try:
        notifier.notify(notification, log)
    except Exception as exc:
        record = {**notification.as_dict(), "undelivered_because": plain_message(f"{type(exc).__name__}: {exc}")}
        log.error(f"The notifier {type(notifier).__name__} failed ({exc}); the notification is kept: {json.dumps(record)}")
        try:
            _append(Path(os.environ.get("DAGSTER_HOME", ".")) / "mesh" / "undelivered.jsonl", record)
        except OSError as spool:
            log.error(f"Could not keep the undelivered notification either: {spool}")




def notifications_for_run(instance: dg.DagsterInstance, run: dg.DagsterRun, products: Sequence[DataProduct],
                          step_failures: Sequence, run_failure_message: str | None) -> list[Notification]:
    """One notification per product of `products` that the failed run did not publish: from its
    failed steps, else (a run killed mid-step) from what it planned and never published."""
    by_step = {p.ref.asset_key.to_python_identifier(): p for p in products}
    by_key = {p.ref.asset_key: p for p in products}
    at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    found: dict[str, Notification] = {}
    for event in step_failures:
        product = by_step.get(event.step_key or "")
        if product is None:
            continue
        error = event.event_specific_data.error if event.event_specific_data else None
        classes = {e.cls_name for e in error_chain(error)}
        message = failure_text(error) if error is not None else "the run failed before this product was published"
        found[str(product.ref)] = Notification(str(product.ref), tuple(product.owners),
                                               "blocked" if classes & error_names(PublishBlockedError) else "failed",
                                               run.run_id, message, at)
    if not found:
        planned = {r.event_log_entry.dagster_event.asset_key for r in instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records}
        published = {r.event_log_entry.dagster_event.asset_key for r in instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records}
        for key in sorted(planned - published, key=lambda k: k.to_user_string()):
            if key in by_key:
                product = by_key[key]
                found[str(product.ref)] = Notification(
                    str(product.ref), tuple(product.owners), "failed", run.run_id,
                    plain_message(run_failure_message or "the run stopped before this product was published"), at)
    return list(found.values())


def failure_sensor(domain: str, products: Sequence[DataProduct], notifier: Notifier) -> dg.RunFailureSensorDefinition:
    from mesh_core.declare.cadence import interval_seconds

    @dg.run_failure_sensor(name=f"{domain}_failures", default_status=dg.DefaultSensorStatus.RUNNING,
                           minimum_interval_seconds=interval_seconds(FAILURE_SENSOR_INTERVAL_ENV),
                           description=f"Tells the owners of {domain}'s products when a run did not publish them.")
    def _failures(context: dg.RunFailureSensorContext):
        for notification in notifications_for_run(context.instance, context.dagster_run, products,
                                                  context.get_step_failure_events(), context.failure_event.message):
            deliver(notifier, notification, context.log)

    return _failures


def notify_headless_run(defs: dg.Definitions, domain: str, instance: dg.DagsterInstance, run_id: str) -> None:
    """`mesh materialize` runs in process, where no sensor sees its runs: tell owners the same way."""
    sensor = next((s for s in defs.sensors or () if s.name == f"{domain}_failures"), None)
    run = instance.get_run_by_id(run_id)
    if sensor is None or run is None or run.status != dg.DagsterRunStatus.FAILURE:
        return
    [failure] = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records or [None]
    if failure is None:
        return
    context = dg.RunFailureSensorContext(sensor_name=sensor.name, dagster_run=run, instance=instance,
                                         dagster_event=failure.event_log_entry.dagster_event, logger=_plain_logger())
    sensor(context)


def _plain_logger() -> logging.Logger:
    """Dagster's own sensor logger colours its lines whenever stdout is a terminal, even when
    stderr goes to a file (`mesh materialize 2> run.log`): the owners' notices are logged plain."""
    logger = logging.Logger("mesh.notify", logging.INFO)  # not registered: no propagation to the user's handlers
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s - mesh - %(levelname)s - %(message)s", "%Y-%m-%d %H:%M:%S %z"))
    logger.addHandler(handler)
    return logger

