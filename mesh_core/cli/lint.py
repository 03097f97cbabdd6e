"""`mesh lint`: every governance rule over the whole mesh, without running anything."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from mesh_core.cli.command import add_command, registry_state


def register(commands) -> None:
    add_command(commands, "lint", "check every governance rule over the whole mesh, without running anything", lint,
                domains="only this domain's violations (repeatable)", json_help="print the violations as JSON")


def lint(args) -> int:
    from mesh_core.governance.lint import lint_mesh

    return show_lint(lint_mesh(Path(args.workspace).resolve(), domains=args.domain, registry=registry_state(args)),
                     as_json=args.json)


def show_lint(report, *, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"ok": report.exit_code == 0, "domains": list(report.domains), "load_errors": list(report.load_errors),
                          "violations": [dataclasses.asdict(v) for v in report.violations],
                          "warnings": [dataclasses.asdict(v) for v in report.warnings],
                          "waived": [{**dataclasses.asdict(v), "reason": why} for v, why in report.waived]}, indent=2))
        return report.exit_code
    for error in report.load_errors:
        print(f"mesh: error: {error}", file=sys.stderr)
    for violation in report.violations:
        print(f"  error    {violation}")
    for violation in report.warnings:
        print(f"  warning  {violation}")
    for violation, why in report.waived:
        print(f"  waived   {violation} Waived because: {why}")
    print(f"{len(report.violations)} violation(s), {len(report.warnings)} warning(s), {len(report.waived)} waived "
          f"in {len(report.domains)} domain(s)"
          + (f"; {len(report.load_errors)} code location(s) could not be loaded" if report.load_errors else ""))
    return report.exit_code
