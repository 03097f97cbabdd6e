"""When a domain's products run: its cadence for source-aligned products, automation for the rest.

`domain_definitions(..., cadence=Cadence("0 6 * * *", timezone="Europe/Paris"))` schedules the
domain's products that read no other product. Every product that reads one is materialized by
Dagster's declarative automation (`AutomationCondition.eager()`) once what it reads was
published, across code locations; an upstream whose publish was blocked publishes nothing,
so it triggers nothing, and the automation's evaluation in the UI says why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import dagster as dg
from dagster._utils.schedules import is_valid_cron_string

from mesh_core.declare.product import DataProduct
from mesh_core.declare.slo import timezone_problems
from mesh_core.declare.tags import domain_tags
from mesh_core.errors import DefinitionError, Violation

# How often each domain's automation sensor evaluates; the daemon's own default is 30 s.
AUTOMATION_INTERVAL_ENV = "MESH_AUTOMATION_INTERVAL_SECONDS"


@dataclass(frozen=True)
class Cadence:
    """A cron schedule and its time zone: `Cadence("0 6 * * *", timezone="Europe/Paris")`."""

    cron: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.cron, str) or self.cron != self.cron.strip() or not is_valid_cron_string(self.cron):
            problems.append(f"cron={self.cron!r} is not a cron expression such as '0 6 * * *' (06:00 daily)")
        problems += timezone_problems(self.timezone)
        if problems:
            raise ValueError("Invalid cadence: " + "; ".join(problems) + ".")

    @classmethod
    def parse(cls, value: "Cadence | str") -> "Cadence":
        return value if isinstance(value, Cadence) else cls(value)


def interval_seconds(variable: str, default: int = 30) -> int:
    """A sensor interval from the environment: whole seconds, at least 1."""
    value = os.environ.get(variable, "").strip() or str(default)
    if not value.isdigit() or int(value) < 1:
        raise DefinitionError([Violation("*", None, "sensor-interval-valid",
                                         f"{variable}={os.environ.get(variable)!r} is not a whole number of seconds.",
                                         f"set {variable} to a number of seconds, at least 1, or unset it ({default}).")])
    return int(value)


def source_aligned(products: Sequence[DataProduct]) -> list[DataProduct]:
    """Products that read no other product: the cadence runs them."""
    return [p for p in products if not p.inputs]


def automation_condition(product: DataProduct) -> dg.AutomationCondition | None:
    """Products that read others run when those were published (and none is still running)."""
    return dg.AutomationCondition.eager() if product.inputs else None


def schedules(domain: str, products: Sequence[DataProduct], cadence: Cadence | None) -> list[dg.ScheduleDefinition]:
    live = [p for p in source_aligned(products) if p.lifecycle.status.value != "retired"]
    if cadence is None or not live:
        return []
    return [dg.ScheduleDefinition(
        name=f"{domain}_cadence", cron_schedule=cadence.cron, execution_timezone=cadence.timezone,
        target=dg.AssetSelection.assets(*(p.ref.asset_key for p in live)),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"The {domain} domain's cadence: its source-aligned products, {cadence.cron} ({cadence.timezone}).",
        tags=domain_tags(domain),
    )]


def automation_sensor(domain: str, products: Sequence[DataProduct]) -> list[dg.AutomationConditionSensorDefinition]:
    automated = [p.ref.asset_key for p in products if automation_condition(p) is not None]
    if not automated:
        return []
    interval = interval_seconds(AUTOMATION_INTERVAL_ENV)
    return [dg.AutomationConditionSensorDefinition(
        f"{domain}_automation", target=dg.AssetSelection.assets(*automated),
        default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=interval,
        run_tags=domain_tags(domain),
        description=f"Materializes {domain}'s products once the products they read were published.",
    )]
