"""`mesh registry publish|show|history`: a domain's entry into the contract registry, and what it holds."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from mesh_core.cli.command import EXIT_FAILED, EXIT_OK, add_command

def register(commands) -> None:
    group = commands.add_parser("registry", help="the contract registry: publish a domain's entry, show it, its history")
    actions = group.add_subparsers(dest="registry_command", metavar="COMMAND", required=True)
    publish_ = add_command(actions, "publish", "write a domain's contracts, owners, lifecycle and reads into the registry, "
                                               "unless they break what registered readers rely on", publish,
                           json_help="print the result as JSON")
    publish_.add_argument("-d", "--domain", required=True, help="the domain to publish (a code location of the workspace)")
    publish_.add_argument("--by", help="who publishes (default: $MESH_PUBLISHED_BY, else `git config user.name`, else $USER)")
    show_ = add_command(actions, "show", "what the registry holds: domains, products, access, status, majors, owners, readers",
                        show, json_help="print the entry as JSON")
    show_.add_argument("what", nargs="?", metavar="DOMAIN[.PRODUCT]", help="one domain, or one product (default: all)")
    show_.add_argument("--at", type=_seq, metavar="SEQ", help="as entry SEQ left it (see `mesh registry history`)")
    history_ = add_command(actions, "history", "who published what when: seq, time, by, domain, changes", history,
                           json_help="print the records as JSON")
    history_.add_argument("domain", nargs="?", help="only this domain's publishes")


def _seq(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an entry of the registry: entries are numbered from 1")
    return int(text)


def open_registry(args):
    """The registry the command names, or a usage error saying both ways to name it."""
    from mesh_core.errors import MeshError
    from mesh_core.storage.registry import ENV, Registry, registry_uri

    uri = registry_uri(getattr(args, "registry", None))
    if uri is None:
        raise MeshError(f"No contract registry given: pass --registry URI (a folder, file:///path or s3://bucket/prefix) "
                        f"or set ${ENV}.")
    return Registry.at(uri)


def published_by(workspace: Path) -> str | None:
    """$MESH_PUBLISHED_BY, else the git user of the workspace's repository, else $USER."""
    if os.environ.get("MESH_PUBLISHED_BY", "").strip():
        return os.environ["MESH_PUBLISHED_BY"].strip()
    try:
        name = subprocess.run(["git", "config", "user.name"], cwd=workspace.parent, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        name = ""
    return name or os.environ.get("USER", "").strip() or None


def publish(args) -> int:
    from mesh_core.errors import MeshError, WorkspaceError
    from mesh_core.governance.publish import publish_domain
    from mesh_core.governance.workspace import MeshWorkspace

    registry = open_registry(args)
    path = Path(args.workspace).resolve()
    by = args.by or published_by(path)
    if not by:
        raise MeshError(f"Who publishes to {registry.uri}? Pass --by NAME, or set $MESH_PUBLISHED_BY.")
    workspace, failures = MeshWorkspace.load_partial(path)
    failed = next((f for f in failures if f.name == args.domain), None)
    if failed is not None:
        raise WorkspaceError(f"{args.domain} was not published to {registry.uri}: its {failed}")
    result = publish_domain(workspace, args.domain, registry, by=by)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    elif result.refused:
        for violation in result.refused:
            print(f"  error    {violation}")
        print(f"{args.domain} was not published to {registry.uri} (entry {result.base} stays current): "
              f"{len(result.refused)} problem(s).")
    elif result.unchanged:
        print(f"{args.domain} is unchanged in {registry.uri} (entry {result.base}): nothing written.")
    else:
        print(f"{args.domain} published to {registry.uri} as entry {result.seq} by {by}:")
        for line in result.changes:
            print(f"  {line}")
    return EXIT_FAILED if result.refused else EXIT_OK


def show(args) -> int:
    from mesh_core.errors import MeshError
    from mesh_core.governance.workspace import did_you_mean

    registry = open_registry(args)
    state = registry.entry_at(args.at) if args.at else registry.read()
    domain, _, product = (args.what or "").partition(".")
    if domain and domain not in state.domains:
        raise MeshError(f"The registry at {state.uri} (entry {state.seq}) has no domain '{domain}'"
                        f"{did_you_mean(domain, state.domains)}; domains: {', '.join(sorted(state.domains)) or 'none'}.")
    with _readable(state, domain):
        products = dict(state.domains[domain]["products"]) if domain else {}
    if product and product not in products:
        raise MeshError(f"Domain '{domain}' in the registry at {state.uri} (entry {state.seq}) has no product "
                        f"'{product}'{did_you_mean(product, products)}; products: {', '.join(sorted(products)) or 'none'}.")
    readers = _readers(state)
    if args.json:
        if product:
            document = {"product": args.what, **products[product], "readers": readers.get(args.what, [])}
        elif domain:
            document = state.domains[domain]
        else:
            document = {"uri": state.uri, "seq": state.seq, "written": dict(state.written or {}),
                        "domains": {name: state.domains[name] for name in state.domains}}
        print(json.dumps(document, indent=2))
        return EXIT_OK
    written = state.written or {}
    print(f"registry {state.uri} at entry {state.seq}"
          + (f" (written {written.get('at')} by {written.get('by')}: {written.get('domain')})" if written else ""))
    if product:
        with _readable(state, domain):
            _show_product(f"{domain}.{product}", products[product], readers, detail=True)
        return EXIT_OK
    for name in sorted(state.domains) if not domain else [domain]:
        entry = state.domains[name]
        with _readable(state, name):
            print(f"{name} (mesh-core {entry.get('mesh_core')}): {len(entry.get('products', {}))} product(s)")
            for item in sorted(entry.get("products", {})):
                _show_product(f"{name}.{item}", entry["products"][item], readers, detail=False)
            for read in entry.get("reads", []):
                print(f"  reads {_pinned(read)} as {read['consumer']} (input '{read['input']}'"
                      + (f", columns {', '.join(read['columns'])}" if read.get("columns") is not None else ", every column")
                      + ")")
    return EXIT_OK


@contextmanager
def _readable(state, domain: str):
    """An entry in a shape mesh-core never writes (hand-edited, another tool): one line naming it, not a traceback."""
    from mesh_core.errors import RegistryError

    try:
        yield
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise RegistryError(f"Domain {domain}'s entry in the registry at {state.uri} (entry {state.seq}) is not what "
                            f"mesh-core writes ({type(exc).__name__}: {exc}). Fix: republish it from its repository "
                            f"(`mesh registry publish -d {domain}`); `mesh registry history {domain}` shows who wrote "
                            "it.") from None


def _show_product(ref: str, item: dict, readers: dict[str, list[dict]], *, detail: bool) -> None:
    lifecycle = item.get("lifecycle") or {}
    majors = sorted(item.get("contracts", {}), key=lambda m: (not m.isdigit(), int(m) if m.isdigit() else 0), reverse=True)
    until = {str(p["major"]): p["until"] for p in item.get("previous_majors", [])}
    status = lifecycle.get("status") or "-"
    if lifecycle.get("deprecated_on"):
        status += f" (since {lifecycle['deprecated_on']}" + (f", successor {lifecycle['successor']})" if lifecycle.get("successor") else ")")
    print(f"  {ref:38} {item.get('access', '-'):8} {status:10} {item.get('version', '-'):8} "
          f"majors {', '.join(m + (f' (until {until[m]})' if m in until else '') for m in majors) or '-'}  "
          f"{', '.join(item.get('owners', []))}")
    found = readers.get(ref, [])
    print("    read by: " + (", ".join(sorted(f"{_reader(r)} ({', '.join(r.get('owners') or [])})" for r in found))
                             or "no registered reader"))
    if not detail:
        return
    for line in (item.get("description") or "").splitlines():
        print(f"    {line}")
    if item.get("objectives"):
        print(f"    objectives: {json.dumps(item['objectives'], sort_keys=True)}")
    for number in majors:
        columns = item["contracts"][number]["schema"][0]["properties"]
        print(f"    major {number} (version {item['contracts'][number].get('version')}): "
              + ", ".join(f"{c['name']} {c['physicalType']}{'' if c.get('required') else '?'}" for c in columns))
    for read in found:
        print(f"    {read['consumer']} reads " + (f"major {read['major']}" if read.get("major") is not None else "the current major")
              + ", "
              + (f"relies on {', '.join(read['columns'])}" if read.get("columns") is not None else "relies on every column")
              + (f", {len(read['expectations'])} expectation(s)" if read.get("expectations") else ""))


def _readers(state) -> dict[str, list[dict]]:
    """{product: the reads every domain registered of it}."""
    found: dict[str, list[dict]] = {}
    for name in state.domains:
        with _readable(state, name):
            for read in state.domains[name].get("reads", []):
                found.setdefault(read["product"], []).append(read)
    return found


def _pinned(read: dict) -> str:
    return read["product"] + (f"@{read['major']}" if read.get("major") is not None else "")


def _reader(read: dict) -> str:
    return read["consumer"] + (f"@{read['major']}" if read.get("major") is not None else "")


def history(args) -> int:
    registry = open_registry(args)
    records = registry.history(args.domain)
    if args.json:
        print(json.dumps(records, indent=2))
        return EXIT_OK
    if not records:
        print(f"no publish of {args.domain} in {registry.uri}" if args.domain else f"no publish in {registry.uri}",
              file=sys.stderr)
        return EXIT_OK
    print(f"{'seq':>5}  {'at (UTC)':25}  {'by':20}  {'domain':16}  changes")
    for record in records:
        changes = record.get("changes") or []
        changes = [str(c) for c in changes] if isinstance(changes, list) else [repr(changes)]
        changes = changes or (["removed"] if record.get("removed") else ["-"])
        print(f"{record['seq']:>5}  {str(record.get('at')):25}  {str(record.get('by')):20}  {str(record.get('domain')):16}  "
              f"{changes[0]}")
        for line in changes[1:]:
            print(f"{'':5}  {'':25}  {'':20}  {'':16}  {line}")
    return EXIT_OK

