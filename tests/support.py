"""Helpers for tests: temp Dagster homes and the real `mesh` command."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
WORKSPACES = FIXTURES / "workspaces"
MESH = Path(sys.executable).parent / "mesh"


EXAMPLE_DOMAINS = ("reference", "fleet", "operations", "weather", "insights")


def workspace_domains(workspace: Path | None = None) -> list[str]:
    from mesh_core.governance.workspace import read_entries

    return [entry.name for entry in read_entries(workspace or REPO / "workspace.yaml")]


def needs_example(*domains: str):
    """A test of the example mesh's own data or code: skipped, saying why, in a mesh whose user removed
    those example domains (`mesh remove domain`). A test of the framework never uses this."""
    import pytest

    missing = [d for d in domains or EXAMPLE_DOMAINS if d not in workspace_domains()]
    return pytest.mark.skipif(bool(missing), reason=f"covers the example mesh; {', '.join(missing)} not in workspace.yaml")


def is_live(spec) -> bool:
    """A product that runs: every status but retired (retired products are not materialized)."""
    from mesh_core.declare.lifecycle import Lifecycle, Status

    return Lifecycle.from_metadata(spec.metadata).status is not Status.RETIRED


def free_name(workspace: Path, stem: str) -> str:
    """A domain name the workspace does not use and no folder under domains/ holds: `stem`, else
    `stem_2`, ... (a user may already have followed the README's example)."""
    from mesh_core.governance.workspace import read_entries

    taken = {entry.name for entry in read_entries(workspace)} | {p.name for p in (workspace.parent / "domains").iterdir()}
    return next(name for name in (stem, *(f"{stem}_{i}" for i in range(2, 1000))) if name not in taken)


def copy_repository(dest: Path) -> Path:
    """The repository's files as a fresh clone has them (tracked, and new ones not ignored), at `dest`.
    In a copy that is not a git checkout (the generated-mesh test's), every file but the ignored kinds."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True)
    if listed.returncode != 0 or not (REPO / ".git").exists():
        ignored = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache",
                                         "build", "dist", "artifacts", ".mesh-removed-*")
        shutil.copytree(REPO, dest, ignore=lambda folder, names: set(ignored(folder, names)) | (
            {n for n in names if n != "dagster.yaml"} if Path(folder).name == "dagster_home" else set()))
        return dest
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = REPO / name
        if source.is_file():  # a file deleted but not yet committed is listed too
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def helm_deployments(root: Path) -> dict[str, list[str]]:
    """{user deployment name: its server arguments} of the repository's Helm values at `root`."""
    import yaml

    values = yaml.safe_load((root / "deploy" / "helm" / "values.yaml").read_text())
    return {d["name"]: d.get("dagsterApiGrpcArgs") or d.get("codeServerArgs")
            for d in values["dagster-user-deployments"]["deployments"]}


def commit_on_main(repo: Path, who: str = "t") -> Path:
    """Make `repo` a git repository whose branch main holds one commit of everything in it."""
    for command in (["init", "-q", "-b", "main"], ["add", "-A"],
                    ["-c", f"user.name={who}", "-c", f"user.email={who}@example.com", "commit", "-qm", "base"]):
        subprocess.run(["git", *command], cwd=repo, check=True, capture_output=True)
    return repo


def make_dagster_home(root: Path) -> Path:
    """A fresh instance folder with the repository's dagster.yaml."""
    home = root / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    return home


def mesh_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MESH_DATA_DIR"}
    env["DAGSTER_HOME"] = str(home)
    return env


def run_mesh(*args: str, home: Path, cwd: Path = REPO, timeout: float = 900,
             env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the installed `mesh` console script, by default from the repository root."""
    return subprocess.run(
        [str(MESH), *args], cwd=cwd, env={**mesh_env(home), **(env_extra or {})}, capture_output=True, text=True,
        timeout=timeout,
    )


def run_dagster(*args: str, home: Path, cwd: Path = REPO, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real `dagster` CLI of this environment."""
    return subprocess.run(
        [sys.executable, "-m", "dagster", *args], cwd=cwd, env=mesh_env(home), capture_output=True, text=True, timeout=timeout
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- a running `mesh dev` / dagster webserver ------------------------------------------------

STARTUP_SECONDS = 300
LOCATIONS = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def graphql(port: int, query: str, **variables) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def stop(process: subprocess.Popen) -> None:
    """Stop dagster dev and every process it started (webserver, daemon, code servers)."""
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def wait_for_locations(port, process, log_path) -> list[dict]:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, log_path.read_text()
        try:
            entries = graphql(port, LOCATIONS)["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                return entries
        except OSError:
            pass
        time.sleep(2)
    raise AssertionError(f"dagster dev did not load every location in {STARTUP_SECONDS}s:\n{log_path.read_text()}")


def run_in_engine(product, frames: dict, folder: Path):
    """The product in its engine: each input a pyarrow dataset over Parquet files (what the IO manager
    reads from a port) handed over as the product asks, the output read back from Mesh's Arrow stream."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    from mesh_core.run.engines import EngineSession

    with EngineSession(product, spill_dir=str(folder)) as session:
        handed = {}
        for param, frame in frames.items():
            path = folder / f"{param}.parquet"
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
            handed[param] = session.hand_over(ds.dataset([str(path)]), product.read_as[param])
        output = session.run_sql(handed) if product.sql is not None else product.fn(**handed)
        return session.stream(output).read_all().to_pandas()
