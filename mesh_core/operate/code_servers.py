"""Dagster's production topology on one command: one gRPC code server per domain, and a workspace
that points the webserver and daemon at them.

`dagster dev` starts each code location as a child it owns; in production every domain's code
server is its own long-lived process (a container, in Kubernetes), redeployed alone, and the
webserver and daemon only talk to it over gRPC. `mesh up` does the same here: it reads
workspace.yaml (without importing any domain), starts `dagster code-server start` per domain,
writes the gRPC workspace, and then (unless `servers_only`) the webserver and the daemon.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from mesh_core.errors import MeshError
from mesh_core.governance.workspace import read_entries

DEFAULT_FIRST_PORT = 4266  # Dagster's default gRPC port; domain i listens on DEFAULT_FIRST_PORT + i
STARTUP_SECONDS = 300.0


@dataclass(frozen=True)
class CodeServer:
    """One domain's code server: where it listens and what it loads."""

    location: str
    module: str
    working_directory: str
    host: str
    port: int
    executable: str | None = None  # workspace.yaml's executable_path: the domain's own virtualenv

    def command(self) -> list[str]:
        return [self.executable or sys.executable, "-m", "dagster", "code-server", "start", "-h", self.host, "-p", str(self.port),
                "-m", self.module, "-d", self.working_directory, "--location-name", self.location]


def plan_code_servers(workspace: str | os.PathLike, *, host: str = "127.0.0.1",
                      first_port: int = DEFAULT_FIRST_PORT) -> list[CodeServer]:
    """One code server per code location in `workspace`, on consecutive ports from `first_port`
    (0: any free port)."""
    entries = read_entries(Path(workspace))
    ports = [_free_port(host) for _ in entries] if first_port == 0 else range(first_port, first_port + len(entries))
    return [CodeServer(entry.name, entry.module, entry.working_directory, host, port, entry.executable_path)
            for entry, port in zip(entries, ports)]


def grpc_workspace_yaml(servers: Sequence[CodeServer]) -> str:
    """The workspace a webserver or daemon uses to reach the running code servers."""
    lines = ["# Written by `mesh up`: one gRPC code server per domain (see docs/deploy.md).", "load_from:"]
    for server in servers:
        lines.append(f"  - grpc_server: {{host: {server.host}, port: {server.port}, location_name: {server.location}}}")
    return "\n".join(lines) + "\n"


class ServerGroup:
    """Processes started together and stopped together: if one dies, `wait` returns."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: list[str], *, cwd: str | None = None) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{name}.log", "ab") as log:
            # Its own process group: a code server runs the domain's code in a child process, which
            # must stop with it (on SIGTERM that child waits for heartbeats and RPCs for up to 90 s).
            process = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[name] = process
        return process

    def dead(self) -> list[str]:
        return [name for name, process in self.processes.items() if process.poll() is not None]

    def wait(self, poll_seconds: float = 1.0) -> str:
        """Block until one process exits; return its name."""
        while True:
            if gone := self.dead():
                return gone[0]
            time.sleep(poll_seconds)

    def stop(self, timeout: float = 30.0) -> None:
        """Interrupt every process with its children (SIGINT, as Ctrl-C would); SIGKILL what is left after `timeout` s."""
        for process in self.processes.values():
            _signal_group(process, signal.SIGINT)  # what Dagster's servers shut down cleanly on (Ctrl-C)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        while time.monotonic() < deadline and any(_group_alive(p) for p in self.processes.values()):
            time.sleep(0.2)
        for process in self.processes.values():
            _signal_group(process, signal.SIGKILL)
            process.wait()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):  # the whole group is gone already
        pass


def _group_alive(process: subprocess.Popen) -> bool:
    try:
        os.killpg(process.pid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def start_code_servers(group: ServerGroup, servers: Sequence[CodeServer], *, timeout: float = STARTUP_SECONDS,
                       on_ready: Callable[[CodeServer], None] = lambda server: None) -> None:
    """Start every domain's code server and wait until each answers; a server that exits or does
    not answer in `timeout` seconds is an error naming the domain and its log."""
    from dagster._grpc.client import DagsterGrpcClient

    for server in servers:
        group.start(f"code-server-{server.location}", server.command(), cwd=server.working_directory)
    waiting = list(servers)
    deadline = time.monotonic() + timeout
    while waiting:
        for server in list(waiting):
            log = group.log_dir / f"code-server-{server.location}.log"
            if group.processes[f"code-server-{server.location}"].poll() is not None:
                raise MeshError(f"The code server of domain '{server.location}' exited while starting; its log is {log}.")
            try:
                DagsterGrpcClient(port=server.port, host=server.host).ping("mesh")
            except Exception:  # not listening yet
                continue
            waiting.remove(server)
            on_ready(server)
        if waiting and time.monotonic() > deadline:
            raise MeshError(f"Code server(s) of {', '.join(s.location for s in waiting)} did not answer in {timeout:.0f} s; "
                            f"see their logs in {group.log_dir}.")
        time.sleep(0.5)


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
