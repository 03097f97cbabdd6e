"""What `mesh preview` found: per product its sandbox status, data diff, and check changes.

`preview.py` builds a `Preview`; `preview_report.py` renders it (terminal, JSON, Markdown). Both
depend on these types only, so the two sides meet here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

from mesh_core.declare.ref import ProductRef

if TYPE_CHECKING:
    from mesh_core.operate.diff import ProductDiff

Status = Literal["published", "blocked", "failed", "skipped"]
STATUSES: tuple[str, ...] = ("published", "blocked", "failed", "skipped")


@dataclass(frozen=True)
class CheckChange:
    """One check's result today (`before`, from the real instance) and in the sandbox (`after`).

    `None` means no result: the check never ran today, or did not run in the sandbox. A
    consumer's expectation (a check on the producer named after the consumer) carries the
    consumer ('domain.name') and its owners; the product's own checks carry `consumer=None`.
    """

    name: str
    severity: str  # "ERROR" | "WARN", as Dagster's AssetCheckSeverity names it
    before: bool | None
    after: bool | None
    consumer: str | None = None
    owners: tuple[str, ...] = ()

    @property
    def newly_failing(self) -> bool:
        """Fails in the sandbox and does not fail today (passes, or never ran)."""
        return self.after is False and self.before is not False

    @property
    def newly_passing(self) -> bool:
        return self.after is True and self.before is False

    @property
    def still_failing(self) -> bool:
        return self.after is False and self.before is False

    @property
    def state(self) -> str:
        if self.newly_failing:
            return "newly failing"
        if self.newly_passing:
            return "newly passing"
        if self.still_failing:
            return "still failing"
        if self.after is None:
            return "not run"
        return "passing"


class Consumer(NamedTuple):
    """A downstream product that reads a previewed product, and who owns it."""

    ref: ProductRef
    owners: tuple[str, ...]


@dataclass(frozen=True)
class ProductPreview:
    """One product of the sandbox set: changed by the change, or downstream of one."""

    ref: ProductRef
    owners: tuple[str, ...]
    status: Status
    diff: "ProductDiff | None"
    checks: tuple[CheckChange, ...] = ()
    consumers: tuple[Consumer, ...] = ()
    message: str = ""  # why blocked / failed / skipped, one line

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"Invalid preview status {self.status!r} for {self.ref}: use one of {', '.join(STATUSES)}.")

    @property
    def newly_failing(self) -> tuple[CheckChange, ...]:
        return tuple(check for check in self.checks if check.newly_failing)


@dataclass(frozen=True)
class Preview:
    """The whole preview: the base it compared against, what changed, and every product run."""

    base: str | None
    changed: tuple[ProductRef, ...]
    products: tuple[ProductPreview, ...]
    notes: tuple[str, ...] = ()  # e.g. "a helper module of domain X changed: all its products count as changed"

    @property
    def newly_failing(self) -> tuple[tuple[ProductRef, CheckChange], ...]:
        return tuple((product.ref, check) for product in self.products for check in product.newly_failing)

    @property
    def failed(self) -> tuple[ProductPreview, ...]:
        """The products that raised in the sandbox: the change breaks them (their checks never ran)."""
        return tuple(product for product in self.products if product.status == "failed")

    @property
    def exit_code(self) -> int:
        """1 when any check would newly fail or a product raised in the sandbox (CI gates on it), else 0."""
        return 1 if self.newly_failing or self.failed else 0
