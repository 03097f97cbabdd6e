"""Who reads a product over Delta Sharing, recorded in the Dagster instance beside its publishes.

Every query the sharing server answers becomes one runless `AssetObservation` on the product's
asset key: recipient, shared table, major, port version, files and rows served, never the token.
Observations do not count as publishes (status, catalog and freshness read materializations only)
and do not start Dagster's automation. Each observation also carries the product's share usage
over the last 30 days, so the product's page in the UI shows it (and plots the total): a running
count kept in this process, seeded once per product from the instance (one bounded scan of 30
days), then advanced by each read this process records. Reads another process records meanwhile
join the count when this process next seeds it (on restart); `reads` always reads the instance.
"""

from __future__ import annotations

import threading
import weakref
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import dagster as dg

from mesh_core.declare.ref import ProductRef

RECIPIENT, TABLE, MAJOR = "mesh/share/recipient", "mesh/share/table", "mesh/share/major"
VERSION, FILES, ROWS = "mesh/share/version", "mesh/share/files", "mesh/share/rows"
READS_30D, READERS_30D = "mesh/share/reads_30d", "mesh/share/readers_30d"
SUMMARY_DAYS = 30
_PAGE = 1000


@dataclass(frozen=True)
class Reads:
    """One recipient's reads of one major of a product over a window."""

    recipient: str
    major: int | None
    reads: int
    rows: int  # rows served, where the server knew them
    last_read: str  # ISO 8601, UTC

    def as_dict(self) -> dict:
        return {"recipient": self.recipient, "major": self.major, "reads": self.reads, "rows": self.rows,
                "last_read": self.last_read}


def record_read(instance: dg.DagsterInstance, ref: ProductRef | str, *, recipient: str, table: str, major: int | None,
                version: int | None, files: int | None, rows: int | None, now: datetime | None = None) -> None:
    """Record one query of `ref` by `recipient` (a name, never a token) as an observation."""
    ref = ProductRef.parse(ref)
    now = now or datetime.now(timezone.utc)
    day = now.astimezone(timezone.utc).date()
    counts = _summary(instance, ref, day)
    with _LOCK:
        counts[recipient][day] += 1
        oldest = day - timedelta(days=SUMMARY_DAYS - 1)
        for days in counts.values():  # forget days out of the window, so a long-running server stays small
            for old in [d for d in days if d < oldest]:
                del days[old]
        per_recipient = {name: sum(days.values()) for name, days in counts.items()}
    per_recipient = {name: n for name, n in sorted(per_recipient.items()) if n}
    values = {RECIPIENT: recipient, TABLE: table, MAJOR: major, VERSION: version, FILES: files, ROWS: rows}
    metadata: dict = {key: value for key, value in values.items() if value is not None}
    metadata[READS_30D] = dg.MetadataValue.int(sum(per_recipient.values()))
    metadata[READERS_30D] = dg.MetadataValue.md(
        f"| recipient | reads ({SUMMARY_DAYS} days) |\n| --- | ---: |\n"
        + "".join(f"| {name} | {n:,} |\n" for name, n in per_recipient.items()))
    instance.report_runless_asset_event(dg.AssetObservation(
        asset_key=ref.asset_key, description=f"read over Delta Sharing by {recipient}", metadata=metadata))


def reads(instance: dg.DagsterInstance, ref: ProductRef | str, since: datetime | float) -> list[Reads]:
    """Reads of `ref` since `since`, per recipient and major (oldest recipient name first)."""
    ref = ProductRef.parse(ref)
    found: dict[tuple[str, int | None], list] = {}
    for record in _observations(instance, ref, since):
        metadata = record.asset_observation.metadata
        if RECIPIENT not in metadata:  # an observation something else recorded
            continue
        major = metadata[MAJOR].value if MAJOR in metadata else None
        key = (str(metadata[RECIPIENT].value), int(major) if major is not None else None)
        total = found.setdefault(key, [0, 0, 0.0])
        total[0] += 1
        total[1] += int(metadata[ROWS].value) if ROWS in metadata else 0
        total[2] = max(total[2], record.timestamp)
    return [Reads(recipient=name, major=major, reads=n, rows=rows, last_read=_iso(last))
            for (name, major), (n, rows, last) in sorted(found.items(), key=lambda item: (item[0][0], item[0][1] or 0))]


def reads_by_recipient(found: list[Reads]) -> dict[str, int]:
    """{recipient: reads} over every major."""
    by: dict[str, int] = {}
    for item in found:
        by[item.recipient] = by.get(item.recipient, 0) + item.reads
    return by


def _observations(instance: dg.DagsterInstance, ref: ProductRef, since: datetime | float):
    after = since.timestamp() if isinstance(since, datetime) else float(since)
    cursor = None
    while True:
        result = instance.fetch_observations(dg.AssetRecordsFilter(asset_key=ref.asset_key, after_timestamp=after),
                                             limit=_PAGE, cursor=cursor, ascending=True)
        yield from result.records
        if not result.has_more:
            return
        cursor = result.cursor


# The running counts: instance -> product -> recipient -> day -> reads.
_COUNTS: "weakref.WeakKeyDictionary[dg.DagsterInstance, dict]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _summary(instance: dg.DagsterInstance, ref: ProductRef, day: date) -> dict[str, dict[date, int]]:
    with _LOCK:
        products = _COUNTS.setdefault(instance, {})
        if ref in products:
            return products[ref]
    start = datetime.combine(day - timedelta(days=SUMMARY_DAYS - 1), datetime.min.time(), timezone.utc)
    counts: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for record in _observations(instance, ref, start):
        metadata = record.asset_observation.metadata
        if RECIPIENT in metadata:
            counts[str(metadata[RECIPIENT].value)][datetime.fromtimestamp(record.timestamp, timezone.utc).date()] += 1
    with _LOCK:
        return products.setdefault(ref, counts)  # another thread seeded it meanwhile: keep one


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")
