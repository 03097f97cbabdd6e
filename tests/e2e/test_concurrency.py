"""Different domains materializing at the same moment, in separate processes."""

from __future__ import annotations

import json
import subprocess

import dagster as dg
import pytest

from mesh_core import DomainStorage
from mesh_core.governance.workspace import MeshWorkspace
from tests.support import MESH, REPO, make_dagster_home, mesh_env, run_mesh

pytestmark = pytest.mark.workspace


def test_a_producer_its_consumer_and_a_second_run_of_the_producer_at_once_without_lock_errors(tmp_path, monkeypatch):
    home = make_dagster_home(tmp_path)
    first = run_mesh("materialize", home=home)
    assert first.returncode == 0, first.stdout + first.stderr

    # A producer republishes twice at once while a domain that reads it runs; a third domain writes its own store.
    workspace = MeshWorkspace.load(REPO / "workspace.yaml")
    edges = [(upstream, loc.name) for loc in workspace.domain_order() for _, upstream in loc.inputs()
             if upstream.domain != loc.name]
    if not edges:
        pytest.skip("no domain of this mesh reads another's product")
    product, consumer = edges[0]
    producer = product.domain
    third = [loc.name for loc in workspace.locations if loc.name not in (producer, consumer)][:1]
    domains = [producer, consumer, *third, producer]
    processes = [
        subprocess.Popen([str(MESH), "materialize", "--json", "-d", name], cwd=REPO, env=mesh_env(home),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in domains
    ]
    outputs = [process.communicate(timeout=600) for process in processes]
    for name, process, (out, err) in zip(domains, processes, outputs):
        assert process.returncode == 0, f"{name}: {out}\n{err}"
        assert "IOException" not in err and "Conflicting lock" not in err
        assert json.loads(out)["published"] == len(json.loads(out)["domains"][0]["products"]) >= 1

    # Both runs of operations committed their own version, one after the other; the store holds the last.
    storage = DomainStorage(home / "data", producer)
    producer_runs = {d["run_id"] for out, _ in outputs for d in json.loads(out)["domains"] if d["domain"] == producer}
    assert len(producer_runs) == 2 and producer_runs <= {v.run_id for v in storage.history(product)}
    assert storage.warehouse.recorded_version(product.product) == storage.current(product).version

    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert len(runs) == len(workspace.locations) + len(domains)
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
