"""`mesh new domain` and `mesh new product`: scaffold in the standard layout, taken back if it does not load."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from mesh_core.cli.command import EXIT_OK, EXIT_USAGE, add_common, home


def register(commands) -> None:
    new = commands.add_parser("new", help="scaffold a domain or a product in the standard layout")
    kinds = new.add_subparsers(dest="kind", metavar="KIND", required=True)
    domain = kinds.add_parser("domain", help="a domain folder with a source product, its test, and its workspace entry")
    add_common(domain)
    domain.add_argument("name", help="the domain, lower snake case")
    domain.add_argument("--owner", required=True, help="its owner: team:<name> or an email address")
    domain.add_argument("--description", help="one line about the domain")
    domain.add_argument("--standalone", metavar="DIR",
                        help="write the domain as a repository of its own in DIR (new or empty): its pyproject.toml "
                             "depending on mesh-core, lock, Makefile, tests and CI script; the mesh lists it with "
                             "executable_path")
    domain.add_argument("--mesh-core-wheel", metavar="PATH",
                        help="with --standalone: mesh-core's wheel (or its folder), when your package index does not "
                             "have it")
    domain.set_defaults(run=new_domain)
    product = kinds.add_parser("product", help="a product in an existing domain; --from infers its contract")
    add_common(product)
    product.add_argument("domain", help="the domain it belongs to")
    product.add_argument("name", help="the product, lower snake case")
    product.add_argument("--from", dest="source", help="a .csv or .parquet file, or a published domain.product")
    # The choices are kept here, not imported: `mesh --help` must not import pandas (the scaffold module does).
    product.add_argument("--engine", choices=("pandas", "polars", "sql"), default="pandas",
                         help="how the product is written (docs/engines.md): pandas (the default; any --from), polars "
                              "(returns a LazyFrame, reads its file or input lazily; any --from), or sql (a DuckDB "
                              "query in NAME.sql beside products.py; needs --from domain.product, since a SQL "
                              "product queries the products it reads)")
    product.add_argument("--owner", help="its owner (default: the domain's)")
    product.set_defaults(run=new_product)


def new_domain(args) -> int:
    from mesh_core.selfserve.plan import repository_lock
    from mesh_core.selfserve.scaffold import plan_domain

    if args.standalone:
        return _new_standalone_domain(args)
    if args.mesh_core_wheel:
        from mesh_core.errors import MeshError

        raise MeshError("--mesh-core-wheel goes with --standalone DIR (a domain in its own repository).")
    workspace_path = Path(args.workspace).resolve()
    with repository_lock(workspace_path.parent):
        plan = plan_domain(workspace_path, args.name, args.owner, args.description)
        return _apply(plan, workspace_path, args.name)


def _new_standalone_domain(args) -> int:
    from mesh_core.selfserve.plan import repository_lock
    from mesh_core.selfserve.standalone import LOCK, lock, plan_standalone_domain, wheel_folder

    directory = Path(args.standalone).resolve()
    wheel = Path(args.mesh_core_wheel) if args.mesh_core_wheel else None
    with repository_lock(directory):
        plan = plan_standalone_domain(directory, args.name, args.owner, args.description, wheel)
        code = _apply(plan, directory / "workspace.yaml", args.name, next_step=False)
    if code != EXIT_OK:
        return code
    print(f"Locking its dependencies ({LOCK}) ...", flush=True)
    failed = lock(directory, wheel_folder(wheel) if wheel else None)
    if failed is None:
        print(f"  wrote {LOCK}")
    else:
        print(f"  warning  {LOCK} was not written: {failed}\n"
              f"  Then run `make lock` in {directory} (it needs uv and the package index; "
              "`make MESH_CORE_WHEELS=<folder> lock` if mesh-core's wheel is not on the index).")
    print(f"Next, in {directory}: fill in the TODOs, then `make test` (builds .venv from {LOCK}, runs the tests and "
          "`mesh lint`). A mesh runs it from that virtualenv when its workspace.yaml lists it with "
          f"working_directory: {directory} and executable_path: {directory}/.venv/bin/python.")
    return EXIT_OK


def new_product(args) -> int:
    from mesh_core.governance.workspace import MeshWorkspace
    from mesh_core.selfserve.plan import repository_lock
    from mesh_core.selfserve.scaffold import plan_product

    workspace = MeshWorkspace.load(Path(args.workspace).resolve())

    def read_product(ref):
        from mesh_core.run.io_manager import MeshIOManager

        home(args)
        return MeshIOManager(domain=ref.domain).storage().read(ref)

    with repository_lock(workspace.path.parent):
        plan = plan_product(workspace, args.domain, args.name, source=args.source, owner=args.owner,
                            read_product=read_product, engine=args.engine)
        return _apply(plan, workspace.path, args.domain)


def _apply(plan, workspace_path: Path, domain: str, *, next_step: bool = True) -> int:
    """Write the plan, then the domain's contract snapshots; a scaffold that does not load is taken back."""
    import subprocess

    def interrupted(signum, frame):
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        written = plan.apply()
        # Load in a fresh interpreter: this one may have imported the domain's modules before the change.
        check = subprocess.run([sys.executable, "-m", "mesh_core.cli", "contracts", "update", "-w", str(workspace_path),
                                "-d", domain], capture_output=True, text=True, cwd=workspace_path.parent)
    except BaseException:  # Ctrl-C or SIGTERM half-way: the tree goes back as it was
        plan.undo()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    if check.returncode != 0:
        plan.undo()
        print(f"mesh: error: the scaffold did not load, so it was taken back:\n{check.stderr or check.stdout}", file=sys.stderr)
        return EXIT_USAGE
    for path in written:
        print(f"  wrote {path.relative_to(workspace_path.parent)}")
    print(check.stdout.rstrip())
    for warning in plan.warnings:
        print(f"  warning  {warning}")
    if next_step:
        print("Next: fill in the TODOs, then `.venv/bin/mesh lint` and `make test`.")
    return EXIT_OK
