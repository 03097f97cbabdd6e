"""OpenLineage events of real runs: the example mesh, a blocked publish, and the HTTP transport.

Every event is checked against the OpenLineage spec as openlineage-python generates it (spec 2-0-2
and its facets): each object is rebuilt through the generated attrs classes, so a missing or
unknown field, a bad run id or a bad time fails, and each facet must carry its own schema URL.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import attr
import dagster as dg
import pytest
from openlineage.client import event_v2
from openlineage.client.generated import base

from mesh_core.declare.metadata import meta_value
from mesh_core.governance.workspace import MeshWorkspace
from tests.support import REPO, WORKSPACES, make_dagster_home, run_mesh

FACET_MODULES = "openlineage.client.generated"


def _facet_class(schema_url: str):
    """The generated class a facet's `_schemaURL` names, e.g. .../SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet."""
    import importlib
    import pkgutil

    name = schema_url.rsplit("/", 1)[-1]
    package = importlib.import_module(FACET_MODULES)
    for module in pkgutil.iter_modules(package.__path__):
        cls = getattr(importlib.import_module(f"{FACET_MODULES}.{module.name}"), name, None)
        if cls is not None and attr.has(cls):
            return cls
    raise AssertionError(f"no OpenLineage facet class for {schema_url}")


def _build(cls, data):
    """Rebuild `data` as an instance of the generated attrs class `cls`, strictly."""
    attr.resolve_types(cls)
    fields = {f.alias if f.name.startswith("_") else f.name: f for f in attr.fields(cls) if f.init}
    unknown = set(data) - set(fields) - {"_producer", "_schemaURL", "schemaURL"}
    assert not unknown, f"{cls.__name__} has no field(s) {sorted(unknown)}"
    kwargs = {}
    for key, value in data.items():
        if key in {"_producer", "_schemaURL", "schemaURL"}:
            continue
        kwargs[key] = _value(fields[key].type, value)
    if "_producer" in data:
        kwargs["producer"] = data["_producer"]
    instance = cls(**kwargs)  # required fields and the generated validators (UUID, date-time, URI)
    if "_schemaURL" in data:
        assert data["_schemaURL"] == instance._get_schema(), (cls.__name__, data["_schemaURL"])
    return instance


def _value(kind, value):
    origin = getattr(kind, "__origin__", None)
    args = [a for a in getattr(kind, "__args__", ()) if a is not type(None)]
    if value is None:
        return None
    if origin is list:
        assert isinstance(value, list)
        return [_value(args[0], item) for item in value]
    if origin is dict:
        assert isinstance(value, dict)
        return {k: _build(_facet_class(v["_schemaURL"]), v) if isinstance(v, dict) and "_schemaURL" in v else v
                for k, v in value.items()}
    if len(args) == 1 and args[0] is not kind:  # X | None
        return _value(args[0], value)
    if isinstance(kind, type) and attr.has(kind):
        return _build(kind, value)
    if isinstance(kind, type) and issubclass(kind, base.EventType):
        return kind(value)
    return value


def validate(event: dict) -> event_v2.RunEvent:
    assert event["schemaURL"] == base.RunEvent._get_schema()
    return _build(event_v2.RunEvent, event)


def read_events(path: Path) -> list[dict]:
    events = [json.loads(line) for line in path.read_text().splitlines()]
    for event in events:
        validate(event)
    return events


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    home = make_dagster_home(tmp_path_factory.mktemp("openlineage"))
    run = run_mesh("materialize", "--json", home=home)
    assert run.returncode == 0, run.stdout + run.stderr
    return home, json.loads(run.stdout), read_events(home / "mesh" / "openlineage.jsonl")


@pytest.fixture(scope="module")
def workspace():
    return MeshWorkspace.load(REPO / "workspace.yaml")


def test_the_validator_rejects_what_the_spec_rejects(mesh):
    good = next(e for e in mesh[2] if e["eventType"] == "COMPLETE")
    broken = [
        {**good, "run": {**good["run"], "runId": "not-a-uuid"}},
        {**good, "eventTime": "2026-11-25"},
        {**good, "eventType": "FINISHED"},
        {**good, "job": {"name": good["job"]["name"]}},
        {**good, "outputs": [{**good["outputs"][0], "facets": {"schema": {
            **good["outputs"][0]["facets"]["schema"], "columns": []}}}]},
    ]
    for event in broken:
        with pytest.raises((AssertionError, TypeError, ValueError)):
            validate(event)


@pytest.mark.workspace
def test_each_product_has_a_start_then_a_complete_under_its_dagster_run(mesh, workspace):
    home, summary, events = mesh
    run_of = {p["product"]: d["run_id"] for d in summary["domains"] for p in d["products"]}
    for ref in workspace.products():
        mine = [e for e in events if e["job"]["name"] == str(ref)]
        assert [e["eventType"] for e in mine] == ["START", "COMPLETE"], (ref, [e["eventType"] for e in mine])
        assert mine[0]["run"]["runId"] == mine[1]["run"]["runId"]
        assert mine[0]["eventTime"] <= mine[1]["eventTime"]
        assert mine[1]["run"]["facets"]["parent"]["run"]["runId"] == run_of[str(ref)]
        assert mine[1]["outputs"][0]["name"] == str(ref)


