from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from mesh_core import SLO, DefinitionError, data_product
from mesh_core.run.scorecard import freshness_state
from fixture_domains._contract import SUITE, ItemsContract, items

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_age_hours": 6, "due_by": "07:00"}, "give max_age_hours or due_by, not both"),
    ({"max_age_hours": 0}, "from 1 minute to"),
    ({"due_by": "7am"}, "must be a 24-hour time 'HH:MM'"),
    ({"due_by": "07:00", "timezone": "Paris"}, "is not an IANA time zone"),
    ({"pass_rate": 1.5}, "must be a share above 0 and at most 1"),
    ({"window_days": 0}, "whole number of days from 1"),
])
def test_an_invalid_objective_says_what_to_write(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SLO(**kwargs)


def test_a_product_that_is_not_given_an_slo_is_refused_at_declaration():
    with pytest.raises(DefinitionError, match=r"\[slo-valid\] shop\.items: slo='6h' is not an SLO"):
        data_product(domain="shop", name="items", description="One row per item.", owners=["team:shop"],
                     contract=ItemsContract, suite=SUITE, slo="6h")(items)


def test_objectives_become_dagster_freshness_policies():
    window = SLO(max_age_hours=6).freshness_policy()
    assert isinstance(window, dg.FreshnessPolicy)
    assert window.fail_window.to_timedelta() == timedelta(hours=6) and window.warn_window.to_timedelta() == timedelta(hours=4.5)
    daily = SLO(due_by="07:30", timezone="Europe/Paris").freshness_policy()
    assert (daily.deadline_cron, daily.timezone, daily.lower_bound_delta) == ("30 7 * * *", "Europe/Paris", timedelta(hours=24))
    assert SLO().freshness_policy() is None
    for slo in (SLO(max_age_hours=6), SLO(due_by="07:30", timezone="Europe/Paris", pass_rate=0.95, window_days=7)):
        assert SLO.from_metadata(slo.metadata()) == slo


@pytest.mark.parametrize("published_hours_ago, expected", [(1, "PASS"), (4.5, "WARN"), (5.9, "WARN"), (6, "FAIL"), (48, "FAIL")])
def test_max_age_freshness_steps_with_the_clock(published_hours_ago, expected):
    assert freshness_state(SLO(max_age_hours=6), NOON - timedelta(hours=published_hours_ago), NOON) == expected


def test_a_daily_deadline_is_met_by_a_publish_in_the_day_before_it():
    slo = SLO(due_by="07:00", timezone="America/New_York")  # 12:00 UTC on Nov 25 is 07:00 New York
    yesterday_evening = datetime(2026, 11, 24, 23, 0, tzinfo=timezone.utc)
    assert freshness_state(slo, yesterday_evening, NOON + timedelta(minutes=1)) == "PASS"
    assert freshness_state(slo, yesterday_evening - timedelta(days=1), NOON + timedelta(minutes=1)) == "FAIL"
    assert freshness_state(slo, None, NOON) == "UNKNOWN"
    assert freshness_state(SLO(), NOON, NOON) == "NOT_APPLICABLE"


@pytest.mark.parametrize("kwargs, message", [
    ({"max_age_hours": float("inf")}, "from 1 minute to 3660 days"),
    ({"max_age_hours": float("nan")}, "from 1 minute to 3660 days"),
    ({"window_days": 10**6}, "from 1 to 3660"),
    ({"due_by": "07:00", "timezone": __import__("zoneinfo").ZoneInfo("Europe/Paris")}, "is not an IANA time zone"),
])
def test_objectives_out_of_range_are_refused_before_dagster_sees_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SLO(**kwargs)


def test_a_cadence_and_sensor_intervals_are_checked(monkeypatch):
    from mesh_core import Cadence
    from mesh_core.declare.cadence import interval_seconds

    for cron in (" 0 6 * * *", "0 6 * * *\n", "0 6 * * * *"):
        with pytest.raises(ValueError, match="is not a cron expression"):
            Cadence(cron)
    for value in ("abc", "2.5", "0", "-5"):
        monkeypatch.setenv("MESH_AUTOMATION_INTERVAL_SECONDS", value)
        with pytest.raises(DefinitionError, match=r"\[sensor-interval-valid\] \*: MESH_AUTOMATION_INTERVAL_SECONDS="):
            interval_seconds("MESH_AUTOMATION_INTERVAL_SECONDS")
    monkeypatch.setenv("MESH_AUTOMATION_INTERVAL_SECONDS", "")
    assert interval_seconds("MESH_AUTOMATION_INTERVAL_SECONDS") == 30
