"""A small mesh to share, built the way Mesh builds one: ports published by `DomainStorage.publish`
in a temp folder, a workspace.yaml naming their domains (whose modules need not import: the server
never imports them), a real Dagster instance with real recipients, and a real uvicorn server."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from mesh_core.declare.lifecycle import Lifecycle, Status
from mesh_core.declare.ref import ProductRef
from mesh_core.storage.domain_storage import DomainStorage
from mesh_core.storage.retention import Retention
from tests.support import free_port, make_dagster_home

DOMAINS = ("ops", "insights", "fleet")


@dataclass
class Mesh:
    root: Path
    home: Path
    workspace: Path
    ports_uri: str
    instance: object
    tokens: dict[str, str] = field(default_factory=dict)
    frames: dict[tuple[str, int], pd.DataFrame] = field(default_factory=dict)  # (table, version) -> rows published
    declared: dict[str, dict] = field(default_factory=dict)  # table -> access and lifecycle it was published with

    def storage(self, domain: str, **kwargs) -> DomainStorage:
        return DomainStorage(self.root / "data", domain, **kwargs)

    def port(self, domain: str, product: str, major: int | None = None):
        return self.storage(domain).port(ProductRef(domain, product), major)


def write_workspace(path: Path, domains) -> Path:
    entries = [{"python_module": {"module_name": f"not_importable.{name}", "location_name": name,
                                  "working_directory": str(path.parent)}} for name in domains]
    path.write_text(json.dumps({"load_from": entries}))  # JSON is YAML
    return path


def build_mesh(root: Path) -> Mesh:
    import dagster as dg

    from mesh_core.instance.home import prepare_instance
    from mesh_core.share.recipients import Recipients

    home = make_dagster_home(root)
    prepare_instance(home)
    instance = dg.DagsterInstance.from_config(str(home))
    workspace = write_workspace(root / "workspace.yaml", DOMAINS)
    mesh = Mesh(root, home, workspace, "", instance)
    mesh.ports_uri = mesh.storage("ops").ports_uri
    today = date.today()

    def publish(domain, product, frame, *, version, access="public", lifecycle=Lifecycle(), major=None, **kwargs):
        storage = mesh.storage(domain, **kwargs)
        done = storage.publish(product, frame, version=version, access=access, run_id=f"run-{product}-{version}",
                               major=major, lifecycle=lifecycle)
        name = product if major is None else f"{product}_v{major}"
        mesh.frames[(f"{domain}.{name}", done.version.version)] = frame
        mesh.declared[f"{domain}.{name}"] = {"access": access, "lifecycle": lifecycle}
        return done.version

    for i in range(3):  # three published versions of the current major 2
        publish("ops", "flights", pd.DataFrame({"flight": [f"F{i}{n}" for n in range(5 + i)], "delay": range(5 + i)}),
                version=f"2.{i}.0")
    publish("ops", "flights", pd.DataFrame({"flight_no": ["OLD1", "OLD2"]}), version="1.9.0", major=1)
    publish("ops", "crew", pd.DataFrame({"name": ["ann", "bob"]}), version="1.0.0", access="internal")
    publish("ops", "plan", pd.DataFrame({"day": [1]}), version="0.1.0", lifecycle=Lifecycle(Status.DRAFT))
    publish("ops", "legacy", pd.DataFrame({"x": [1]}), version="1.0.0", lifecycle=Lifecycle(Status.RETIRED))
    publish("ops", "routes", pd.DataFrame({"route": ["A-B"]}), version="1.0.0",
            lifecycle=Lifecycle(Status.DEPRECATED, today + timedelta(days=30), ProductRef("ops", "flights")))
    publish("ops", "gates", pd.DataFrame({"gate": ["G1"]}), version="1.0.0",
            lifecycle=Lifecycle(Status.DEPRECATED, today - timedelta(days=1), ProductRef("ops", "flights")))
    publish("insights", "summary", pd.DataFrame({"total": [42]}), version="1.0.0", access="internal")
    prune = Retention(keep_versions=2, keep_hours=0)  # version 0 vacuumed: retention commits follow
    for i in range(4):
        publish("fleet", "aircraft", pd.DataFrame({"tail": [f"N{i}{n}" for n in range(i + 1)]}), version=f"1.{i}.0",
                retention=prune)
    recipients = Recipients(instance)
    for name in ("insights", "partner", "ops"):
        mesh.tokens[name] = recipients.create(name, domains=DOMAINS)[1]
    return mesh


@pytest.fixture(scope="package")
def mesh(tmp_path_factory) -> Mesh:
    built = build_mesh(tmp_path_factory.mktemp("shared_mesh"))
    yield built
    built.instance.dispose()


@contextmanager
def running(app, port: int | None = None):
    """`app` served by a real uvicorn on 127.0.0.1 in a thread; yields the endpoint URL."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/delta-sharing"
    finally:
        server.should_exit = True
        thread.join(10)


def make_app(mesh: Mesh, **kwargs):
    from mesh_core.share.server import sharing_app
    from mesh_core.share.signing import UrlSigner, url_secret

    signer = kwargs.pop("signer", None) or UrlSigner(url_secret(mesh.home), kwargs.pop("url_ttl", 900))
    return sharing_app(workspace=mesh.workspace, instance=mesh.instance, ports_uri=mesh.ports_uri, signer=signer, **kwargs)


@pytest.fixture(scope="package")
def endpoint(mesh):
    with running(make_app(mesh)) as url:
        yield url


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]


def call(url: str, *, token: str | None = None, method: str = "GET", body: bytes | dict | None = None,
         headers: dict | None = None) -> Answer:
    """One real HTTP request; any status comes back as an Answer (urllib raises for >= 400)."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if isinstance(body, dict):
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())
