"""`mesh remove domain`: a domain out of the mesh in one step, refused while others read it."""

from __future__ import annotations

import signal
from pathlib import Path

from mesh_core.cli.command import EXIT_OK, add_common, home


def register(commands) -> None:
    remove = commands.add_parser("remove", help="remove a domain: folder, workspace entry, deployment, snapshots")
    kinds = remove.add_subparsers(dest="kind", metavar="KIND", required=True)
    domain = kinds.add_parser("domain", help="refused while another domain reads one of its (non-retired) products")
    add_common(domain)
    domain.add_argument("name", help="the domain")
    domain.add_argument("--delete-data", action="store_true",
                        help="also delete its local data (ports and store); by default the data is kept")
    domain.set_defaults(run=remove_domain)


def remove_domain(args) -> int:
    from mesh_core.selfserve.remove import plan_remove_domain
    from mesh_core.storage.domain_storage import resolve_data_dir, resolve_ports_uri

    workspace = Path(args.workspace).resolve()
    home(args)
    data_dir = resolve_data_dir()
    removal = plan_remove_domain(workspace, args.name, data_dir=data_dir,
                                 ports_uri=resolve_ports_uri(None, data_dir), delete_data=args.delete_data)

    def interrupted(signum, frame):
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        changed = removal.plan.apply()
    finally:
        removal.plan.commit()
        signal.signal(signal.SIGTERM, previous)
    shown = lambda path: path.relative_to(workspace.parent) if path.is_relative_to(workspace.parent) else path  # noqa: E731
    for path in removal.plan.remove:
        print(f"  removed {shown(path)}")
    for path in changed:
        print(f"  updated {shown(path)}")
    if removal.data is not None and not removal.data_removed:
        print(f"  kept    {removal.data} (its published data; `--delete-data` removes it)")
    print(f"Removed domain '{args.name}'. Next: `.venv/bin/mesh lint`, then commit.")
    return EXIT_OK
