"""`mesh dev` and `mesh up`: the mesh served, by `dagster dev` or as Dagster's production topology."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from mesh_core.cli.command import EXIT_FAILED, add_common, home, prepare
from mesh_core.cli.lint import show_lint
from mesh_core.cli.materialize import materialize


def register(commands) -> None:
    dev_ = commands.add_parser("dev", help="materialize the mesh, then start the Dagster webserver and daemon")
    add_common(dev_)
    dev_.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    dev_.add_argument("--port", default="3000", help="port (default: %(default)s)")
    dev_.add_argument("--skip-materialize", action="store_true", help="start the UI on the data already published")
    dev_.set_defaults(run=dev, json=False, domain=None)

    up_ = commands.add_parser("up", help="Dagster's production topology here: one gRPC code server per domain, "
                                         "then the webserver and daemon on them (docs/deploy.md)")
    add_common(up_)
    up_.add_argument("--servers", action="store_true", help="start only the code servers and write their workspace "
                                                            "(for a webserver and daemon that run elsewhere)")
    up_.add_argument("--host", default="127.0.0.1", help="address every server binds (default: %(default)s)")
    up_.add_argument("--port", default="3000", help="the webserver's port (default: %(default)s)")
    up_.add_argument("--first-port", type=int, default=4266,
                     help="domain i's code server listens on FIRST_PORT + i (default: %(default)s; 0: any free ports)")
    up_.add_argument("--grpc-workspace", help="where to write the workspace of code servers "
                                              "(default: $DAGSTER_HOME/mesh/workspace.grpc.yaml)")
    up_.set_defaults(run=up, json=False, domain=None)


def dev(args) -> int:
    from mesh_core.governance.lint import lint_mesh
    from mesh_core.instance.postgres_driver import use_psycopg2_in_started_processes

    report = lint_mesh(Path(args.workspace).resolve())
    if report.exit_code:  # never serve a mesh that `mesh lint` rejects
        print("The mesh breaks its rules; `mesh lint` says:", file=sys.stderr)
        return show_lint(report, as_json=False)
    for warning in report.warnings:  # e.g. reads of deprecated products or of an older major: shown as it starts
        print(f"  warning  {warning}", file=sys.stderr)
    if not args.skip_materialize:
        code = materialize(args)
        if code == EXIT_FAILED:
            print("Some products were not published; the UI shows their failed checks.", file=sys.stderr)
    else:
        prepare(args)  # creates the instance once, before several code servers start on it
    # Legacy mode: the webserver and the daemon each read workspace.yaml and start its code servers.
    # By default `dagster dev` reads it once and hands them a frozen copy, so a domain added to it
    # would not appear on "Reload definitions" (the daemon re-reads it every minute).
    command = [sys.executable, "-m", "dagster", "dev", "--use-legacy-code-server-behavior",
               "-w", str(Path(args.workspace).resolve()), "-h", args.host, "-p", str(args.port)]
    print(f"Starting Dagster: http://{args.host}:{args.port}", flush=True)
    # A shell starts background jobs with SIGINT ignored, and exec keeps that; so would Dagster,
    # which then ignores SIGTERM too. Restore the defaults so SIGTERM stops the whole tree.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    use_psycopg2_in_started_processes()  # dagster dev and all it starts import nothing of Mesh (docs/deploy.md)
    os.execv(sys.executable, command)


def up(args) -> int:
    from mesh_core.instance.home import prepare_instance
    from mesh_core.instance.postgres_driver import use_psycopg2_in_started_processes
    from mesh_core.operate.code_servers import ServerGroup, grpc_workspace_yaml, plan_code_servers, start_code_servers

    folder = prepare_instance(home(args))  # the instance exists (and is migrated) before any server opens it
    servers = plan_code_servers(Path(args.workspace).resolve(), host=args.host, first_port=args.first_port)
    target = Path(args.grpc_workspace or folder / "mesh" / "workspace.grpc.yaml").resolve()
    group = ServerGroup(folder / "mesh" / "logs")
    use_psycopg2_in_started_processes()  # the webserver, the daemon and run workers import nothing of Mesh

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
