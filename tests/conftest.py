"""Shared fixtures: every test gets its own Dagster instance and data folder in a temp dir."""

from __future__ import annotations

import sys
from pathlib import Path

import dagster as dg
import pytest

from tests.support import FIXTURES, make_dagster_home

# The fixture domains import as `fixture_domains.<name>`, as workspace.yaml files name them.
sys.path.insert(0, str(FIXTURES))


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path_factory):
    # Nothing a test does may reach the repository's own dagster_home.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path_factory.mktemp("unused_home")))
    monkeypatch.delenv("MESH_DATA_DIR", raising=False)
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "False")
    for name in [n for n in __import__("os").environ if n.startswith("OPENLINEAGE")]:
        monkeypatch.delenv(name)  # lineage goes to the test's own DAGSTER_HOME unless a test says otherwise


@pytest.fixture
def dagster_home(tmp_path, monkeypatch) -> Path:
    home = make_dagster_home(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def instance(dagster_home):
    with dg.DagsterInstance.get() as instance:
        yield instance


@pytest.fixture(scope="session")
def spark_server():
    """One real Spark Connect server per test worker (Spark from the pyspark wheel, on Java 17)."""
    from tests.spark_server import spark_connect_server

    with spark_connect_server() as server:
        yield server
