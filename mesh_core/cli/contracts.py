"""`mesh contracts check|update|export|import`: public contracts against their snapshots, and ODCS."""

from __future__ import annotations

import sys
from pathlib import Path

from mesh_core.cli.command import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_command, home, registry_state


def register(commands) -> None:
    sub = add_command(commands, "contracts", "compare public contracts with their committed snapshots, or update them",
                      contracts, domains="only this domain (repeatable)")
    sub.add_argument("action", choices=["check", "update", "export", "import"],
                     help="check: report changes; update: rewrite the snapshots; export: write ODCS v3 documents "
                          "to PATH; import: an ODCS v3 document at PATH as Python (a contract and a suite)")
    sub.add_argument("path", nargs="?", help="export: a folder (default: contracts); import: the ODCS YAML file")
    sub.add_argument("--accept-breaking", action="append", metavar="DOMAIN.PRODUCT",
                     help="update: also write this product's breaking change that readers rely on into its major's "
                          "snapshot, recording who accepted it (--by, --reason) in snapshots/<domain>.accepted.yaml "
                          "(repeatable)")
    sub.add_argument("--by", help="with --accept-breaking: who accepts the change (a person or team)")
    sub.add_argument("--reason", help="with --accept-breaking: why the readers can live with it")


def contracts(args) -> int:
    from mesh_core.declare.ref import ProductRef
    from mesh_core.governance.snapshots import Acceptance, check_contracts, update_snapshots
    from mesh_core.governance.workspace import MeshWorkspace

    if (args.by or args.reason or args.accept_breaking) and not (args.accept_breaking and args.action == "update"):
        print("mesh: error: --accept-breaking, --by and --reason go together, with `mesh contracts update` only: "
              "`mesh contracts update --accept-breaking DOMAIN.PRODUCT --by NAME --reason TEXT`.", file=sys.stderr)
        return EXIT_USAGE
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
    # check and update: remote domains' readers, from the registry, count and are written into the
    # consumers files. Export writes this workspace's own contracts only.
    registry = registry_state(args) if args.action in ("check", "update") else None
    workspace = MeshWorkspace.load(Path(args.workspace).resolve(), registry=registry)
    if args.action == "export":
        from mesh_core.governance.odcs import export_contracts

        home(args)
        folder = Path(args.path or "contracts")
        written = export_contracts(workspace, folder, domains=args.domain)
        print(f"{len(written)} ODCS v3 contract(s) written to {folder}")
        return EXIT_OK
    if args.action == "update":
        accept = Acceptance(frozenset(map(ProductRef.parse, args.accept_breaking)), args.by or "",
                            args.reason or "") if args.accept_breaking else None
        updated = update_snapshots(workspace, args.domain, accept=accept)
        for path in updated.written:
            print(f"  wrote {path}")
        for path in updated.removed:
            print(f"  removed {path} (the product is internal now)")
        for violation in updated.refused:
            print(f"  error    {violation}")
        print(f"{len(updated.written)} snapshot(s) written; review and commit them."
              + (f" {len(updated.refused)} kept: they would absorb a breaking change." if updated.refused else ""))
        return EXIT_FAILED if updated.refused else EXIT_OK
    errors, warnings = check_contracts(workspace)
    keep = lambda v: not args.domain or v.domain in args.domain  # noqa: E731
    for violation in filter(keep, errors):
        print(f"  error    {violation}")
    for violation in filter(keep, warnings):
        print(f"  warning  {violation}")
    failed = [v for v in errors if keep(v)]
    print(f"{len(failed)} breaking or unsnapshotted contract(s)")
    return EXIT_FAILED if failed else EXIT_OK
