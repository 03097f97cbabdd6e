"""`mesh`'s entry point: the parser built from each command group, and errors mapped to exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback

from mesh_core.cli import (contracts, deploy, dev, lint, materialize, new, preview, registry, remove, serve, share, status,
                           storage)
from mesh_core.cli.command import EXIT_OK, EXIT_USAGE

# In the order `mesh --help` lists them.
GROUPS = (materialize, preview, lint, contracts, registry, storage, status, share, serve, new, remove, dev, deploy)


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
    from mesh_core import __version__

    parser = argparse.ArgumentParser(prog="mesh", description="Run and inspect a data mesh on Dagster.")
    parser.add_argument("--version", action="version", version=f"mesh (mesh-core {__version__})")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.register(commands)
    return parser


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
