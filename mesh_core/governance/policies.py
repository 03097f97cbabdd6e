"""Governance as small rules: the class name is the rule, the docstring says why.

The baseline rules say what a product is; they run when a product is declared, so a
product that breaks one never loads. Policies are the mesh's governance on top: they
run when a domain's code location is assembled, each at the level `governance.yaml`
sets (error, warn or off), and a product may waive one with a written reason. A domain
adds its own policy by subclassing `Policy` beside its products. Every rule yields
`Violation`s; all of them are collected and raised together as one `DefinitionError`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Iterator

from dagster._core.definitions.utils import is_valid_owner

from mesh_core.declare.contract import is_contract
from mesh_core.errors import Violation

if TYPE_CHECKING:
    from mesh_core.declare.product import DataProduct

# Dagster's own owner format: an email address or 'team:<name>'.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TEAM = re.compile(r"^team:[A-Za-z0-9_.-]+$")


class Rule:
    """A governance rule over one data product."""

    name: ClassVar[str]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # OwnersRequired -> owners-required
        cls.name = re.sub(r"(?<!^)(?=[A-Z])", "-", cls.__name__).lower()

    def check(self, product: "DataProduct") -> Iterator[Violation]:
        raise NotImplementedError

    def violation(self, product: "DataProduct", message: str, fix: str) -> Violation:
        return Violation(product.domain, product.name, self.name, message, fix)


class OwnersRequired(Rule):
    """Every data product names the people or team accountable for it."""

    def check(self, product):
        if not product.owners:
            yield self.violation(
                product,
                "no owners declared.",
                "pass owners=['team:<your-team>'] or an owner's email address.",
            )


class OwnersValid(Rule):
    """Owners use Dagster's format, so the UI can show and filter by them."""

    def check(self, product):
        for owner in product.owners:
            # Dagster's own test too: an owner Mesh accepts must never fail later in Dagster.
            if not (isinstance(owner, str) and (_EMAIL.match(owner) or _TEAM.match(owner)) and is_valid_owner(owner)):
                yield self.violation(
                    product,
                    f"invalid owner {owner!r}.",
                    "an owner is an email address (ana@example.com) or a team name "
                    "prefixed with 'team:' (team:operations).",
                )


class DescriptionRequired(Rule):
    """A product is documented: its description says what one row is."""

    def check(self, product):
        if not (product.description and product.description.strip()):
            yield self.violation(
                product,
                "no description.",
                "pass description='One row per <grain> ...' saying what one row is.",
            )


class ContractRequired(Rule):
    """A product publishes a Pandera contract that its data is validated against."""

    def check(self, product):
        if product.contract is None:
            yield self.violation(
                product,
                "no contract.",
                "pass contract=<a pandera.pandas.DataFrameModel subclass> describing its columns.",
            )
        elif not is_contract(product.contract):
            yield self.violation(
                product,
                f"contract {product.contract!r} is not a Pandera DataFrameModel.",
                "declare `class MyContract(pandera.pandas.DataFrameModel)` and pass the class.",
            )


class SuiteRequired(Rule):
    """A product carries a Great Expectations suite, checked before each publish."""

    def check(self, product):
        if not product.suite:
            yield self.violation(
                product,
                "empty expectation suite.",
                "pass suite=[Expectation('ExpectColumnValuesToNotBeNull', column=...), ...].",
            )


BASELINE_RULES: tuple[Rule, ...] = (
    OwnersRequired(),
    OwnersValid(),
    DescriptionRequired(),
    ContractRequired(),
    SuiteRequired(),
)



# -- policies: checked when a domain's code location is assembled, at a configurable level ----


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
)
