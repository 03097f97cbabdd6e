"""`mesh share`: Delta Sharing tokens for recipients, and who reads each product."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mesh_core.cli.command import EXIT_OK, add_command

DEFAULT_ENDPOINT = "http://127.0.0.1:8080/delta-sharing"


def register(commands) -> None:
    share = commands.add_parser("share", help="Delta Sharing: recipients' tokens, and who reads each product")
    groups = share.add_subparsers(dest="share_command", metavar="COMMAND", required=True)
    token = groups.add_parser("token", help="create, revoke and list recipients' tokens")
    tokens = token.add_subparsers(dest="token_command", metavar="COMMAND", required=True)
    create_ = add_command(tokens, "create", "create a recipient's token and write its profile file", create)
    create_.add_argument("recipient", help="who it is for: a domain of the workspace (reads as that domain) or any "
                                           "other name, e.g. acme-bi (reads public products only)")
    create_.add_argument("--expires", type=_expiry, default=90, metavar="DAYS",
                         help="days until the token expires (1 to 3650; default: %(default)s)")
    create_.add_argument("--profile", required=True, metavar="FILE",
                         help="the profile file to write for the recipient's client (JSON, mode 0600; e.g. acme.share)")
    create_.add_argument("--endpoint", default=DEFAULT_ENDPOINT, type=_endpoint, metavar="URL",
                         help="the server's URL as the recipient reaches it (default: %(default)s)")
    create_.add_argument("--rotate", action="store_true", help="replace an active token (the old one stops working)")
    revoke_ = add_command(tokens, "revoke", "stop a recipient's token working (the recipient stays listed)", revoke)
    revoke_.add_argument("recipient")
    add_command(tokens, "list", "list recipients: kind, state, created, expires (never a token)", list_,
                json_help="print the recipients as JSON")
    usage_ = add_command(groups, "usage", "who reads each product (and major): consuming products and recipients",
                         usage, domains="only this domain's products (repeatable)", json_help="print the readers as JSON")
    usage_.add_argument("product", nargs="?", help="one product, as domain.product (domain.product@N: its major N only)")
    usage_.add_argument("--window-days", type=_window, default=30, metavar="N",
                        help="count recipients' reads over the last N days (default: %(default)s)")


def _expiry(text: str) -> int:
    from mesh_core.share.recipients import MAX_EXPIRES_DAYS

    if not text.isdigit() or not 1 <= int(text) <= MAX_EXPIRES_DAYS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days from 1 to {MAX_EXPIRES_DAYS}")
    return int(text)


def _window(text: str) -> int:
    from mesh_core.declare.slo import MAX_DAYS

    if not text.isdigit() or not 1 <= int(text) <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days from 1 to {MAX_DAYS}")
    return int(text)


def _endpoint(text: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"{text!r} is not the server's URL: write it as "
                                         f"http(s)://HOST[:PORT]/PATH, e.g. {DEFAULT_ENDPOINT}")
    return text.rstrip("/")


def _instance(args, *, create: bool = False):
    """The instance of the mesh; only `create` may make a new one (a typo must not look like an empty mesh)."""
    import dagster as dg

    from mesh_core.cli.command import home
    from mesh_core.errors import MeshError
    from mesh_core.instance.home import prepare_instance

    folder = home(args)
    if create:
        prepare_instance(folder)
    elif not (folder / "dagster.yaml").is_file():
        raise MeshError(f"DAGSTER_HOME {folder} holds no Dagster instance; point it (or --dagster-home) at the mesh's "
                        "instance folder.")
    return dg.DagsterInstance.get()


def create(args) -> int:
    from mesh_core.governance.workspace import read_entries
    from mesh_core.share.recipients import Recipients, check_profile_path, write_profile

    domains = [entry.name for entry in read_entries(Path(args.workspace).resolve())]  # names only: no domain code runs
    profile = check_profile_path(Path(args.profile))  # before the token exists, so a bad path loses nothing
    with _instance(args, create=True) as instance:
        recipient, token = Recipients(instance).create(args.recipient, domains=domains, expires_days=args.expires,
                                                       rotate=args.rotate)
    write_profile(profile, args.endpoint, token, recipient.expires_at)
    reads_as = (f"reads as domain '{recipient.reader}': its own products, and every other domain's public ones"
                if recipient.kind == "domain" else "reads as an outsider: public products only")
    print(f"{'rotated' if args.rotate else 'created'} a token for '{recipient.name}' ({reads_as})")
    print(f"  expires {recipient.expires_at:%Y-%m-%d %H:%M} UTC ({args.expires} days)")
    print(f"  profile {profile.resolve()} (mode 0600; the token is in this file only: send it to the recipient "
          f"securely; endpoint {args.endpoint})")
    return EXIT_OK


def revoke(args) -> int:
    from mesh_core.share.recipients import Recipients

    with _instance(args) as instance:
        before = Recipients(instance).get(args.recipient)
        recipient = Recipients(instance).revoke(args.recipient)
    when = f"{recipient.revoked_at:%Y-%m-%d %H:%M:%S} UTC"
    print(f"'{recipient.name}' was already revoked on {when}" if before.revoked_at else
          f"revoked the token of '{recipient.name}' at {when}: its profile no longer opens anything")
    return EXIT_OK


def list_(args) -> int:
    from mesh_core.share.recipients import Recipients

    with _instance(args) as instance:
        recipients = Recipients(instance).list()
    if args.json:
        print(json.dumps([r.as_dict() for r in recipients], indent=2))
        return EXIT_OK
    if not recipients:
        print("no recipients yet: `mesh share token create NAME --profile FILE` creates one")
        return EXIT_OK
    print(f"{'recipient':24} {'kind':8} {'state':8} {'created (UTC)':16} {'expires (UTC)':16}")
    for r in recipients:
        print(f"{r.name:24} {r.kind:8} {r.state:8} {r.created_at:%Y-%m-%d %H:%M} {r.expires_at:%Y-%m-%d %H:%M}")
    return EXIT_OK


def usage(args) -> int:
    import dagster as dg

    from mesh_core.cli.command import prepare
    from mesh_core.declare.inputs import Input
    from mesh_core.errors import MeshError
    from mesh_core.governance.workspace import did_you_mean
    from mesh_core.run.readers import mesh_readers

    workspace, _ = prepare(args)
    for name in args.domain or ():
        workspace.location(name)  # an unknown domain: a usage error that names the candidates
    wanted = None
    if args.product:
        try:
            wanted = Input(args.product)
        except ValueError as exc:
            raise MeshError(str(exc)) from None
        known = [str(ref) for ref in workspace.products()]
        if str(wanted.ref) not in known:
            raise MeshError(f"No product '{wanted.ref}' in the workspace{did_you_mean(str(wanted.ref), known)}; "
                            "`mesh catalog` lists them.")
    domains = [wanted.ref.domain] if wanted else args.domain
    with dg.DagsterInstance.get() as instance:
        found = mesh_readers(workspace, instance, window_days=args.window_days, domains=domains)
    if wanted:
        found = {wanted.ref: found[wanted.ref]}
        if wanted.major is not None:
            found = {ref: readers.of_major(wanted.major) for ref, readers in found.items()}
    if args.json:
        print(json.dumps([readers.as_dict() for readers in found.values()], indent=2))
        return EXIT_OK
    rows = [(str(ref), r) for ref, readers in found.items() for r in readers.readers or (None,)]
    width = max([32, *(len(r.name) + 9 for _, r in rows if r)])  # room for " (pinned)"
    print(f"readers over the last {args.window_days} day(s): products that read it (lineage) and recipients' queries")
    print(f"{'product':40} {'major':>5}  {'reader':{width}} {'kind':9} {'reads':>7} {'rows':>11}  last read (UTC)")
    for product, r in rows:
        if r is None:
            print(f"{product:40} {'-':>5}  (nobody)")
            continue
        name = f"{r.name} (pinned)" if r.pinned else r.name
        print(f"{product:40} {'-' if r.major is None else r.major:>5}  {name:{width}} {r.kind:9} "
              f"{'-' if r.reads is None else f'{r.reads:,}':>7} {'-' if r.rows is None else f'{r.rows:,}':>11}  "
              f"{(r.last_read or '-').replace('T', ' ')[:19]}")
    return EXIT_OK
