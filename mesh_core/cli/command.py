"""What every `mesh` command shares: exit codes, common options, and the environment it runs in.

Exit codes: 0 success; 1 a product was not published (materialize), a rule was broken (lint) or
a repair failed; 2 a usage, definition or storage error (the message names what, where and the fix).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_common(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("-w", "--workspace", default="workspace.yaml", help="workspace file (default: %(default)s)")
    sub.add_argument("--dagster-home", help="Dagster instance folder (default: $DAGSTER_HOME, else ./dagster_home beside the workspace)")
    sub.add_argument("-v", "--verbose", action="store_true", help="show Dagster's logs and tracebacks")
    sub.add_argument("--registry", metavar="URI",
                     help="the contract registry: a folder or s3://bucket/prefix whose domains this workspace does "
                          "not list are read from their entries (default: $MESH_REGISTRY_URI; none if unset)")


def add_command(commands, name: str, help: str, run, *, domains: str | None = None,
                json_help: str | None = None) -> argparse.ArgumentParser:
    """A subcommand with the common options, and `-d`/`--json` where it takes them."""
    sub = commands.add_parser(name, help=help)
    add_common(sub)
    if domains:
        sub.add_argument("-d", "--domain", action="append", help=domains)
    if json_help:
        sub.add_argument("--json", action="store_true", help=json_help)
    sub.set_defaults(run=run)
    return sub


def home(args) -> Path:
    """Choose the environment in one place: the Dagster home, and with it the data folder."""
    from mesh_core.storage.domain_storage import resolve_data_dir, resolve_ports_uri

    workspace_path = Path(args.workspace).resolve()
    folder = Path(args.dagster_home or os.environ.get("DAGSTER_HOME") or workspace_path.parent / "dagster_home").resolve()
    os.environ["DAGSTER_HOME"] = str(folder)
    resolve_ports_uri(None, resolve_data_dir())  # a bad MESH_PORTS_URI stops here, before any run
    return folder


def registry_state(args):
    """The registry `--registry` names (else $MESH_REGISTRY_URI), read once: a RegistryState, or None
    when neither names one. A registry that cannot be read is a RegistryError naming its URI."""
    from mesh_core.storage.registry import Registry, registry_uri

    uri = registry_uri(getattr(args, "registry", None))
    return Registry.at(uri).read() if uri else None


def prepare(args) -> tuple:
    """The workspace (with the domains the registry adds, when one is named), and the Dagster
    instance (created once if new)."""
    from mesh_core.governance.workspace import MeshWorkspace
    from mesh_core.instance.home import prepare_instance

    folder = prepare_instance(home(args))
    return MeshWorkspace.load(Path(args.workspace).resolve(), registry=registry_state(args)), folder
