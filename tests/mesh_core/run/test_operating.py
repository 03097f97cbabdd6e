"""Cadence, automation, objectives and notifications of one domain, on a real instance."""

import json
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from mesh_core import (
    SLO,
    Cadence,
    DefinitionError,
    JsonLinesNotifier,
    Notifier,
    ProductRef,
    data_product,
    domain_definitions,
)
from mesh_core.governance.workspace import Location
from mesh_core.run.scorecard import score_product
from fixture_domains._contract import SUITE, ItemsContract, items

BAD = {"now": False}  # while True, shop.items breaks its contract (a negative id) and is blocked
ITEMS, LABELS = dg.AssetKey(["shop", "items"]), dg.AssetKey(["shop", "labels"])
SHOP_ITEMS = ProductRef("shop", "items")


@data_product(domain="shop", name="items", description="One row per item.", owners=["team:shop"],
              contract=ItemsContract, suite=SUITE, slo=SLO(max_age_hours=1, pass_rate=0.7, window_days=7))
def shop_items():
    frame = items()
    return frame.assign(item_id=-frame["item_id"]) if BAD["now"] else frame


@data_product(domain="shop", name="labels", description="One row per item.", owners=["team:shop"],
              contract=ItemsContract, suite=SUITE, inputs={"items": "shop.items"})
def labels(items):
    return items


@pytest.fixture
def shop():
    BAD["now"] = False
    yield domain_definitions("shop", [shop_items, labels], cadence=Cadence("0 6 * * *", timezone="Europe/Paris"))
    BAD["now"] = False


def run(defs, instance, *keys):
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, asset_selection=list(keys), raise_on_error=False)


def test_the_cadence_schedules_the_source_aligned_products_only(shop):
    schedule = shop.resolve_schedule_def("shop_cadence")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 6 * * *", "Europe/Paris")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert shop.resolve_job_def(schedule.job_name).asset_layer.executable_asset_keys == {ITEMS}
    with pytest.raises(DefinitionError, match=r"\[cadence-valid\] shop: Invalid cadence: cron='every day'"):
        domain_definitions("shop", [shop_items], cadence="every day")


def test_a_consumer_is_requested_after_its_upstream_published_and_never_after_a_blocked_publish(shop, instance):
    assert shop.resolve_assets_def(LABELS).automation_conditions_by_key[LABELS] is not None
    assert shop.resolve_assets_def(ITEMS).automation_conditions_by_key.get(ITEMS) is None  # the cadence runs it
    first = dg.evaluate_automation_conditions(defs=shop, instance=instance)
    assert first.total_requested == 0  # nothing to read yet
    assert run(shop, instance, ITEMS).success
    after_publish = dg.evaluate_automation_conditions(defs=shop, instance=instance, cursor=first.cursor)
    assert after_publish.total_requested == 1 and after_publish.get_requested_partitions(LABELS) == {None}
    assert run(shop, instance, LABELS).success
    settled = dg.evaluate_automation_conditions(defs=shop, instance=instance, cursor=after_publish.cursor)
    assert settled.total_requested == 0
    BAD["now"] = True
    assert not run(shop, instance, ITEMS).success  # blocked: nothing published
    after_block = dg.evaluate_automation_conditions(defs=shop, instance=instance, cursor=settled.cursor)
    assert after_block.total_requested == 0


