"""`mesh materialize`: every data product, domain by domain, without the UI."""

from __future__ import annotations

import argparse
import json

from mesh_core.cli.command import EXIT_FAILED, EXIT_OK, add_command, prepare


def register(commands) -> None:
    sub = add_command(commands, "materialize", "materialize every data product, domain by domain, without the UI",
                      materialize, domains="only this domain (repeatable); default: all, in dependency order",
                      json_help="print the summary as JSON")
    # Set by a mesh's `mesh materialize` running a domain in the domain's own interpreter (run/delegated.py):
    # the mesh checked its rules with every domain; this workspace lists none of those the domain reads.
    sub.add_argument("--delegated", action="store_true", help=argparse.SUPPRESS)


def materialize(args) -> int:
    import dagster as dg

    from mesh_core.errors import DefinitionError
    from mesh_core.run.materialize import materialize_mesh
    from mesh_core.storage.registry import registry_uri

    workspace, home = prepare(args)
    unavailable: set[str] = set()
    # The mesh that runs this domain here checked the rules with the domains it reads (`mesh dev`'s args lack the flag).
    if getattr(args, "delegated", False):
        listed = {loc.name for loc in workspace.locations}
        unavailable = {up.domain for loc in workspace.locations for _, up in loc.inputs()} - listed
    # A broken rule in a domain not selected does not stop the others.
    violations = [v for v in workspace.violations(unavailable=unavailable) if not args.domain or v.domain in args.domain]
    if violations:
        raise DefinitionError(violations)
    quiet = args.json
    say = (lambda *a, **k: None) if quiet else print
    say(f"Materializing the mesh in {workspace.path.name} (DAGSTER_HOME={home})", flush=True)
    with dg.DagsterInstance.get() as instance:
        summary = materialize_mesh(
            workspace,
            instance,
            domains=args.domain,
            on_domain_start=lambda loc, i, n: say(f"[{i}/{n}] {loc.name}: {len(loc.products)} product(s)", flush=True),
            on_domain_done=lambda result: [say(line, flush=True) for line in _domain_lines(result)],
            log_level="INFO" if args.verbose else "CRITICAL",
            registry=registry_uri(getattr(args, "registry", None)),
        )
    counts = summary.counts()
    if args.json:
        print(json.dumps(_summary_json(summary), indent=2))
    else:
        print(
            f"\n{counts['published']}/{counts['products']} products published from {counts['domains']} domains "
            f"in {summary.seconds:.1f}s; checks: {counts['checks_passed']} passed, {counts['checks_warned']} warned, "
            f"{counts['checks_failed']} failed"
            + ("" if summary.ok else f"; {counts['blocked']} blocked, {counts['failed']} failed, {counts['skipped']} skipped")
            + (f"; {counts['domains_not_run']} domain(s) did not run" if counts["domains_not_run"] else "")
        )
    return EXIT_OK if summary.ok else EXIT_FAILED


def _domain_lines(result) -> list[str]:
    if result.error:
        return [f"  ERROR   {result.domain} did not run:" + "".join(f"\n          {line}" for line in result.error.splitlines())]
    return [_product_line(p) for p in result.products]


def _product_line(product) -> str:
    warned = [c.name for c in product.checks if not c.passed and c.severity == "WARN"]
    passed = sum(c.passed for c in product.checks)
    if product.ok:
        line = f"  ok      {product.ref}: published {product.rows:,} rows; {passed}/{len(product.checks)} checks passed"
        line += f" (warnings: {', '.join(warned)})" if warned else ""
        return line + "".join(f"\n          note: {note}" for note in product.message.splitlines())
    detail = "".join(f"\n          {line}" for line in product.message.splitlines())
    return f"  {product.status.upper():7} {product.ref}{detail}"


def _summary_json(summary) -> dict:
    return {
        "ok": summary.ok,
        "seconds": round(summary.seconds, 3),
        **summary.counts(),
        "domains": [
            {
                "domain": d.domain,
                "run_id": d.run_id,
                "error": d.error,
                "seconds": round(d.seconds, 3),
                "products": [
                    {
                        "product": str(p.ref),
                        "status": p.status,
                        "rows": p.rows,
                        "message": p.message,
                        "checks": [c.__dict__ for c in p.checks],
                    }
                    for p in d.products
                ],
            }
            for d in summary.domains
        ],
    }
