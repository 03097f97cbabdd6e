"""Service level objectives of a data product: how fresh it is, and how often it publishes clean.

    @data_product(..., slo=SLO(max_age_hours=6))                       # published at most 6 h ago
    @data_product(..., slo=SLO(due_by="07:00", timezone="Europe/Paris"))  # published by 07:00 each day

Freshness becomes Dagster's own `FreshnessPolicy`, evaluated by the daemon (`freshness: enabled`
in dagster.yaml), so the UI shows each product fresh, late or failing. The quality objective
(`pass_rate` of runs whose error-severity checks all pass, over `window_days`) is computed from
the instance's event log by `mesh status` and recorded on every materialization.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg

from mesh_core.declare.metadata import meta_value

_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
MAX_DAYS = 3660  # ten years: the longest window or age an objective may name
WARN_SHARE = 0.75  # freshness warns once three quarters of the allowed age has passed


def timezone_problems(zone: object) -> list[str]:
    """[] for an IANA time zone name, else the one problem to report."""
    try:
        if not isinstance(zone, str):
            raise ValueError(zone)
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return [f"timezone={zone!r} is not an IANA time zone such as 'Europe/Paris'"]
    return []


@dataclass(frozen=True)
class SLO:
    """A product's objectives: freshness (`max_age_hours` or `due_by` a local time) and quality."""

    max_age_hours: float | None = None
    due_by: str | None = None  # "HH:MM": a publish is due each day by then, in `timezone`
    timezone: str = "UTC"
    pass_rate: float = 0.99  # share of runs, over the window, whose error-severity checks all pass
    window_days: int = 30

    def __post_init__(self) -> None:
        problems = []
        if self.max_age_hours is not None and self.due_by is not None:
            problems.append("give max_age_hours or due_by, not both")
        if self.max_age_hours is not None and (isinstance(self.max_age_hours, bool)
                                               or not isinstance(self.max_age_hours, (int, float))
                                               or not 1 / 60 <= self.max_age_hours <= MAX_DAYS * 24):
            problems.append(f"max_age_hours={self.max_age_hours!r} must be a number of hours from 1 minute to {MAX_DAYS} days")
        if self.due_by is not None and not (isinstance(self.due_by, str) and _CLOCK.fullmatch(self.due_by)):
            problems.append(f"due_by={self.due_by!r} must be a 24-hour time 'HH:MM', e.g. '07:00'")
        problems += timezone_problems(self.timezone)
        if isinstance(self.pass_rate, bool) or not isinstance(self.pass_rate, (int, float)) or not 0 < self.pass_rate <= 1:
            problems.append(f"pass_rate={self.pass_rate!r} must be a share above 0 and at most 1, e.g. 0.99")
        if isinstance(self.window_days, bool) or not isinstance(self.window_days, int) or not 1 <= self.window_days <= MAX_DAYS:
            problems.append(f"window_days={self.window_days!r} must be a whole number of days from 1 to {MAX_DAYS}")
        if problems:
            raise ValueError("Invalid SLO: " + "; ".join(problems) + ".")

    def freshness_policy(self) -> dg.FreshnessPolicy | None:
        if self.max_age_hours is not None:
            fail = timedelta(hours=self.max_age_hours)
            warn = fail * WARN_SHARE
            return dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=warn if warn >= timedelta(minutes=1) else None)
        if self.due_by is not None:
            hour, minute = self.due_by.split(":")
            return dg.FreshnessPolicy.cron(deadline_cron=f"{int(minute)} {int(hour)} * * *",
                                           lower_bound_delta=timedelta(hours=24), timezone=self.timezone)
        return None

    def describe(self) -> str:
        fresh = (f"published at most {self.max_age_hours:g} h ago" if self.max_age_hours is not None
                 else f"published by {self.due_by} {self.timezone} each day" if self.due_by else "no freshness objective")
        return f"{fresh}; error-severity checks pass on >= {self.pass_rate:.1%} of runs over {self.window_days} days"

    @classmethod
    def from_metadata(cls, metadata) -> "SLO":
        """The SLO a product's asset declares in its metadata (see `metadata`)."""
        due = meta_value(metadata, "mesh/slo_due_by")
        due_by, zone = due.split(" ", 1) if due else (None, "UTC")
        return cls(max_age_hours=meta_value(metadata, "mesh/slo_max_age_hours"), due_by=due_by, timezone=zone,
                   pass_rate=meta_value(metadata, "mesh/slo_pass_rate") or cls.pass_rate,
                   window_days=int(meta_value(metadata, "mesh/slo_window_days") or cls.window_days))

    def metadata(self) -> dict:
        return {"mesh/slo": self.describe(), "mesh/slo_pass_rate": float(self.pass_rate),
                "mesh/slo_window_days": self.window_days,
                **({"mesh/slo_max_age_hours": float(self.max_age_hours)} if self.max_age_hours is not None else {}),
                **({"mesh/slo_due_by": f"{self.due_by} {self.timezone}"} if self.due_by else {})}
