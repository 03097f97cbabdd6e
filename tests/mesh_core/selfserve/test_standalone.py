"""`mesh new domain NAME --standalone DIR`'s plan: what it refuses, and the repository it writes.
(tests/e2e/test_standalone.py builds such repositories' virtualenvs and runs them.)"""

import os
import stat

import pytest
import yaml

from mesh_core import MeshError, __version__
from mesh_core.selfserve.standalone import plan_standalone_domain


def test_a_folder_that_holds_anything_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(MeshError, match=rf"{tmp_path} is not an empty folder.*--standalone"):
        plan_standalone_domain(tmp_path, "penguins", "team:penguins")


def test_a_name_that_is_already_a_module_here_is_refused(tmp_path):
    with pytest.raises(MeshError, match=r"'pandas' is already a module in this environment .* top-level package pandas/"):
        plan_standalone_domain(tmp_path / "repo", "pandas", "team:penguins")


def test_a_wheel_of_another_mesh_core_version_is_refused(tmp_path):
    wheel = tmp_path / "mesh_core-0.0.1-py3-none-any.whl"
    wheel.write_bytes(b"")
    with pytest.raises(MeshError, match=rf"holds mesh_core-0.0.1-py3-none-any.whl, not mesh-core {__version__}"):
        plan_standalone_domain(tmp_path / "repo", "penguins", "team:penguins", mesh_core_wheel=wheel)
    with pytest.raises(MeshError, match="no such wheel file or folder"):
        plan_standalone_domain(tmp_path / "repo", "penguins", "team:penguins", mesh_core_wheel=tmp_path / "absent.whl")


def test_the_repository_depends_on_this_mesh_core_and_lists_only_itself(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / f"mesh_core-{__version__}-py3-none-any.whl").write_bytes(b"")
    root = tmp_path / "repo"
    plan = plan_standalone_domain(root, "penguins", "team:penguins", mesh_core_wheel=wheels)
    plan.apply()
    import tomllib

    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == [f"mesh-core=={__version__}"]
    assert (yaml.safe_load((root / "workspace.yaml").read_text())["load_from"]
            == [{"python_module": {"module_name": "penguins.definitions", "location_name": "penguins",
                                   "working_directory": "."}}])
    assert f"MESH_CORE_WHEELS ?= {wheels}\n" in (root / "Makefile").read_text()
    assert "from penguins.products import records" in (root / "penguins" / "definitions.py").read_text()
    assert 'package_data_path("penguins", ' in (root / "penguins" / "products.py").read_text()
    assert "domains" not in (root / "tests" / "test_penguins.py").read_text()
    assert stat.S_IMODE((root / ".ci" / "run").stat().st_mode) == 0o755 and os.access(root / ".ci" / "run", os.X_OK)
