"""ODCS v3 out and in: every public product's exported contract passes the real `datacontract lint`,
and export -> import -> the same columns, checks and suite."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from mesh_core.declare.contract import column_specs, table_checks
from mesh_core.governance.odcs import import_source
from mesh_core.governance.workspace import MeshWorkspace
from tests.support import REPO, make_dagster_home, run_mesh

pytestmark = pytest.mark.workspace

DATACONTRACT_CLI = "datacontract-cli==1.2.8"


@pytest.fixture(scope="module")
def datacontract(tmp_path_factory):
    """The real datacontract CLI, in its own environment (its dependencies are not the project's)."""
    venv = tmp_path_factory.mktemp("datacontract") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", DATACONTRACT_CLI],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return venv / "bin" / "datacontract"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("odcs")
    run = run_mesh("contracts", "export", str(root / "contracts"), home=make_dagster_home(root))
    assert run.returncode == 0, run.stderr
    return root / "contracts"


def public_products():
    return {ref: spec for ref, (_, spec) in MeshWorkspace.load(REPO / "workspace.yaml").products().items()
            if spec.metadata["mesh/access"] == "public"}


def test_every_exported_contract_passes_datacontract_lint(exported, datacontract):
    files = sorted(exported.glob("*.odcs.yaml"))
    assert {f.name for f in files} == {f"{ref}.odcs.yaml" for ref in public_products()}
    for path in files:
        lint = subprocess.run([str(datacontract), "lint", str(path)], capture_output=True, text=True, timeout=120)
        assert lint.returncode == 0 and "Data contract is valid" in lint.stdout, (path.name, lint.stdout[-2000:])
        document = yaml.safe_load(path.read_text())
        assert document["servers"][0]["format"] == "delta" and document["dataProduct"] == path.name[:-len(".odcs.yaml")]
        assert all(column["logicalType"] for column in document["schema"][0]["properties"])


def test_export_then_import_gives_the_same_contract_and_suite(exported, tmp_path):
    import importlib
    import importlib.util

    for ref, spec in public_products().items():
        document = yaml.safe_load((exported / f"{ref}.odcs.yaml").read_text())
        source, skipped = import_source(document)
        path = tmp_path / f"imported_{ref.domain}_{ref.product}.py"
        path.write_text(source)
        loader = importlib.util.spec_from_file_location(path.stem, path)
        namespace = importlib.util.module_from_spec(loader)
        sys.modules[path.stem] = namespace  # Pandera resolves the annotations in the class's module
        loader.loader.exec_module(namespace)
        imported = next(v for k, v in vars(namespace).items() if k.endswith("Contract"))
        suite = next(v for k, v in vars(namespace).items() if k.endswith("_SUITE"))
        module = importlib.import_module(f"domains.{ref.domain}.products")
        product = getattr(module, ref.product)
        assert column_specs(imported) == column_specs(product.contract), ref
        custom = [check for check in table_checks(product.contract) if not check.startswith("unique(")]
        assert table_checks(imported) == [c for c in table_checks(product.contract) if c not in custom], ref
        assert sorted(skipped) == sorted(custom), ref  # frame-wide Python checks are named, not lost silently
        assert [item.as_dict() for item in suite] == [item.as_dict() for item in product.suite], ref
