"""mesh_core's layers point one way and its modules import no circle (import-linter, pyproject.toml).

The contracts are checked on the real package, and each is shown to fail on a copy of the package
with one import added where it must not be: a check that cannot fail would prove nothing.
"""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def lint_imports(package_parent: Path, config_dir: Path) -> subprocess.CompletedProcess:
    """import-linter over the `mesh_core` found first on the path, with the repository's contracts."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache", "--no-logo", "--config",
         str(config_dir / "pyproject.toml")],
        cwd=config_dir, env={"PYTHONPATH": str(package_parent), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120)


def test_the_layers_point_one_way_and_no_module_imports_a_circle():
    result = lint_imports(ROOT, ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout, result.stdout


def test_every_subpackage_of_mesh_core_is_in_a_layer():
    # A package the layers do not name is checked by nothing: a new one must take its place in them.
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c["layers"] for c in contracts if c["type"] == "layers")
    named = {name.strip() for layer in layers for name in layer.split("|")}
    package = ROOT / "mesh_core"
    subpackages = {p.parent.name for p in package.glob("*/__init__.py")}
    assert subpackages <= named, f"not in any layer of pyproject.toml: {sorted(subpackages - named)}"
    # Besides the layers, only the public surface and the old instance path live at the top.
    loose = {p.stem for p in package.glob("*.py")} - named
    assert loose == {"__init__", "instance_storage"}, f"modules outside the layers: {sorted(loose)}"


@pytest.fixture
def copy(tmp_path) -> Path:
    """A copy of mesh_core and the contracts, to break on purpose."""
    shutil.copytree(ROOT / "mesh_core", tmp_path / "mesh_core", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.parametrize("module, line, importer, imported", [
    # A declaration that reaches up into what runs it.
    ("declare/names.py", "from mesh_core.run import assets", "mesh_core.declare.names", "mesh_core.run.assets"),
    # The old circle: a lazy import inside a function counts too.
    ("declare/product.py", "def _late():\n    from mesh_core.governance import policies",
     "mesh_core.declare.product", "mesh_core.governance.policies"),
    # Storage and the instance are independent of each other.
    ("storage/port.py", "from mesh_core.instance import home", "mesh_core.storage.port", "mesh_core.instance.home"),
    # The errors are the bottom: they import nothing of Mesh.
    ("errors.py", "import mesh_core.cli.main", "mesh_core.errors", "mesh_core.cli.main"),
])
def test_a_lower_layer_importing_a_higher_one_breaks_the_check(copy, module, line, importer, imported):
    path = copy / "mesh_core" / module
    path.write_text(path.read_text() + f"\n\n{line}\n")
    result = lint_imports(copy, copy)
    assert result.returncode == 1, f"adding `{line}` to {module} went unnoticed:\n{result.stdout}{result.stderr}"
    assert "BROKEN" in result.stdout and importer in result.stdout and imported in result.stdout, result.stdout


def test_a_circle_inside_one_layer_breaks_the_check(copy):
    # product imports ref; ref importing product back is a circle between siblings of one layer.
    path = copy / "mesh_core" / "declare" / "ref.py"
    path.write_text(path.read_text() + "\n\nfrom mesh_core.declare import product\n")
    result = lint_imports(copy, copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "No cycles are allowed in mesh_core.declare" in result.stdout and ".ref -> .product" in result.stdout, result.stdout
