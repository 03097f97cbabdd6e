"""`mesh lint`: every governance rule over the whole mesh, without materializing anything.

Product and domain rules run as each code location loads (a location that breaks one does not
load); mesh-wide rules (inputs exist, access, lifecycle, no cycles, contract snapshots and the
breaking-change gate) run over the locations that did, and the deployment config must match
the workspace. Every violation of every domain is reported in one pass.

With a contract registry, the domains the workspace does not list are read from their entries:
one domain's repository, with only its own code, is checked as producer and as reader against the
whole mesh, and gets the findings the monorepo gets for it (tests/e2e/test_registry_parity.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from dagster import MetadataValue

from mesh_core.errors import Violation, WorkspaceError
from mesh_core.governance.deployment import stale_deployments
from mesh_core.governance.snapshots import check_contracts
from mesh_core.governance.workspace import MeshWorkspace, did_you_mean, read_entries, unlisted_hint

if TYPE_CHECKING:
    from mesh_core.storage.registry import RegistryState

EXIT_CLEAN, EXIT_VIOLATIONS, EXIT_LOAD_ERROR = 0, 1, 2


@dataclass(frozen=True)
class LintReport:
    violations: tuple[Violation, ...]  # errors: each stops its code location from loading
    load_errors: tuple[str, ...]  # code that could not even be imported: no rule could run on it
    domains: tuple[str, ...]  # every domain the workspace lists
    warnings: tuple[Violation, ...] = ()  # warn-level policies: reported, the location loads
    waived: tuple[tuple[Violation, str], ...] = ()  # findings a product waived, with its reason

    @property
    def exit_code(self) -> int:
        if self.load_errors:
            return EXIT_LOAD_ERROR
        return EXIT_VIOLATIONS if self.violations else EXIT_CLEAN


def lint_mesh(path: str | Path, *, domains: Sequence[str] | None = None,
              registry: RegistryState | None = None) -> LintReport:
    """Every rule over the workspace's code locations; with `registry`, the domains it does not list
    are read from their entries, so one domain's repository is checked against the whole mesh."""
    workspace, failures = MeshWorkspace.load_partial(path, registry=registry)
    listed = tuple(sorted([loc.name for loc in workspace.locations] + [f.name for f in failures]))
    unknown = sorted(set(domains or ()) - set(listed))
    remote = {loc.name: loc.module for loc in workspace.remote}
    if unknown and unknown[0] in remote:
        raise WorkspaceError(f"Domain '{unknown[0]}' is not in {workspace.path}: it is known from {remote[unknown[0]]} only, "
                             "so its own rules are checked in its repository. Lint it there, or list its code location "
                             f"in {workspace.path.name}.")
    if unknown:
        raise WorkspaceError(f"No domain {', '.join(map(repr, unknown))} in {workspace.path}"
                             f"{did_you_mean(unknown[0], listed)}; domains: {', '.join(listed)}."
                             f"{unlisted_hint(workspace.path, unknown[0])}")
    violations = [v for failure in failures for v in failure.violations]
    cross_errors, cross_warnings = workspace.cross_domain_findings(unavailable=[f.name for f in failures])
    violations += cross_errors
    try:
        workspace.domain_order()
    except WorkspaceError as exc:
        violations.append(Violation("*", None, "no-domain-cycles", str(exc).split(". Break")[0] + ".",
                                    "a consumer-aligned domain reads source-aligned ones, never the reverse."))
    contract_errors, contract_warnings = check_contracts(workspace, unavailable=[f.name for f in failures])
    violations += contract_errors
    violations += stale_deployments(workspace.path, [(entry.name, entry.module) for entry in read_entries(workspace.path)])
    workspace_warnings = cross_warnings + contract_warnings
    findings = [finding for loc in workspace.locations
                for finding in (loc.defs.metadata.get("mesh/governance") or MetadataValue.json([])).value]
    warnings = [_violation(f) for f in findings if f["waived_because"] is None] + workspace_warnings
    waived = [(_violation(f), f["waived_because"]) for f in findings if f["waived_because"] is not None]
    if domains:
        keep = lambda v: v.domain in domains or v.domain == "*"  # noqa: E731
        violations, warnings = [v for v in violations if keep(v)], [v for v in warnings if keep(v)]
        waived = [(v, why) for v, why in waived if keep(v)]
        # A registry entry that cannot be read is everyone's problem: the domains reading it lose their checks.
        failures = [f for f in failures if f.name in domains or f.module.startswith("registry:")]
    errors = [str(f) for f in failures if not f.violations]
    # A broken governance.yaml stops every location the same way: one load error, once.
    config = list(dict.fromkeys(str(v) for v in violations if v.rule == "governance-config"))
    violations = list(dict.fromkeys(v for v in violations if v.rule != "governance-config"))
    shown = tuple(d for d in listed if not domains or d in domains)
    return LintReport(tuple(violations), tuple(errors + config), shown, tuple(warnings), tuple(waived))


def _violation(finding: dict) -> Violation:
    return Violation(finding["domain"], finding["product"], finding["rule"], finding["message"], finding["fix"])
