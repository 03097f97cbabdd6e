"""A domain in a virtualenv of its own, run by its own interpreter.

A workspace.yaml entry with Dagster's `executable_path` names another Python: a domain's own
repository and virtualenv (`mesh new domain --standalone`), with its own library versions. This
process cannot import that code, so `mesh materialize` asks that interpreter to run the domain:
`<executable_path> -m mesh_core.cli materialize -w <a workspace file listing just that entry> -d NAME
--json --delegated [--registry URI]`, in the same Dagster home and data folder and with the mesh's
contract registry, and reads its JSON summary.
(`--delegated`: the whole mesh's rules were checked here, with every domain; the domain's own
workspace lists none of the domains it reads.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from mesh_core.governance.workspace import WorkspaceEntry, read_entries


@dataclass(frozen=True)
class DelegatedRun:
    """What the domain's interpreter reported: its summary of the domain (None when it reported none), and why not."""

    entry: WorkspaceEntry
    summary: dict | None
    error: str = ""


def delegated_entries(workspace_path: Path) -> dict[str, WorkspaceEntry]:
    """The workspace's entries that run in another interpreter than this one, by domain."""
    here = os.path.abspath(sys.executable)
    return {entry.name: entry for entry in read_entries(Path(workspace_path))
            if entry.executable_path is not None and os.path.abspath(entry.executable_path) != here}


def run_delegated(entry: WorkspaceEntry, *, dagster_home: str, data_dir: str, registry: str | None = None,
                  verbose: bool = False, timeout: float | None = None) -> DelegatedRun:
    """Materialize the entry's domain with its own interpreter, in this Dagster home and data folder, with
    the registry this run names (`--registry`: the environment alone would not carry it)."""
    location = {"module_name": entry.module, "location_name": entry.name, "working_directory": entry.working_directory}
    with tempfile.TemporaryDirectory(prefix=f"mesh-delegated-{entry.name}-") as folder:
        workspace = Path(folder) / "workspace.yaml"
        workspace.write_text(yaml.safe_dump({"load_from": [{"python_module": location}]}, sort_keys=False))
        command = [entry.executable_path, "-m", "mesh_core.cli", "materialize", "-w", str(workspace), "-d", entry.name,
                   "--json", "--delegated", *(["--registry", registry] if registry else []),
                   *(["--verbose"] if verbose else [])]
        env = {**os.environ, "DAGSTER_HOME": dagster_home, "MESH_DATA_DIR": data_dir}
        try:
            done = subprocess.run(command, cwd=entry.working_directory, env=env, capture_output=True, text=True,
                                  timeout=timeout)
        except OSError as exc:
            return DelegatedRun(entry, None, f"could not start {entry.executable_path}: {exc.strerror or exc}. Fix "
                                             "executable_path in the workspace file, or build the domain's virtualenv "
                                             "(`make` in its repository).")
        except subprocess.TimeoutExpired:
            return DelegatedRun(entry, None, f"{entry.executable_path} did not finish in {timeout:.0f} s.")
    if verbose and done.stderr:
        sys.stderr.write(done.stderr)
    summary = _summary(done.stdout, entry.name)
    if summary is None:
        detail = (done.stderr or done.stdout).strip() or f"exit code {done.returncode}"
        return DelegatedRun(entry, None, f"{entry.executable_path} (the domain's own interpreter) did not run it "
                                         f"(exit code {done.returncode}):\n{detail}")
    return DelegatedRun(entry, summary)


def _summary(stdout: str, domain: str) -> dict | None:
    """The domain's part of `mesh materialize --json`'s summary (the JSON document ends the output)."""
    start = stdout.find("{")
    while start >= 0:
        try:
            document = json.loads(stdout[start:])
        except json.JSONDecodeError:
            start = stdout.find("\n{", start + 1)
            start = start + 1 if start >= 0 else -1
            continue
        return next((d for d in document.get("domains", []) if d.get("domain") == domain), None)
    return None
