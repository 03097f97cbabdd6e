"""`mesh contracts check|update|export|import`: public contracts against their snapshots, and ODCS."""

from __future__ import annotations

import sys
from pathlib import Path

from mesh_core.cli.command import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_command, home


def register(commands) -> None:
    sub = add_command(commands, "contracts", "compare public contracts with their committed snapshots, or update them",
                      contracts, domains="only this domain (repeatable)")
    sub.add_argument("action", choices=["check", "update", "export", "import"],
                     help="check: report changes; update: rewrite the snapshots; export: write ODCS v3 documents "
                          "to PATH; import: an ODCS v3 document at PATH as Python (a contract and a suite)")
    sub.add_argument("path", nargs="?", help="export: a folder (default: contracts); import: the ODCS YAML file")


def contracts(args) -> int:
    from mesh_core.governance.snapshots import check_contracts, update_snapshots
    from mesh_core.governance.workspace import MeshWorkspace

    if args.action == "import":
        from mesh_core.governance.odcs import import_source, read_document

        if not args.path:
            print("mesh: error: `mesh contracts import FILE.yaml` needs the ODCS file.", file=sys.stderr)
            return EXIT_USAGE
        source, skipped = import_source(read_document(Path(args.path)))
        print(source, end="")
        for rule in skipped:
            print(f"# not imported (write it as a check by hand): {rule}", file=sys.stderr)
        return EXIT_OK
    workspace = MeshWorkspace.load(Path(args.workspace).resolve())
    if args.action == "export":
        from mesh_core.governance.odcs import export_contracts

        home(args)
        folder = Path(args.path or "contracts")
        written = export_contracts(workspace, folder, domains=args.domain)
        print(f"{len(written)} ODCS v3 contract(s) written to {folder}")
        return EXIT_OK
    if args.action == "update":
        written = update_snapshots(workspace, args.domain)
        for path in written:
            print(f"  wrote {path}")
        print(f"{len(written)} snapshot(s) written; review and commit them.")
        return EXIT_OK
    errors, warnings = check_contracts(workspace)
    keep = lambda v: not args.domain or v.domain in args.domain  # noqa: E731
    for violation in filter(keep, errors):
        print(f"  error    {violation}")
    for violation in filter(keep, warnings):
        print(f"  warning  {violation}")
    failed = [v for v in errors if keep(v)]
    print(f"{len(failed)} breaking or unsnapshotted contract(s)")
    return EXIT_FAILED if failed else EXIT_OK
