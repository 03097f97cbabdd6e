"""`mesh read`, `mesh history` and `mesh repair`: a product's published versions, and storage put right."""

from __future__ import annotations

import argparse
import json
import sys

from mesh_core.cli.command import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_command, home, prepare


def register(commands) -> None:
    read_ = add_command(commands, "read", "print a product's rows, at its current or a given version", read,
                        json_help="print the rows as JSON records")
    read_.add_argument("product", help="the product, as domain.product (domain.product@N: its older major N)")
    read_.add_argument("--version", type=_version, help="a published version (see `mesh history`); default: the current one")
    read_.add_argument("--limit", type=int, default=10, help="rows to print (default: %(default)s; 0 for all)")
    history_ = add_command(commands, "history", "list a product's published versions, newest first", history,
                           json_help="print the versions as JSON")
    history_.add_argument("product", help="the product, as domain.product (domain.product@N: its older major N)")
    add_command(commands, "repair", "bring DuckDB stores and the instance back in line with the ports", repair,
                domains="only this domain (repeatable); default: all", json_help="print the results as JSON")


def _version(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a version: versions are whole numbers >= 0")
    return int(text)


def _reader(args):
    from mesh_core.declare.inputs import Input
    from mesh_core.errors import MeshError
    from mesh_core.run.io_manager import MeshIOManager

    folder = home(args)
    if not folder.is_dir():  # reading never creates an instance: a typo must not look like an empty mesh
        raise MeshError(f"DAGSTER_HOME {folder} {'is a file' if folder.exists() else 'does not exist'}; point it "
                        "(or --dagster-home) at the mesh's instance folder.")
    try:
        spec = Input(args.product)
    except ValueError as exc:
        raise MeshError(str(exc)) from None
    # Outside any run, an operator reads as the product's own domain: its internal and draft products
    # too, under the same lifecycle rules as every reader (a retired product is refused).
    storage = MeshIOManager(domain=spec.ref.domain).storage()
    return spec, storage, storage.port_major(spec.ref, spec.major)


def read(args) -> int:
    if args.limit < 0:
        print("mesh: error: --limit must be 0 (all rows) or more.", file=sys.stderr)
        return EXIT_USAGE
    ref, storage, major = _reader(args)
    version = storage.current(ref.ref, major).version if args.version is None else args.version
    frame = storage.read(ref.ref, version=version, major=major)
    shown = frame if args.limit == 0 else frame.head(args.limit)
    if args.json:
        print(json.dumps({"product": str(ref), "version": version, "rows": len(frame),
                          "records": json.loads(shown.to_json(orient="records", date_format="iso"))}, indent=2))
    else:
        print(f"{ref} version {version}: {len(frame):,} rows, showing {len(shown):,}")
        print(shown.to_string(index=False))
    return EXIT_OK


def history(args) -> int:
    ref, storage, major = _reader(args)
    versions = storage.history(ref.ref, major)
    if not versions:
        storage.current(ref.ref, major)  # raises ProductNotPublishedError, which says what to run
    stored = storage.port(ref.ref, major).data_files()
    readable = {v.version: set(v.files) <= stored for v in versions}  # retention removed the others
    if args.json:
        print(json.dumps([{**v.as_dict(), "stored": readable[v.version]} for v in versions], indent=2))
        return EXIT_OK
    print(f"{'version':>7}  {'committed (UTC)':19}  {'rows':>10}  {'product':9}  {'contract':16}  {'stored':6}  run")
    for v in versions:
        print(f"{v.version:>7}  {v.committed_at:%Y-%m-%d %H:%M:%S}  {v.rows:>10,}  {v.product_version:9}  "
              f"{v.contract_fingerprint or '-':16}  {'yes' if readable[v.version] else 'no':6}  {v.run_id}")
    return EXIT_OK


def repair(args) -> int:
    import dagster as dg

    from mesh_core.operate.repair import repair_mesh

    workspace, _ = prepare(args)
    with dg.DagsterInstance.get() as instance:
        results = repair_mesh(workspace, instance, domains=args.domain)
    if args.json:
        print(json.dumps([{"domain": r.domain, "product": str(r.ref) if r.ref else None, "ok": r.ok,
                           "message": r.message} for r in results], indent=2))
    else:
        for r in results:
            print(f"  {'ok' if r.ok else 'FAILED':7} {r.ref or r.domain}: {r.message}")
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED
