"""`mesh deploy helm`: the Helm chart's user deployments, derived from workspace.yaml."""

from __future__ import annotations

from pathlib import Path

from mesh_core.cli.command import EXIT_FAILED, EXIT_OK, add_common


def register(commands) -> None:
    deploy = commands.add_parser("deploy", help="write deployment config derived from workspace.yaml")
    targets = deploy.add_subparsers(dest="target", metavar="TARGET", required=True)
    helm = targets.add_parser("helm", help="one Helm user deployment per domain in deploy/helm/values.yaml; "
                                           "the file's other settings and comments are kept")
    add_common(helm)
    helm.add_argument("--values", help="the values file (default: deploy/helm/values.yaml beside the workspace)")
    helm.add_argument("--check", action="store_true", help="change nothing; exit 1 if the file is not current")
    helm.set_defaults(run=deploy_helm)


def deploy_helm(args) -> int:
    from mesh_core.errors import MeshError
    from mesh_core.governance.deployment import derived_values
    from mesh_core.selfserve.plan import replace_file, repository_lock

    workspace = Path(args.workspace).resolve()
    with repository_lock(workspace.parent):
        path, old, new = derived_values(workspace, path=Path(args.values).resolve() if args.values else None)
        shown = path.relative_to(workspace.parent) if path.is_relative_to(workspace.parent) else path
        if old == new:
            print(f"{shown} is current.")
            return EXIT_OK
        if args.check:
            if old is None:
                print(f"{shown} does not exist: nothing to check (`mesh deploy helm` writes one).")
                return EXIT_OK
            print(f"{shown} is stale; run `mesh deploy helm` to rewrite its user deployments.")
            return EXIT_FAILED
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            replace_file(path, new.encode("utf-8"))
        except OSError as exc:
            raise MeshError(f"cannot write {path}: {exc.strerror or exc}; nothing was changed.") from None
    print(f"{'wrote' if old is None else 'updated'} {shown}: one user deployment per domain in {workspace.name}.")
    return EXIT_OK
