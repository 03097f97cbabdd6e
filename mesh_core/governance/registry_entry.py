"""`python -P -m mesh_core.governance.registry_entry --module M --location NAME`: one code
location's registry entry, as one line of JSON on stdout.

The mesh runs this in a domain's own interpreter (workspace.yaml's `executable_path`), in the
entry's working directory, to learn what it publishes and reads without importing its code into
its own process. `-P` keeps the working directory off the path until the mesh-core of that
interpreter is imported (a monorepo's own `mesh_core/` folder must not shadow it). A location
that does not load prints `{"load_failure": {"message": ..., "violations": [...]}}` and exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
from pathlib import Path

from mesh_core.governance.registry import domain_entry
from mesh_core.governance.workspace import LoadFailure, load_location


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -P -m mesh_core.governance.registry_entry",
                                     description="print one code location's registry entry as JSON")
    parser.add_argument("--module", required=True, help="the module that defines the location's Definitions")
    parser.add_argument("--location", required=True, help="the code location's name (its domain)")
    args = parser.parse_args(argv)
    out = sys.stdout
    sys.path.insert(0, os.getcwd())  # like a code server: the module is found from its working directory
    with contextlib.redirect_stdout(sys.stderr):  # what the domain's code prints is not the entry
        loaded = load_location(args.location, args.module, Path("workspace.yaml").resolve())
        if isinstance(loaded, LoadFailure):
            document, code = {"load_failure": {"message": loaded.message,
                                               "violations": [dataclasses.asdict(v) for v in loaded.violations]}}, 1
        else:
            try:
                document, code = domain_entry(loaded), 0
            except Exception as exc:  # noqa: BLE001  # reported to the mesh, which names the location
                document, code = {"load_failure": {"message": f"{type(exc).__name__}: {exc}", "violations": []}}, 1
    out.write(json.dumps(document) + "\n")
    out.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
