"""How many published versions a product's port keeps, applied with Delta's vacuum.

A version is kept while any of these holds: it is among the newest `keep_versions` (at least
2: the current one and the one before it, which a run created while the current one was being
published may have pinned); it was committed less than `keep_hours` ago by the writer's clock
(a commit from the future, after the clock stepped back, counts as new); or a Dagster run that
is queued or in progress pinned it. Order is by Delta version, never by the clock, so a clock
step can only make Mesh keep more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Sequence

from mesh_core.storage.port import PortVersion


@dataclass(frozen=True)
class Retention:
    keep_versions: int = 5
    keep_hours: float = 24.0

    def __post_init__(self) -> None:
        if not isinstance(self.keep_versions, int) or self.keep_versions < 2:
            raise ValueError(
                "Retention keep_versions must be a whole number >= 2 (the current version, and the previous one "
                f"that runs created during a publish may have pinned); got {self.keep_versions!r}."
            )
        if not isinstance(self.keep_hours, (int, float)) or self.keep_hours < 0:
            raise ValueError(f"Retention keep_hours must be >= 0; got {self.keep_hours!r}.")

    def versions_to_keep(self, history: Sequence[PortVersion], *, now: datetime, in_use: Iterable[int] = ()) -> set[int]:
        """The Delta versions whose files must stay; `history` is newest first."""
        by_version = sorted(history, key=lambda item: item.version, reverse=True)
        keep = {item.version for item in by_version[: self.keep_versions]}
        window = timedelta(hours=self.keep_hours)
        keep |= {item.version for item in by_version if now - item.committed_at < window}
        existing = {item.version for item in by_version}
        return keep | (set(in_use) & existing)
