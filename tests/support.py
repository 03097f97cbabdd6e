"""Helpers for tests: temp Dagster homes and the real `mesh` command."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
WORKSPACES = FIXTURES / "workspaces"
MESH = Path(sys.executable).parent / "mesh"


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