@pytest.mark.workspace
def test_every_cross_domain_edge_is_an_input_dataset_with_the_version_read(mesh, workspace, monkeypatch):
    home, _, events = mesh
    complete = {e["job"]["name"]: e for e in events if e["eventType"] == "COMPLETE"}
    edges = {(str(up), str(down)) for location in workspace.locations for down, up in location.inputs()}
    cross = {(up, down) for up, down in edges if up.split(".")[0] != down.split(".")[0]}
    assert cross, "the workspace has no cross-domain edge to check"
    emitted = {(dataset["name"], name) for name, event in complete.items() for dataset in event["inputs"]}
    assert emitted == edges
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        for up, down in cross:
            dataset = next(d for d in complete[down]["inputs"] if d["name"] == up)
            published = instance.get_latest_materialization_event(dg.AssetKey(up.split(".")))
            version = published.asset_materialization.metadata["mesh/port_version"].value
            assert dataset["facets"]["version"]["datasetVersion"] == str(version), (up, down)


@pytest.mark.workspace
def test_outputs_carry_the_contract_schema_owners_and_every_check_as_an_assertion(mesh, workspace):
    _, _, events = mesh
    complete = {e["job"]["name"]: e for e in events if e["eventType"] == "COMPLETE"}
    checks = {}
    for location in workspace.locations:
        for key in location.defs.resolve_asset_graph().asset_check_keys:
            checks.setdefault(".".join(key.asset_key.path), set()).add(key.name)
    for ref, (_, spec) in workspace.products().items():
        output = complete[str(ref)]["outputs"][0]
        fields = [(f["name"], f["type"]) for f in output["facets"]["schema"]["fields"]]
        assert fields == [(c.name, c.type) for c in meta_value(spec.metadata, "dagster/column_schema").columns]
        assert {o["name"] for o in output["facets"]["ownership"]["owners"]} == set(spec.owners)
        assertions = output["facets"]["dataQualityAssertions"]["assertions"]
        assert {a["assertion"] for a in assertions} == checks[str(ref)]
        assert output["outputFacets"]["outputStatistics"]["rowCount"] > 0


def test_a_blocked_publish_emits_fail_with_the_failed_assertions(tmp_path):
    home = make_dagster_home(tmp_path)
    run = run_mesh("materialize", "-w", str(WORKSPACES / "broken_data.yaml"), home=home, cwd=WORKSPACES.parent)
    assert run.returncode == 1, run.stdout + run.stderr
    events = read_events(home / "mesh" / "openlineage.jsonl")
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    fail = events[1]
    assert "was not published" in fail["run"]["facets"]["errorMessage"]["message"]
    assertions = fail["outputs"][0]["facets"]["dataQualityAssertions"]["assertions"]
    failed = {a["assertion"] for a in assertions if not a["success"]}
    assert failed and all(a["severity"] in {"error", "warning"} for a in assertions)
    assert "outputStatistics" not in fail["outputs"][0].get("outputFacets", {})


class _Collector(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        self.received.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_openlineage_url_sends_the_events_over_http_instead(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    _Collector.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        home = make_dagster_home(tmp_path)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        run = run_mesh("materialize", "-w", str(WORKSPACES / "broken_data.yaml"), home=home, cwd=WORKSPACES.parent,
                       env_extra={"OPENLINEAGE_URL": url})
        assert run.returncode == 1, run.stdout + run.stderr
    finally:
        server.shutdown()
    assert [(path, body["eventType"]) for path, body in _Collector.received] == [
        ("/api/v1/lineage", "START"), ("/api/v1/lineage", "FAIL")]
    for _, body in _Collector.received:
        validate(body)
    assert not (home / "mesh" / "openlineage.jsonl").exists()


def test_an_unreachable_lineage_server_never_fails_a_publish(tmp_path):
    home = make_dagster_home(tmp_path)
    run = run_mesh("materialize", "-w", str(WORKSPACES / "supplier_buyer.yaml"), home=home, cwd=WORKSPACES.parent,
                   env_extra={"OPENLINEAGE__TRANSPORT__TYPE": "http", "OPENLINEAGE__TRANSPORT__URL": "http://127.0.0.1:9",
                              "OPENLINEAGE__TRANSPORT__RETRY": '{"total": 0, "connect": 0, "read": 0}'})
    assert run.returncode == 0, run.stdout + run.stderr
    with dg.DagsterInstance.from_config(str(home)) as instance:
        messages = [record.user_message for run_record in instance.get_runs() for record in instance.all_logs(run_record.run_id)]
    products = sum(len(loc.products) for loc in MeshWorkspace.load(WORKSPACES / "supplier_buyer.yaml").locations)
    warned = [m for m in messages if m.startswith("Could not emit the OpenLineage")]
    assert len(warned) == 2 * products, warned  # START and COMPLETE of each product, each only a warning
