"""`mesh status` and `mesh catalog`: every product against its objectives, and described for people."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mesh_core.cli.command import EXIT_FAILED, EXIT_OK, add_command, prepare


def register(commands) -> None:
    status_ = add_command(commands, "status", "score every product against its objectives (exit 1 if any is breached)",
                          status, domains="only this domain (repeatable)", json_help="print the scores as JSON")
    status_.add_argument("--window-days", type=_days, help="look back this many days (default: each product's SLO window)")
    catalog_ = add_command(commands, "catalog", "describe every product: owners, access, status, lineage, columns, last publish",
                           catalog, domains="only this domain (repeatable)", json_help="print the catalog as JSON")
    catalog_.add_argument("--markdown", metavar="DIR", help="write linked Markdown pages (one per domain and product) to DIR")


def _known(workspace, names) -> None:
    """An unknown domain is a usage error that names the candidates; one known from the registry is known."""
    remote = {location.name for location in workspace.remote}
    for name in names or ():
        if name not in remote:
            workspace.location(name)


def _days(text: str) -> int:
    from mesh_core.declare.slo import MAX_DAYS

    if not text.isdigit() or not 1 <= int(text) <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days from 1 to {MAX_DAYS}")
    return int(text)


def status(args) -> int:
    import dagster as dg

    from mesh_core.run.scorecard import domain_state, score_mesh

    workspace, _ = prepare(args)
    _known(workspace, args.domain)
    remote = {location.name: location.module for location in workspace.remote}
    with dg.DagsterInstance.get() as instance:
        scores = score_mesh(workspace, instance, domains=args.domain, window_days=args.window_days)
    breached = any(s.state == "breached" for group in scores.values() for s in group)
    if args.json:
        print(json.dumps({"domains": [{"domain": domain, "state": domain_state(group), "source": remote.get(domain, "code"),
                                       "products": [s.as_dict() for s in group]} for domain, group in scores.items()]}, indent=2))
        return EXIT_FAILED if breached else EXIT_OK
    rate = lambda value: "-" if value is None else f"{value:.0%}"  # noqa: E731
    fresh = {"PASS": "fresh", "WARN": "late", "FAIL": "stale", "UNKNOWN": "unknown", "NOT_APPLICABLE": "-"}
    print(f"{'product':40} {'state':9} {'fresh':7} {'last publish (UTC)':19} {'age h':>6} {'published':>11} "
          f"{'checks':>6} {'budget':>6} {'readers':>7} {'reads':>6}  rows (latest last)")
    for domain, group in scores.items():
        print(f"{domain}: {domain_state(group)} ({len(group)} product(s))"
              + (f"; code not here, as published in {remote[domain]}" if domain in remote else ""))
        for s in group:
            last = s.last_publish.replace("T", " ")[:19] if s.last_publish else "never"
            print(f"  {s.product:38} {s.state:9} {fresh[s.freshness]:7} {last:19} {'-' if s.age_hours is None else f'{s.age_hours:.1f}':>6} "
                  f"{f'{s.published}/{s.attempts}':>6} {rate(s.publish_rate):>4} {rate(s.check_pass_rate):>6} "
                  f"{rate(s.error_budget_left):>6} {len(s.readers):>7} {s.reads:>6,}  {' > '.join(f'{r:,}' for r in s.rows) or '-'}")
            for reason in s.reasons:
                print(f"      {reason}")
            if s.reads_by:
                print(f"      shared: {', '.join(f'{name} {n:,} read(s)' for name, n in s.reads_by)}")
    return EXIT_FAILED if breached else EXIT_OK


def catalog(args) -> int:
    import dagster as dg

    from mesh_core.operate.catalog import build_catalog, write_markdown

    workspace, _ = prepare(args)
    _known(workspace, args.domain)
    with dg.DagsterInstance.get() as instance:
        entries = build_catalog(workspace, instance, domains=args.domain)
    if args.markdown:
        written = write_markdown(entries, Path(args.markdown))
        print(f"wrote {len(written)} page(s) to {args.markdown} (start at index.md)")
    if args.json:
        print(json.dumps([entry.as_dict() for entry in entries], indent=2))
    elif not args.markdown:
        print(f"{'product':40} {'status':10} {'access':8} {'version':8} {'last publish (UTC)':19}  owners  <- reads | read by ->")
        for e in entries:
            last = (e.last_publish or "never").replace("T", " ")[:19]
            print(f"{e.product:40} {e.status:10} {e.access:8} {e.version:8} {last:19}  {', '.join(e.owners)}")
            if e.source != "code":
                print(f"{'':40} code not here: as published in {e.source}")
            if e.reads or e.read_by:
                print(f"{'':40} <- {', '.join(e.reads) or '-'} | {', '.join(e.read_by) or '-'} ->")
            if e.shared_with:
                print(f"{'':40} shared (30 days): " + ", ".join(
                    f"{r['recipient']}@{r['major']} {r['reads']:,} read(s)" for r in e.shared_with))
    return EXIT_OK
