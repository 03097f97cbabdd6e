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
    """A downstream product that reads a previewed product, and who owns it. `remote`: its domain is
    known from the contract registry only (its code in its own repository), so it was not previewed;
    its registered expectations ran as the previewed product's checks."""

    ref: ProductRef
    owners: tuple[str, ...]
    remote: bool = False


class RemoteConsumer(NamedTuple):
    """A consumer whose code is not here, with what it reads of the preview and its expectations' checks there."""

    ref: ProductRef
    owners: tuple[str, ...]
    reads: tuple[ProductRef, ...]
    checks: tuple[tuple[ProductRef, CheckChange], ...]  # its registered expectations, as the products' checks

    @property
    def ran(self) -> bool:
        """Whether any of its registered expectations ran in the sandbox."""
        return any(check.after is not None for _, check in self.checks)


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
    def remote_consumers(self) -> tuple[RemoteConsumer, ...]:
        """Every consumer of a previewed product known from the registry only: affected, not previewed here."""
        found: dict[ProductRef, RemoteConsumer] = {}
        for product in self.products:
            for consumer in product.consumers:
                if consumer.remote:
                    seen = found.get(consumer.ref) or RemoteConsumer(consumer.ref, consumer.owners, (), ())
                    checks = tuple((product.ref, check) for check in product.checks if check.consumer == str(consumer.ref))
                    found[consumer.ref] = seen._replace(reads=(*seen.reads, product.ref), checks=(*seen.checks, *checks))
        return tuple(found[ref] for ref in sorted(found, key=str))

    @property
    def failed(self) -> tuple[ProductPreview, ...]:
        """The products that raised in the sandbox: the change breaks them (their checks never ran)."""
        return tuple(product for product in self.products if product.status == "failed")

    @property
    def exit_code(self) -> int:
        """1 when any check would newly fail or a product raised in the sandbox (CI gates on it), else 0."""
        return 1 if self.newly_failing or self.failed else 0
