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
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import dagster as dg

from mesh_core.product import DataProduct

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
    """Where notifications go. Subclass and override `notify`; keep it quick and never raise for
    a delivery problem you can log instead (the sensor retries a tick that raises)."""

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
        path = self.target()
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:  # one write per line: appends do not interleave
            handle.write(json.dumps(notification.as_dict()) + "\n")


def failure_sensor(domain: str, products: Sequence[DataProduct], notifier: Notifier) -> dg.RunFailureSensorDefinition:
    by_step = {p.ref.asset_key.to_python_identifier(): p for p in products}
    interval = int(os.environ.get(FAILURE_SENSOR_INTERVAL_ENV, "30"))

    @dg.run_failure_sensor(name=f"{domain}_failures", default_status=dg.DefaultSensorStatus.RUNNING,
                           minimum_interval_seconds=interval,
                           description=f"Tells the owners of {domain}'s products when a run did not publish them.")
    def _failures(context: dg.RunFailureSensorContext):
        for event in context.get_step_failure_events():
            product = by_step.get(event.step_key or "")
            if product is None:
                continue
            error = event.event_specific_data.error if event.event_specific_data else None
            classes, message = _error_chain(error)
            notifier.notify(Notification(
                product=str(product.ref), owners=tuple(product.owners),
                outcome="blocked" if "PublishBlockedError" in classes else "failed",
                run_id=context.dagster_run.run_id, message=message,
                at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            ), context.log)

    return _failures


def _error_chain(error) -> tuple[set[str], str]:
    """The class names along an error's causes, and the innermost message (the user's error)."""
    classes, message = set(), ""
    while error is not None:
        classes.add(error.cls_name or "")
        text = (error.message or "").strip()
        head, _, rest = text.partition(": ")
        if error.cls_name and head.split(".")[-1] == error.cls_name:  # "module.Class: message"
            text = rest
        message = text or message
        error = error.cause
    return classes, message or "the run failed before this product was published"
