"""`mesh remove domain`: a domain out of the mesh in one step, refused while others read it."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from mesh_core.cli.command import EXIT_OK, add_common, home


def register(commands) -> None:
    remove = commands.add_parser("remove", help="remove a domain: folder, workspace entry, deployment, snapshots")
    kinds = remove.add_subparsers(dest="kind", metavar="KIND", required=True)
    domain = kinds.add_parser("domain", help="refused while another domain reads one of its (non-retired) products")
    add_common(domain)
    domain.add_argument("name", help="the domain")
    domain.add_argument("--delete-data", action="store_true",
                        help="also delete its local data (its store, and its ports if local); by default it is kept")
    domain.set_defaults(run=remove_domain)


def remove_domain(args) -> int:
    from mesh_core.selfserve.plan import leftovers, repository_lock
    from mesh_core.selfserve.remove import plan_remove_domain
    from mesh_core.storage.domain_storage import resolve_data_dir, resolve_ports_uri

    workspace = Path(args.workspace).resolve()
    home(args)
    data_dir = resolve_data_dir()
    shown = lambda path: path.relative_to(workspace.parent) if path.is_relative_to(workspace.parent) else path  # noqa: E731

    def interrupted(signum, frame):
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, interrupted)
    applied = False
    try:
        with repository_lock(workspace.parent):
            removal = plan_remove_domain(workspace, args.name, data_dir=data_dir,
                                         ports_uri=resolve_ports_uri(None, data_dir), delete_data=args.delete_data)
            changed = removal.plan.apply()
            applied = True
            removal.plan.commit()
    except KeyboardInterrupt:
        print("mesh: interrupted after the domain was removed; what it removed waits in .mesh-removed-* folders: "
              "delete them." if applied else "mesh: interrupted; nothing was changed.", file=sys.stderr)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    for path in removal.plan.remove:
        print(f"  removed {shown(path)}")
    for path in changed:
        print(f"  updated {shown(path)}")
    if not removal.data_removed:
        for path in removal.data:
            print(f"  kept    {path} (its published data; `--delete-data` removes it)")
    for warning in removal.plan.warnings:
        print(f"  warning {warning}", file=sys.stderr)
    for path in leftovers(workspace.parent / "domains", workspace.parent / "tests" / "domains"):
        print(f"  warning {shown(path)} was left by an interrupted command: check it, then delete it", file=sys.stderr)
    print(f"Removed domain '{args.name}'. Next: `.venv/bin/mesh lint`, then commit.")
    return EXIT_OK
