"""The baseline rules: what a data product is, checked when it is declared.

A product that breaks one never loads. Each rule is a small class: the class name is the rule
(`OwnersRequired` -> `owners-required`), the docstring says why, and `check` yields a `Violation`
that names the product, the problem and the fix. The mesh's configurable policies build on `Rule`
(`mesh_core.governance.policies`).
"""

from __future__ import annotations

import re
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
