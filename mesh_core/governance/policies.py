"""The mesh's policies: governance rules with a level, checked when a domain's code location loads.

Each is a small class (the class name is the rule, the docstring says why) built on the baseline
`Rule` (`mesh_core.declare.rules`), run at the level `governance.yaml` sets (error, warn or off);
a product may waive one with a written reason. A domain adds its own policy by subclassing
`Policy` beside its products. Every rule yields `Violation`s; all of them are collected and raised
together as one `DefinitionError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, Iterator

from mesh_core.declare.lifecycle import Status
from mesh_core.declare.product import DataProduct
from mesh_core.declare.rules import Rule
from mesh_core.errors import Violation


class Level(str, enum.Enum):
    """What breaking a policy does: stop the load and fail lint, be reported, or nothing."""

    ERROR = "error"
    WARN = "warn"
    OFF = "off"


@dataclass(frozen=True)
class DomainScope:
    """What a policy may know about the domain around a product."""

    name: str
    teams: tuple[str, ...] = ()


class Policy(Rule):
    """A governance rule with a level set by configuration (`governance.yaml`)."""

    default: ClassVar[Level] = Level.ERROR

    def check(self, product: "DataProduct", domain: DomainScope | None = None) -> Iterator[Violation]:
        raise NotImplementedError


class ColumnDescriptions(Policy):
    """Every column a product publishes is documented in its contract."""

    default = Level.WARN

    def check(self, product, domain=None):
        missing = [name for name, column in product.contract.to_schema().columns.items() if not column.description]
        if missing:
            yield self.violation(product, f"contract columns without a description: {', '.join(missing)}.",
                                 f"add pa.Field(description='...') to {', '.join(missing)} in {product.contract.__name__}.")


class GrainInDescription(Policy):
    """A product's description starts with its grain, so a reader knows what one row is."""

    def check(self, product, domain=None):
        if not product.description.lstrip().lower().startswith("one row per "):
            yield self.violation(product, f"the description does not state the grain: {product.description[:40]!r}...",
                                 "start the description with 'One row per <thing> ...'.")


class PublicContractsStrict(Policy):
    """A public product publishes exactly its contract's columns, so consumers are never surprised."""

    def check(self, product, domain=None):
        if product.access.value == "public" and product.contract.to_schema().strict is not True:
            yield self.violation(product, f"public, but {product.contract.__name__} is not strict.",
                                 f"set `strict = True` in {product.contract.__name__}.Config, or make the product internal.")


SCAFFOLD_TODO = "TODO:"  # what `mesh new` writes where only the engineer knows the words


class DescriptionsWritten(Policy):
    """A product leaves draft with its description and its columns' written, not the scaffold's TODO text."""

    def check(self, product, domain=None):
        if product.lifecycle.status is Status.DRAFT:  # work in progress: the TODOs are the to-do list
            return
        if SCAFFOLD_TODO in (product.description or ""):
            yield self.violation(product, f"the description is still the scaffold's text: {product.description!r}.",
                                 "say what one row is and where it comes from (or keep status='draft' until you can).")
        todo = [name for name, column in product.contract.to_schema().columns.items()
                if SCAFFOLD_TODO in (column.description or "")]
        if todo:
            yield self.violation(product, f"columns still described by the scaffold's TODO text: {', '.join(todo)}.",
                                 f"write what each means in pa.Field(description='...') in {product.contract.__name__}.")


PERSONAL = {"personal", "pii"}
MASKING_METHODS = {"hash", "sha256", "sha512", "hmac", "mask", "redact", "tokenize", "truncate", "generalize"}


class PersonalDataProtected(Policy):
    """Columns classified as personal data leave a domain only masked or hashed by a declared method."""

    def check(self, product, domain=None):
        if product.access.value != "public":
            return
        for name, column in product.contract.to_schema().columns.items():
            meta = column.metadata or {}
            if str(meta.get("classification", "")).lower() in PERSONAL and str(meta.get("masking", "")).lower() not in MASKING_METHODS:
                yield self.violation(
                    product, f"column '{name}' is classified personal data and is published unmasked.",
                    f"mask or hash it in the product and declare how: pa.Field(metadata={{'classification': "
                    f"'personal', 'masking': 'sha256'}}) with one of {', '.join(sorted(MASKING_METHODS))}, "
                    "or make the product internal.",
                )


class OwnersInDomainTeams(Policy):
    """A product is owned by the team(s) its domain declares, so ownership follows the domain."""

    def check(self, product, domain=None):
        if domain is None or not domain.teams:
            return
        teams = [owner for owner in product.owners if owner.startswith("team:")]
        strangers = [team for team in teams if team not in domain.teams]
        if strangers or not teams:
            yield self.violation(
                product, f"owners {list(product.owners)} do not match the '{domain.name}' domain's teams {list(domain.teams)}"
                + (f" ({', '.join(strangers)} is not one of them)." if strangers else " (no team owns it)."),
                f"own it with one of {', '.join(domain.teams)}, or add the team to domain_definitions(teams=...).",
            )


POLICIES: tuple[Policy, ...] = (
    ColumnDescriptions(),
    GrainInDescription(),
    PublicContractsStrict(),
    PersonalDataProtected(),
    OwnersInDomainTeams(),
    DescriptionsWritten(),
)
