"""The `mesh` command: a thin layer over mesh_core's Python API.

Exit codes: 0 success; 1 a product was not published (materialize), a rule was broken (lint) or
a repair failed; 2 a usage, definition or storage error (the message names what, where and the fix).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import traceback
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    from mesh_core.errors import MeshError

    try:
        return args.run(args)
    except BrokenPipeError:  # `mesh ... | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except MeshError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"mesh: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug, or a failure Mesh does not know yet: exit 1 means "not published" only
        if args.verbose:
            traceback.print_exc()
        print(f"mesh: error: {type(exc).__name__}: {exc} (run with -v for the traceback)", file=sys.stderr)
        return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mesh", description="Run and inspect a data mesh on Dagster.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("-w", "--workspace", default="workspace.yaml", help="workspace file (default: %(default)s)")
        sub.add_argument("--dagster-home", help="Dagster instance folder (default: $DAGSTER_HOME, else ./dagster_home beside the workspace)")
        sub.add_argument("-v", "--verbose", action="store_true", help="show Dagster's logs and tracebacks")

    def command(name: str, help: str, run, *, domains: str | None = None, json_help: str | None = None):
        sub = commands.add_parser(name, help=help)
        common(sub)
        if domains:
            sub.add_argument("-d", "--domain", action="append", help=domains)
        if json_help:
            sub.add_argument("--json", action="store_true", help=json_help)
        sub.set_defaults(run=run)
        return sub

    command("materialize", "materialize every data product, domain by domain, without the UI", _materialize,
            domains="only this domain (repeatable); default: all, in dependency order", json_help="print the summary as JSON")
    command("lint", "check every governance rule over the whole mesh, without running anything", _lint,
            domains="only this domain's violations (repeatable)", json_help="print the violations as JSON")
    contracts = command("contracts", "compare public contracts with their committed snapshots, or update them", _contracts,
                        domains="only this domain (repeatable)")
    contracts.add_argument("action", choices=["check", "update", "export", "import"],
                           help="check: report changes; update: rewrite the snapshots; export: write ODCS v3 documents "
                                "to PATH; import: an ODCS v3 document at PATH as Python (a contract and a suite)")
    contracts.add_argument("path", nargs="?", help="export: a folder (default: contracts); import: the ODCS YAML file")
    read = command("read", "print a product's rows, at its current or a given version", _read,
                   json_help="print the rows as JSON records")
    read.add_argument("product", help="the product, as domain.product (domain.product@N: its older major N)")
    read.add_argument("--version", type=_version, help="a published version (see `mesh history`); default: the current one")
    read.add_argument("--limit", type=int, default=10, help="rows to print (default: %(default)s; 0 for all)")
    history = command("history", "list a product's published versions, newest first", _history,
                      json_help="print the versions as JSON")
    history.add_argument("product", help="the product, as domain.product (domain.product@N: its older major N)")
    command("repair", "bring DuckDB stores and the instance back in line with the ports", _repair,
            domains="only this domain (repeatable); default: all", json_help="print the results as JSON")
    status = command("status", "score every product against its objectives (exit 1 if any is breached)", _status,
                     domains="only this domain (repeatable)", json_help="print the scores as JSON")
    status.add_argument("--window-days", type=_days, help="look back this many days (default: each product's SLO window)")

    catalog = command("catalog", "describe every product: owners, access, status, lineage, columns, last publish",
                      _catalog, domains="only this domain (repeatable)", json_help="print the catalog as JSON")
    catalog.add_argument("--markdown", metavar="DIR", help="write linked Markdown pages (one per domain and product) to DIR")

    new = commands.add_parser("new", help="scaffold a domain or a product in the standard layout")
    kinds = new.add_subparsers(dest="kind", metavar="KIND", required=True)
    new_domain = kinds.add_parser("domain", help="a domain folder with a source product, its test, and its workspace entry")
    common(new_domain)
    new_domain.add_argument("name", help="the domain, lower snake case")
    new_domain.add_argument("--owner", required=True, help="its owner: team:<name> or an email address")
    new_domain.add_argument("--description", help="one line about the domain")
    new_domain.set_defaults(run=_new_domain)
    new_product = kinds.add_parser("product", help="a product in an existing domain; --from infers its contract")
    common(new_product)
    new_product.add_argument("domain", help="the domain it belongs to")
    new_product.add_argument("name", help="the product, lower snake case")
    new_product.add_argument("--from", dest="source", help="a .csv or .parquet file, or a published domain.product")
    new_product.add_argument("--owner", help="its owner (default: the domain's)")
    new_product.set_defaults(run=_new_product)

    dev = commands.add_parser("dev", help="materialize the mesh, then start the Dagster webserver and daemon")
    common(dev)
    dev.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    dev.add_argument("--port", default="3000", help="port (default: %(default)s)")
    dev.add_argument("--skip-materialize", action="store_true", help="start the UI on the data already published")
    dev.set_defaults(run=_dev, json=False, domain=None)

    up = commands.add_parser("up", help="Dagster's production topology here: one gRPC code server per domain, "
                                        "then the webserver and daemon on them (docs/deploy.md)")
    common(up)
    up.add_argument("--servers", action="store_true", help="start only the code servers and write their workspace "
                                                           "(for a webserver and daemon that run elsewhere)")
    up.add_argument("--host", default="127.0.0.1", help="address every server binds (default: %(default)s)")
    up.add_argument("--port", default="3000", help="the webserver's port (default: %(default)s)")
    up.add_argument("--first-port", type=int, default=4266,
                    help="domain i's code server listens on FIRST_PORT + i (default: %(default)s; 0: any free ports)")
    up.add_argument("--grpc-workspace", help="where to write the workspace of code servers "
                                             "(default: $DAGSTER_HOME/mesh/workspace.grpc.yaml)")
    up.set_defaults(run=_up, json=False, domain=None)
    return parser


def _home(args) -> Path:
    """Choose the environment in one place: the Dagster home, and with it the data folder."""
    from mesh_core.storage.domain_storage import resolve_data_dir, resolve_ports_uri

    workspace_path = Path(args.workspace).resolve()
    home = Path(args.dagster_home or os.environ.get("DAGSTER_HOME") or workspace_path.parent / "dagster_home").resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    resolve_ports_uri(None, resolve_data_dir())  # a bad MESH_PORTS_URI stops here, before any run
    return home


def _version(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a version: versions are whole numbers >= 0")
    return int(text)


def _prepare(args) -> tuple:
    """The workspace, and the Dagster instance (created once if new)."""
    from mesh_core.instance.home import prepare_instance
    from mesh_core.governance.workspace import MeshWorkspace

    home = prepare_instance(_home(args))
    return MeshWorkspace.load(Path(args.workspace).resolve()), home


def _materialize(args) -> int:
    import dagster as dg

    from mesh_core.errors import DefinitionError
    from mesh_core.run.materialize import materialize_mesh

    workspace, home = _prepare(args)
    # A broken rule in a domain not selected does not stop the others.
    violations = [v for v in workspace.violations() if not args.domain or v.domain in args.domain]
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
            on_domain_done=lambda result: [say(_product_line(p), flush=True) for p in result.products],
            log_level="INFO" if args.verbose else "CRITICAL",
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
        )
    return EXIT_OK if summary.ok else EXIT_FAILED


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


def _lint(args) -> int:
    from mesh_core.governance.lint import lint_mesh

    return _show_lint(lint_mesh(Path(args.workspace).resolve(), domains=args.domain), as_json=args.json)


def _show_lint(report, *, as_json: bool) -> int:
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


def _contracts(args) -> int:
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
        import yaml

        from mesh_core.run.io_manager import MeshIOManager
        from mesh_core.governance.odcs import export_document

        _home(args)
        folder = Path(args.path or "contracts")
        folder.mkdir(parents=True, exist_ok=True)
        count = 0
        for ref, (location, spec) in workspace.products().items():
            if spec.metadata["mesh/access"] != "public" or (args.domain and ref.domain not in args.domain):
                continue
            uri = MeshIOManager(domain=ref.domain).storage().port(ref).uri
            path = folder / f"{ref}.odcs.yaml"
            path.write_text(yaml.safe_dump(export_document(ref, spec, port_uri=uri), sort_keys=False, allow_unicode=True))
            count += 1
        print(f"{count} ODCS v3 contract(s) written to {folder}")
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


def _reader(args):
    from mesh_core.errors import MeshError
    from mesh_core.declare.inputs import Input
    from mesh_core.run.io_manager import MeshIOManager

    home = _home(args)
    if not home.is_dir():  # reading never creates an instance: a typo must not look like an empty mesh
        raise MeshError(f"DAGSTER_HOME {home} {'is a file' if home.exists() else 'does not exist'}; point it "
                        "(or --dagster-home) at the mesh's instance folder.")
    try:
        spec = Input(args.product)
    except ValueError as exc:
        raise MeshError(str(exc)) from None
    # An operator reads as the product's own domain: every product, internal ones included.
    storage = MeshIOManager(domain=spec.ref.domain).storage()
    return spec, storage, storage.port_major(spec.ref, spec.major)


def _read(args) -> int:
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


def _history(args) -> int:
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


def _days(text: str) -> int:
    from mesh_core.declare.slo import MAX_DAYS

    if not text.isdigit() or not 1 <= int(text) <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days from 1 to {MAX_DAYS}")
    return int(text)


def _status(args) -> int:
    import dagster as dg

    from mesh_core.run.scorecard import domain_state, score_mesh

    workspace, _ = _prepare(args)
    for name in args.domain or ():
        workspace.location(name)  # an unknown domain: a usage error that names the candidates
    with dg.DagsterInstance.get() as instance:
        scores = score_mesh(workspace, instance, domains=args.domain, window_days=args.window_days)
    breached = any(s.state == "breached" for group in scores.values() for s in group)
    if args.json:
        print(json.dumps({"domains": [{"domain": domain, "state": domain_state(group), "products": [s.as_dict() for s in group]}
                                      for domain, group in scores.items()]}, indent=2))
        return EXIT_FAILED if breached else EXIT_OK
    rate = lambda value: "-" if value is None else f"{value:.0%}"  # noqa: E731
    fresh = {"PASS": "fresh", "WARN": "late", "FAIL": "stale", "UNKNOWN": "unknown", "NOT_APPLICABLE": "-"}
    print(f"{'product':40} {'state':9} {'fresh':7} {'last publish (UTC)':19} {'age h':>6} {'published':>11} "
          f"{'checks':>6} {'budget':>6}  rows (latest last)")
    for domain, group in scores.items():
        print(f"{domain}: {domain_state(group)} ({len(group)} product(s))")
        for s in group:
            last = s.last_publish.replace("T", " ")[:19] if s.last_publish else "never"
            print(f"  {s.product:38} {s.state:9} {fresh[s.freshness]:7} {last:19} {'-' if s.age_hours is None else f'{s.age_hours:.1f}':>6} "
                  f"{f'{s.published}/{s.attempts}':>6} {rate(s.publish_rate):>4} {rate(s.check_pass_rate):>6} "
                  f"{rate(s.error_budget_left):>6}  {' > '.join(f'{r:,}' for r in s.rows) or '-'}")
            for reason in s.reasons:
                print(f"      {reason}")
    return EXIT_FAILED if breached else EXIT_OK


def _catalog(args) -> int:
    import dagster as dg

    from mesh_core.operate.catalog import build_catalog, write_markdown

    workspace, _ = _prepare(args)
    for name in args.domain or ():
        workspace.location(name)
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
            if e.reads or e.read_by:
                print(f"{'':40} <- {', '.join(e.reads) or '-'} | {', '.join(e.read_by) or '-'} ->")
    return EXIT_OK


def _new_domain(args) -> int:
    from mesh_core.selfserve.scaffold import plan_domain

    workspace_path = Path(args.workspace).resolve()
    plan = plan_domain(workspace_path, args.name, args.owner, args.description)
    return _apply(plan, workspace_path, args.name)


def _new_product(args) -> int:
    from mesh_core.selfserve.scaffold import plan_product
    from mesh_core.governance.workspace import MeshWorkspace

    workspace = MeshWorkspace.load(Path(args.workspace).resolve())

    def read_product(ref):
        from mesh_core.run.io_manager import MeshIOManager

        _home(args)
        return MeshIOManager(domain=ref.domain).storage().read(ref)

    plan = plan_product(workspace, args.domain, args.name, source=args.source, owner=args.owner, read_product=read_product)
    return _apply(plan, workspace.path, args.domain)


def _apply(plan, workspace_path: Path, domain: str) -> int:
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
    print(f"Next: fill in the TODOs, then `.venv/bin/mesh lint` and `make test`.")
    return EXIT_OK


def _repair(args) -> int:
    import dagster as dg

    from mesh_core.operate.repair import repair_mesh

    workspace, _ = _prepare(args)
    with dg.DagsterInstance.get() as instance:
        results = repair_mesh(workspace, instance, domains=args.domain)
    if args.json:
        print(json.dumps([{"domain": r.domain, "product": str(r.ref) if r.ref else None, "ok": r.ok,
                           "message": r.message} for r in results], indent=2))
    else:
        for r in results:
            print(f"  {'ok' if r.ok else 'FAILED':7} {r.ref or r.domain}: {r.message}")
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def _dev(args) -> int:
    from mesh_core.governance.lint import lint_mesh

    report = lint_mesh(Path(args.workspace).resolve())
    if report.exit_code:  # never serve a mesh that `mesh lint` rejects
        print("The mesh breaks its rules; `mesh lint` says:", file=sys.stderr)
        return _show_lint(report, as_json=False)
    for warning in report.warnings:  # e.g. reads of deprecated products or of an older major: shown as it starts
        print(f"  warning  {warning}", file=sys.stderr)
    if not args.skip_materialize:
        code = _materialize(args)
        if code == EXIT_FAILED:
            print("Some products were not published; the UI shows their failed checks.", file=sys.stderr)
    else:
        _prepare(args)  # creates the instance once, before several code servers start on it
    command = [sys.executable, "-m", "dagster", "dev", "-w", str(Path(args.workspace).resolve()),
               "-h", args.host, "-p", str(args.port)]
    print(f"Starting Dagster: http://{args.host}:{args.port}", flush=True)
    # A shell starts background jobs with SIGINT ignored, and exec keeps that; so would Dagster,
    # which then ignores SIGTERM too. Restore the defaults so SIGTERM stops the whole tree.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    os.execv(sys.executable, command)


def _up(args) -> int:
    from mesh_core.instance.home import prepare_instance
    from mesh_core.operate.code_servers import ServerGroup, grpc_workspace_yaml, plan_code_servers, start_code_servers

    home = prepare_instance(_home(args))  # the instance exists (and is migrated) before any server opens it
    servers = plan_code_servers(Path(args.workspace).resolve(), host=args.host, first_port=args.first_port)
    target = Path(args.grpc_workspace or home / "mesh" / "workspace.grpc.yaml").resolve()
    group = ServerGroup(home / "mesh" / "logs")

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    # Started in the background, `mesh up` may have inherited SIGINT ignored, and so would the servers: then
    # the interrupt they stop cleanly on (see ServerGroup.stop) would be lost, and they would take the SIGKILL.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        print(f"Starting {len(servers)} code server(s) (logs in {group.log_dir})", flush=True)
        start_code_servers(group, servers, on_ready=lambda s: print(f"  {s.location}: grpc {s.host}:{s.port}", flush=True))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(grpc_workspace_yaml(servers))
        print(f"Workspace of code servers: {target}", flush=True)
        if not args.servers:
            bin_dir = Path(sys.executable).parent
            group.start("webserver", [str(bin_dir / "dagster-webserver"), "-w", str(target), "-h", args.host, "-p", str(args.port)])
            group.start("daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", str(target)])
            print(f"Dagster webserver: http://{args.host}:{args.port}; daemon started", flush=True)
        gone = group.wait()
        print(f"mesh: error: {gone} exited (see {group.log_dir / (gone + '.log')}); stopping the others", file=sys.stderr)
        return EXIT_FAILED
    finally:
        group.stop()


def entry() -> None:
    """The `mesh` command. It ends with os._exit once its output is flushed: at interpreter teardown
    a native thread pool (Arrow's, DuckDB's) can abort a command that already finished
    ("terminate called without an active exception"), seen once in CI under load."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):
            pass
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    entry()
