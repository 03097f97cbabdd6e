"""`mesh serve`: the mesh's products over Delta Sharing, to any client holding a profile file."""

from __future__ import annotations

import argparse

from mesh_core.cli.command import EXIT_OK, add_command, home


def register(commands) -> None:
    from mesh_core.share.server import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_RATE
    from mesh_core.share.signing import DEFAULT_TTL_SECONDS

    sub = add_command(commands, "serve", "serve the products over Delta Sharing (tokens: `mesh share token create`)", serve)
    sub.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s); another address "
                     "needs --tls-cert/--tls-key or --behind-proxy")
    sub.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (default: %(default)s)")
    sub.add_argument("--tls-cert", help="TLS certificate chain (PEM) to serve HTTPS with")
    sub.add_argument("--tls-key", help="the TLS certificate's private key (PEM)")
    sub.add_argument("--behind-proxy", action="store_true",
                     help="a TLS-terminating proxy forwards to this address: serve plain HTTP on it, trust its X-Forwarded-* headers")
    sub.add_argument("--forwarded-allow-ips", default="127.0.0.1", metavar="IPS",
                     help="with --behind-proxy: the proxy's addresses, comma-separated, whose X-Forwarded-* headers "
                          "are trusted (default: %(default)s)")
    sub.add_argument("--url-ttl", type=_positive_int, default=DEFAULT_TTL_SECONDS, metavar="SECONDS",
                     help="how long the file URLs of a query work (default: %(default)s)")
    sub.add_argument("--rate-limit", type=_positive_float, default=DEFAULT_RATE, metavar="N",
                     help="requests a second each recipient may send, in bursts of 4 s of it (default: %(default)g)")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds > 0")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of requests a second > 0")
    return value


def serve(args) -> int:
    # The workspace file is only parsed, never imported: the server runs no domain's code.
    from pathlib import Path

    import dagster as dg

    from mesh_core.errors import MeshError
    from mesh_core.governance.workspace import read_entries
    from mesh_core.instance.home import prepare_instance
    from mesh_core.share.server import serve as run_server
    from mesh_core.share.signing import check_ttl
    from mesh_core.storage.domain_storage import resolve_data_dir, resolve_ports_uri

    workspace = Path(args.workspace).resolve()
    read_entries(workspace)  # a missing or broken workspace.yaml stops here, naming the fix
    check_ttl(args.url_ttl)
    folder = prepare_instance(home(args))
    ports_uri = resolve_ports_uri(None, resolve_data_dir())
    with dg.DagsterInstance.get() as instance:
        def started(endpoint: str) -> None:
            print(f"Serving the mesh's products over Delta Sharing at {endpoint}", flush=True)
            if args.host in ("0.0.0.0", "::") or args.behind_proxy:
                print("  clients reach it at this machine's name or its proxy's URL: pass that as --endpoint to "
                      "`mesh share token create`", flush=True)
            print(f"  ports: {ports_uri}  instance: {folder}  file URLs last {args.url_ttl} s", flush=True)
            print("  recipients' profiles: `mesh share token create NAME --profile FILE`; Ctrl-C stops.", flush=True)

        try:
            run_server(args.host, args.port, workspace=workspace, instance=instance, dagster_home=folder,
                       ports_uri=ports_uri, tls_cert=args.tls_cert, tls_key=args.tls_key,
                       behind_proxy=args.behind_proxy, forwarded_allow_ips=args.forwarded_allow_ips, url_ttl=args.url_ttl, rate_limit=args.rate_limit,
                       on_start=started)
        except OSError as exc:
            raise MeshError(f"Cannot serve on {args.host}:{args.port}: {exc.strerror or exc}. Fix: pick a free "
                            "port with --port.") from None
    return EXIT_OK