def test_the_scorecard_counts_runs_checks_and_budget_from_the_event_log(shop, instance):
    for bad in (False, False, False, True):
        BAD["now"] = bad
        run(shop, instance, ITEMS)
    checks = shop.resolve_assets_def(ITEMS).check_keys
    slo = SLO(max_age_hours=1, pass_rate=0.7, window_days=7)
    score = score_product(instance, SHOP_ITEMS, slo, check_keys=checks)
    assert (score.attempts, score.published, score.publish_rate) == (4, 3, 0.75)
    assert score.checks_run == 8 and score.checks_passed == 7  # contract + one expectation per run; the contract failed once
    assert score.error_budget_left == pytest.approx((0.3 * 4 - 1) / (0.3 * 4))
    assert (score.state, score.freshness, score.rows) == ("at risk", "PASS", (3, 3, 3))
    last = datetime.fromisoformat(score.last_publish)
    stale = score_product(instance, SHOP_ITEMS, slo, check_keys=checks, now=last + timedelta(hours=1, seconds=1))
    assert stale.state == "breached" and stale.freshness == "FAIL" and stale.reasons[0].startswith("stale")
    strict = score_product(instance, SHOP_ITEMS, SLO(pass_rate=0.99), check_keys=checks)
    assert strict.state == "breached" and strict.error_budget_left < 0
    assert strict.reasons == ("1 of 4 run(s) in 30 days did not publish (objective 99.0%)",)
    gone = score_product(instance, SHOP_ITEMS, slo, now=datetime.now(timezone.utc) + timedelta(days=8))
    assert (gone.attempts, gone.freshness, gone.state) == (0, "FAIL", "breached")  # the window holds no run


def test_each_publish_records_its_objectives_as_numbers_dagster_plots(shop, instance):
    run(shop, instance, ITEMS)
    run(shop, instance, ITEMS)
    metadata = instance.get_latest_materialization_event(ITEMS).asset_materialization.metadata
    assert metadata["mesh/slo_publish_rate"].value == 1.0 and metadata["mesh/slo_error_budget_left"].value == 1.0
    assert metadata["mesh/slo_check_pass_rate"].value == 1.0  # both runs' checks, this one's included


def test_the_default_notifier_appends_one_json_line_per_notification(tmp_path, instance):
    from mesh_core import Notification

    notifier = JsonLinesNotifier(tmp_path / "out" / "notes.jsonl")
    note = Notification("shop.items", ("team:shop",), "blocked", "run1", "contract failed", "2026-11-25T12:00:00+00:00")
    notifier.notify(note, dg.get_dagster_logger())
    notifier.notify(note, dg.get_dagster_logger())
    lines = (tmp_path / "out" / "notes.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"owners": ["team:shop"]' in lines[0]


def test_a_headless_run_that_does_not_publish_notifies_the_owners(shop, instance, dagster_home):
    from mesh_core.run.materialize import materialize_domain

    BAD["now"] = True
    result = materialize_domain(Location("shop", __name__, shop), instance)
    assert {p.ref.product: p.status for p in result.products}["items"] == "blocked"
    [line] = (dagster_home / "mesh" / "notifications.jsonl").read_text().splitlines()
    notice = json.loads(line)
    assert (notice["product"], notice["owners"], notice["outcome"], notice["run_id"]) == (
        "shop.items", ["team:shop"], "blocked", result.run_id)


class Broken(Notifier):
    def notify(self, notification, log):
        raise ConnectionError("slack is down")


def test_a_notifier_that_fails_keeps_the_notification(instance, dagster_home):
    from mesh_core.run.materialize import materialize_domain

    BAD["now"] = True
    defs = domain_definitions("shop", [shop_items], notifier=Broken())
    result = materialize_domain(Location("shop", __name__, defs), instance)
    [line] = (dagster_home / "mesh" / "undelivered.jsonl").read_text().splitlines()
    kept = json.loads(line)
    assert kept["product"] == "shop.items" and kept["run_id"] == result.run_id
    assert kept["undelivered_because"] == "ConnectionError: slack is down"


def test_a_run_killed_before_its_steps_failed_notifies_what_it_did_not_publish(shop, instance):
    from mesh_core.run.notify import notifications_for_run

    assert run(shop, instance, ITEMS).success
    planned_only = run(shop, instance, ITEMS, LABELS)  # both planned and published: nothing to say
    assert notifications_for_run(instance, instance.get_run_by_id(planned_only.run_id), [shop_items, labels], [], None) == []
    BAD["now"] = True
    blocked = run(shop, instance, ITEMS, LABELS)
    notices = notifications_for_run(instance, instance.get_run_by_id(blocked.run_id), [shop_items, labels], [], "killed")
    # No step failure events given (as for a worker killed by SIGKILL): what was planned and not published.
    assert [(n.product, n.outcome, n.message) for n in notices] == [("shop.items", "failed", "killed"),
                                                                     ("shop.labels", "failed", "killed")]
