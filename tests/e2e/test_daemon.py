"""The real `dagster-daemon` operating a two-domain mesh (tests/fixtures/workspaces/feed_digest.yaml), in engines:
feed.events (Polars) runs on a one-minute cadence, digest.summary (SQL, another code location) by automation."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy.exc import OperationalError

from tests.support import FIXTURES, REPO, WORKSPACES, make_dagster_home, mesh_env

EVENTS, SUMMARY = dg.AssetKey(["feed", "events"]), dg.AssetKey(["digest", "summary"])


def wait_for(what, probe, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = probe()
        except OperationalError:  # sqlite: the daemon's processes hold the write lock for a moment
            found = None
        if found:
            return found
        time.sleep(2)
    pytest.fail(f"waited {timeout} s for {what}")


def read(probe):
    return wait_for("the instance database", lambda: [probe()], 30)[0]


@pytest.fixture
def daemon(tmp_path):
    yield from run_daemon(tmp_path, FIXTURES)


def run_daemon(tmp_path, fixtures):
    """The real daemon over feed_digest.yaml, run from `fixtures`; yields (instance, home, tmp_path)."""
    home = make_dagster_home(tmp_path)
    env = {**mesh_env(home), "PYTHONPATH": str(REPO), "MESH_TEST_BAD_FEED": str(tmp_path / "bad-feed"),
           "MESH_AUTOMATION_INTERVAL_SECONDS": "5", "MESH_FAILURE_SENSOR_INTERVAL_SECONDS": "5",
           "FRESHNESS_DAEMON_INTERVAL_SECONDS": "5"}
    log = open(tmp_path / "daemon.log", "w")
    instance = dg.DagsterInstance.from_config(str(home))  # its databases exist before the daemon opens them
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(WORKSPACES / "feed_digest.yaml")],
        cwd=fixtures, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield instance, home, tmp_path
    finally:
        instance.dispose()
        os.killpg(process.pid, signal.SIGTERM)  # the daemon and the code servers it started
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def runs(instance, **tags):
    return [run for run in instance.get_runs(filters=dg.RunsFilter(tags=tags))]


def test_the_daemon_runs_the_cadence_then_automation_across_locations_and_tells_owners_of_a_blocked_publish(daemon):
    instance, home, folder = daemon
    try:
        scheduled = wait_for("feed_cadence to publish feed.events", lambda: [
            r for r in runs(instance, **{"dagster/schedule_name": "feed_cadence"}) if r.status == dg.DagsterRunStatus.SUCCESS], 150)
        assert read(lambda: instance.get_latest_materialization_event(EVENTS)).run_id in {r.run_id for r in scheduled}

        automated = wait_for("digest_automation to materialize digest.summary", lambda: [
            r for r in runs(instance, **{"dagster/sensor_name": "digest_automation"}) if r.status == dg.DagsterRunStatus.SUCCESS], 120)
        summary = read(lambda: instance.get_latest_materialization_event(SUMMARY))
        assert summary.run_id in {r.run_id for r in automated}
        assert summary.timestamp >= read(lambda: instance.get_latest_materialization_event(EVENTS)).timestamp

        def fresh():
            states = {key: record.freshness_state.value for key, record in
                      instance.get_freshness_state_records([EVENTS, SUMMARY]).items()}
            return states if states == {EVENTS: "PASS", SUMMARY: "PASS"} else None
        wait_for("the freshness daemon to record both products fresh", fresh, 60)

        (folder / "bad-feed").touch()  # the next tick's output breaks feed.events' contract
        published = read(lambda: instance.get_latest_materialization_event(EVENTS)).run_id
        notifications = home / "mesh" / "notifications.jsonl"
        wait_for("the failure sensor to tell feed's owners", lambda: notifications.exists() and notifications.read_text(), 150)
        [notice] = [json.loads(line) for line in notifications.read_text().splitlines()][:1]
        assert notice["product"] == "feed.events" and notice["owners"] == ["team:feed"] and notice["outcome"] == "blocked"
        assert notice["message"].startswith("feed.events was not published: 1 error-severity check(s) failed (contract).")
        blocked_run = read(lambda: instance.get_run_by_id(notice["run_id"]))
        assert blocked_run.status == dg.DagsterRunStatus.FAILURE and blocked_run.tags["dagster/schedule_name"] == "feed_cadence"
        assert read(lambda: instance.get_latest_materialization_event(EVENTS)).run_id == published  # the good version stands

        time.sleep(20)  # four automation ticks after the blocked publish
        after = [r for r in read(lambda: runs(instance, **{"dagster/sensor_name": "digest_automation"}))
                 if r.run_id not in {a.run_id for a in automated}]
        assert after == [], "a blocked upstream publish must not trigger its consumer"
    except BaseException:
        print((folder / "daemon.log").read_text()[-6000:])
        raise


def test_a_scheduled_run_refuses_to_publish_a_breaking_change_and_tells_the_owners(tmp_path):
    """The breaking-change gate on the daemon's path: feed.events' count retyped int -> float against its
    committed snapshot; the cadence's run fails with the gate's message, nothing is published, and the
    failure sensor tells feed's owners."""
    fixtures = tmp_path / "fixtures"
    shutil.copytree(FIXTURES / "fixture_domains", fixtures / "fixture_domains", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(WORKSPACES, fixtures / "workspaces")
    feed = fixtures / "fixture_domains" / "feed.py"
    text = feed.read_text()
    assert "count: Series[int]" in text, "the fixture this test edits"
    feed.write_text(text.replace("count: Series[int]", "count: Series[float]"))
    runner = run_daemon(tmp_path / "daemon", fixtures)
    instance, home, folder = next(runner)
    try:
        [failed] = wait_for("feed_cadence's run to fail", lambda: [
            r for r in runs(instance, **{"dagster/schedule_name": "feed_cadence"}) if r.status == dg.DagsterRunStatus.FAILURE][:1], 150)
        notifications = home / "mesh" / "notifications.jsonl"
        wait_for("the failure sensor to tell feed's owners", lambda: notifications.exists() and notifications.read_text(), 120)
        notice = json.loads(notifications.read_text().splitlines()[0])
        assert notice["run_id"] == failed.run_id and notice["owners"] == ["team:feed"] and notice["outcome"] == "blocked"
        assert notice["message"].startswith("feed.events was not published: breaking change(s) to major 0 without a "
                                            "major version bump: column 'count' changed type int64 -> float64."), notice["message"]
        assert read(lambda: instance.get_latest_materialization_event(EVENTS)) is None
    except BaseException:
        print((folder / "daemon.log").read_text()[-6000:])
        raise
    finally:
        runner.close()
