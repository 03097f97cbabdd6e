"""The framework's tests hold for any valid mesh, not only the example: the tests marked `workspace`
(their expectations come from workspace.yaml) run again, unchanged, in a copy of the repository with
a generated domain for each optional setting (tests/generated_mesh.py); then `mesh remove domain`
takes each generated domain out and leaves the copy as it was."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import yaml

from mesh_core.governance.workspace import MeshWorkspace
from tests.generated_mesh import KINDS, add_domains
from tests.support import REPO, copy_repository, make_dagster_home, run_mesh

NESTED_TIMEOUT = 2400


def test_the_workspace_tests_hold_on_a_mesh_with_a_generated_domain_of_each_optional_setting(tmp_path):
    copy = copy_repository(tmp_path / "mesh")
    home = make_dagster_home(tmp_path)
    before = {path: (copy / path).read_bytes() for path in ("workspace.yaml", "deploy/helm/values.yaml")}
    snapshots_before = {p.relative_to(copy): p.read_bytes() for p in (copy / "domains").glob("*/snapshots/*")}

    def mesh(*args):
        return run_mesh(*args, "-w", str(copy / "workspace.yaml"), home=home, cwd=copy)

    added = add_domains(copy)
    assert len(added) == len(KINDS)
    for step in (("contracts", "update"), ("deploy", "helm")):  # what the README says to run after adding by hand
        done = mesh(*step)
        assert done.returncode == 0, (step, done.stdout + done.stderr)
    lint = mesh("lint")
    assert lint.returncode == 0 and "0 violation(s)" in lint.stdout, lint.stdout + lint.stderr
    domains = len(yaml.safe_load((copy / "workspace.yaml").read_text())["load_from"])

    # The same test files, byte for byte, run by pytest in the copy: REPO there is the copy.
    assert (copy / "tests" / "support.py").read_bytes() == (REPO / "tests" / "support.py").read_bytes()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MESH_DATA_DIR", "DAGSTER_HOME"))}
    started = time.monotonic()
    tests = subprocess.run([sys.executable, "-m", "pytest", "-m", "workspace", "-q", "-p", "no:cacheprovider",
                            "-n", "2", "--dist", "loadfile", "tests"],
                           cwd=copy, env=env, capture_output=True, text=True, timeout=NESTED_TIMEOUT)
    elapsed = time.monotonic() - started
    summary = (tests.stdout.strip().splitlines() or [""])[-1]
    products = subprocess.run([sys.executable, "-c", "from mesh_core.governance.workspace import MeshWorkspace; "
                               "print(len(MeshWorkspace.load('workspace.yaml').products()))"],
                              cwd=copy, capture_output=True, text=True, check=True).stdout.strip()
    print(f"generated mesh: {domains} domains, {products} products ({len(added)} generated domains); "
          f"workspace tests: {summary} in {elapsed:.0f} s")
    assert tests.returncode == 0, tests.stdout[-6000:] + tests.stderr[-2000:]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary and "error" not in summary, summary

    # Out again, one command per domain, consumers before what they read; the copy is as it was.
    workspace = MeshWorkspace.load(REPO / "workspace.yaml")
    for name in reversed(added):
        removed = mesh("remove", "domain", name)
        assert removed.returncode == 0, (name, removed.stdout + removed.stderr)
        assert not (copy / "domains" / name).exists() and name not in (copy / "workspace.yaml").read_text()
    assert {path: (copy / path).read_bytes() for path in before} == before
    assert {p.relative_to(copy): p.read_bytes() for p in (copy / "domains").glob("*/snapshots/*")} == snapshots_before
    lint = mesh("lint")
    assert lint.returncode == 0 and f"in {len(workspace.locations)} domain(s)" in lint.stdout, lint.stdout + lint.stderr
