"""Federated governance: the mesh's policies, at the levels `governance.yaml` sets.

The mesh-wide file sits beside `workspace.yaml`:

    policies:                       # error (stops the load, fails lint), warn (reported) or off
      column-descriptions: error
    domains_may_override: [column-descriptions]
    consumer_expectations: warn     # consumers' expectations in producers' audits: warn, error (blocks) or off

A domain passes its own policies and levels to `domain_definitions(..., policies=[...],
levels={...})`; it may change only the levels the mesh-wide file lets it. A product may
waive a policy with a written reason (`waivers={"column-descriptions": "why"}`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping, Sequence

import yaml

from mesh_core.errors import DefinitionError, Violation
from mesh_core.governance.policies import POLICIES, DomainScope, Level, Policy

CONFIG_FILE = "governance.yaml"
WORKSPACE_FILE = "workspace.yaml"


@dataclass(frozen=True)
class Governance:
    """Mesh-wide levels per policy, and which of them a domain may set for itself."""

    levels: Mapping[str, Level] = field(default_factory=dict)
    domains_may_override: frozenset[str] = frozenset()
    source: Path | None = None
    consumer_expectations: Level = Level.WARN  # what a consumer's failed expectation does in the producer's audit

    @classmethod
    def read(cls, path: Path) -> "Governance":
        """Parse one governance.yaml; every problem in it is reported at once, naming the file."""
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise _config_error(path, f"cannot be read: {' '.join(str(exc).split())}",
                                "fix the YAML (see the example in mesh_core/governance/config.py).") from None
        if not isinstance(document, dict) or set(document) - {"policies", "domains_may_override", "consumer_expectations"}:
            raise _config_error(path, "must be a mapping with 'policies', 'domains_may_override' and "
                                "'consumer_expectations' only.", "see the example in mesh_core/governance/config.py.")
        known = {policy.name for policy in POLICIES}
        policies, overridable = document.get("policies") or {}, document.get("domains_may_override") or []
        if not isinstance(policies, dict) or not isinstance(overridable, list):
            raise _config_error(path, "needs 'policies' as a mapping (policy: level) and 'domains_may_override' as a list.",
                                "see the example in mesh_core/governance/config.py.")
        problems, levels = [], {}
        for name, value in policies.items():
            value = "off" if value is False else value  # YAML reads a bare `off` as false
            if name not in known:
                problems.append(f"unknown policy {name!r} (known: {', '.join(sorted(known))})")
            elif not isinstance(value, str) or value not in {level.value for level in Level}:
                problems.append(f"policy {name!r} has level {value!r}; use error, warn or off")
            else:
                levels[name] = Level(value)
        problems += [f"domains_may_override names unknown policy {name!r}" for name in overridable if name not in known]
        consumer_level = document.get("consumer_expectations", Level.WARN.value)
        consumer_level = "off" if consumer_level is False else consumer_level
        if not isinstance(consumer_level, str) or consumer_level not in {level.value for level in Level}:
            problems.append(f"consumer_expectations is {consumer_level!r}; use error, warn or off")
        if problems:
            raise _config_error(path, "; ".join(problems) + ".", "use the policy names and levels listed.")
        return cls(MappingProxyType(levels), frozenset(overridable), path, Level(consumer_level))

    @classmethod
    def for_module(cls, module_name: str | None) -> "Governance":
        """The governance.yaml beside the workspace.yaml above a domain's module; none: the defaults."""
        location = getattr(sys.modules.get(module_name or ""), "__file__", None)
        if not location:
            return cls()
        start = Path(location).resolve().parent
        for folder in (start, *start.parents):
            if (folder / WORKSPACE_FILE).exists():
                config = folder / CONFIG_FILE
                return cls.read(config) if config.exists() else cls()
        return cls()

    def level(self, policy: Policy) -> Level:
        return self.levels.get(policy.name, policy.default)


@dataclass(frozen=True)
class Finding:
    """A policy's violation with the level it has in this domain, or the waiver that excuses it."""

    violation: Violation
    level: Level
    waived_because: str | None = None

    def as_dict(self) -> dict:
        return {**self.violation.__dict__, "level": self.level.value, "waived_because": self.waived_because}


def evaluate(products: Sequence, domain: DomainScope, governance: Governance, *,
             policies: Iterable[Policy] = (), levels: Mapping[str, str] | None = None) -> list[Finding]:
    """Every policy over every product of one domain. Raises DefinitionError for what must
    not load: error-level findings, levels the domain may not set, waivers without a reason."""
    everything = [*POLICIES, *policies]
    names = {policy.name for policy in everything}
    mesh_wide = {policy.name for policy in POLICIES}
    problems: list[Violation] = []
    overrides: dict[str, Level] = {}
    for name, value in (levels or {}).items():
        value = "off" if value is False else value
        if name not in names:
            problems.append(Violation(domain.name, None, "policy-levels-valid", f"sets a level for unknown policy {name!r}.",
                                      f"name one of {', '.join(sorted(names))}."))
        elif not isinstance(value, str) or value not in {level.value for level in Level}:
            problems.append(Violation(domain.name, None, "policy-levels-valid", f"sets policy {name!r} to {value!r}.",
                                      "use error, warn or off."))
        elif name in mesh_wide and name not in governance.domains_may_override:
            problems.append(Violation(domain.name, None, "override-allowed",
                                      f"sets policy '{name}' to {value!r}, which the mesh-wide governance does not let a domain change.",
                                      f"ask the platform team to list it under domains_may_override in {governance.source or CONFIG_FILE}."))
        else:
            overrides[name] = Level(value)
    findings: list[Finding] = []
    for product in products:
        for name, reason in product.waivers.items():
            if name not in names:
                problems.append(Violation(product.domain, product.name, "waivers-name-policies",
                                          f"waives {name!r}, which is not a policy.", f"waive one of {', '.join(sorted(names))}."))
            elif not str(reason or "").strip():
                problems.append(Violation(product.domain, product.name, "waivers-have-reasons",
                                          f"waives '{name}' without a reason.", "write why in waivers={'" + name + "': '<reason>'}."))
        for policy in everything:
            level = overrides.get(policy.name, governance.level(policy) if policy.name in mesh_wide else policy.default)
            if level is Level.OFF:
                continue
            for violation in policy.check(product, domain):
                findings.append(Finding(violation, level, product.waivers.get(policy.name) or None))
    problems += [f.violation for f in findings if f.level is Level.ERROR and f.waived_because is None]
    if problems:
        raise DefinitionError(problems)
    return findings


def _config_error(path: Path, message: str, fix: str) -> DefinitionError:
    return DefinitionError([Violation("*", None, "governance-config", f"{path} {message}", fix)])
