from datetime import datetime, timedelta, timezone

import dagster as dg

from mesh_core.declare.ref import ProductRef
from mesh_core.instance import usage
from mesh_core.instance.usage import READERS_30D, READS_30D, RECIPIENT, Reads, reads, reads_by_recipient, record_read

REF = ProductRef("fixture", "items")  # a product of this test's own: usage needs only an asset key


def read(instance, recipient, *, major=1, rows=10, ref=REF, now=None):
    record_read(instance, ref, recipient=recipient, table=f"{ref.product}_v{major}", major=major, version=3, files=2,
                rows=rows, now=now)


def test_each_read_is_one_runless_observation_and_reads_aggregate_them(instance):
    start = datetime.now(timezone.utc) - timedelta(seconds=1)
    for recipient, major in [("acme-bi", 1), ("acme-bi", 1), ("acme-bi", 2), ("insights", 2)]:
        read(instance, recipient, major=major)
    read(instance, "acme-bi", ref=ProductRef("fixture", "other"))  # another product: not counted
    instance.report_runless_asset_event(dg.AssetObservation(asset_key=REF.asset_key, metadata={"x": 1}))  # not a read
    found = reads(instance, REF, start)
    assert [(r.recipient, r.major, r.reads, r.rows) for r in found] == [
        ("acme-bi", 1, 2, 20), ("acme-bi", 2, 1, 10), ("insights", 2, 1, 10)]
    assert all(datetime.fromisoformat(r.last_read) >= start.replace(microsecond=0) for r in found)
    assert reads_by_recipient(found) == {"acme-bi": 3, "insights": 1}
    # Runless observations: no run, no materialization, so no publish.
    assert instance.get_runs() == [] and instance.get_latest_materialization_event(REF.asset_key) is None
    # Later than every read: none.
    assert reads(instance, REF, datetime.now(timezone.utc) + timedelta(seconds=1)) == []


def test_an_observation_holds_the_read_and_the_products_30_day_summary_but_no_token(instance):
    read(instance, "acme-bi")
    read(instance, "insights", rows=5)
    [latest] = instance.fetch_observations(REF.asset_key, limit=1).records
    metadata = latest.asset_observation.metadata
    assert metadata[RECIPIENT].value == "insights" and metadata["mesh/share/rows"].value == 5
    assert metadata["mesh/share/table"].value == "items_v1" and metadata["mesh/share/version"].value == 3
    assert metadata[READS_30D].value == 2
    assert "| acme-bi | 1 |" in metadata[READERS_30D].value and "| insights | 1 |" in metadata[READERS_30D].value
    assert not any("token" in key for key in metadata)


def test_the_summary_is_seeded_once_from_the_instance_and_forgets_reads_older_than_30_days(instance):
    now = datetime.now(timezone.utc)
    for _ in range(3):
        read(instance, "acme-bi")
    usage._COUNTS.clear()  # as a new server process: it seeds from the 3 reads in the instance
    read(instance, "acme-bi")
    [latest] = instance.fetch_observations(REF.asset_key, limit=1).records
    assert latest.asset_observation.metadata[READS_30D].value == 4
    read(instance, "acme-bi", now=now + timedelta(days=31))  # a month on: the earlier reads left the window
    [latest] = instance.fetch_observations(REF.asset_key, limit=1).records
    assert latest.asset_observation.metadata[READS_30D].value == 1


def test_reads_pages_through_more_observations_than_one_fetch_returns(instance, monkeypatch):
    monkeypatch.setattr(usage, "_PAGE", 3)
    for _ in range(8):
        read(instance, "acme-bi", rows=1)
    assert reads(instance, REF, 0) == [Reads("acme-bi", 1, 8, 8, reads(instance, REF, 0)[0].last_read)]


def test_after_the_first_read_of_a_product_recording_reads_scans_no_history(instance, monkeypatch):
    read(instance, "acme-bi")  # seeds the product's count: one bounded scan of 30 days
    scans = []
    fetch = instance.fetch_observations
    monkeypatch.setattr(instance, "fetch_observations", lambda *a, **k: scans.append(a) or fetch(*a, **k))
    for _ in range(5):
        read(instance, "acme-bi")
    assert scans == []
    monkeypatch.undo()
    [latest] = instance.fetch_observations(REF.asset_key, limit=1).records
    assert latest.asset_observation.metadata[READS_30D].value == 6
