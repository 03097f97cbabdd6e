"""`mesh new domain NAME --standalone DIR`: a domain in a repository and a virtualenv of its own.

The repository holds the domain's package (`NAME/`, the same files `mesh new domain` writes under
`domains/`), a `pyproject.toml` depending on this very `mesh-core`, its `requirements.lock`, a
`workspace.yaml` listing only itself, tests that load and lint it, a Makefile (venv from the lock,
test, lint, materialize, registry publish, lock) and `.ci/run`. A mesh lists it with Dagster's own
keys, `executable_path: DIR/.venv/bin/python` and `working_directory: DIR`, so the domain runs its
own library versions beside the others.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

from mesh_core.errors import MeshError
from mesh_core.selfserve.plan import Plan
from mesh_core.selfserve.scaffold import FIRST_PRODUCT, _check_name, _check_owner, _test, domain_package

DISTRIBUTION = "mesh-core"
LOCK = "requirements.lock"
LOCK_SECONDS = 600


def mesh_core_version() -> str:
    """The installed mesh-core's version (mesh_core.__version__; the root package is not imported from here)."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise MeshError(f"{DISTRIBUTION} is not installed as a distribution here (mesh_core is imported from a folder), "
                        f"so a domain cannot pin its version; install it: pip install <its wheel>, or `make` in its "
                        "repository.") from None


def plan_standalone_domain(directory: Path, name: str, owner: str, description: str | None = None,
                           mesh_core_wheel: Path | None = None) -> Plan:
    """Every file of the domain's repository at `directory` (which must be empty or absent)."""
    directory = Path(directory).resolve()
    _check_name("domain", name)
    _check_owner(owner)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise MeshError(f"{directory} is not an empty folder; a domain's repository starts in a new or empty one: "
                        "name another folder with --standalone.")
    clash = importlib.util.find_spec(name) if "." not in name else None
    if clash is not None:
        raise MeshError(f"'{name}' is already a module in this environment ({clash.origin or 'a package'}); a domain "
                        f"in its own repository is the top-level package {name}/, so choose another domain name.")
    find_links = wheel_folder(mesh_core_wheel) if mesh_core_wheel is not None else None
    summary = description or f"The {name} domain."
    plan = Plan()
    for file, data in domain_package(name, owner, description, name).items():
        plan.create[directory / name / file] = data
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    files = {
        "pyproject.toml": _pyproject(name, summary),
        "Makefile": _makefile(name, find_links, python),
        "workspace.yaml": _workspace(name),
        "README.md": _readme(name, summary, directory),
        ".gitignore": ".venv/\ndagster_home/\n__pycache__/\n*.egg-info/\nbuild/\n",
        ".ci/run": _ci(name),
        "tests/__init__.py": "",
        f"tests/test_{name}.py": _test(name, FIRST_PRODUCT, source=True, package=name),
        "tests/test_definitions.py": _definitions_test(name),
    }
    for file, text in files.items():
        plan.create[directory / file] = text.encode()
    plan.executable.add(directory / ".ci" / "run")
    return plan


def wheel_folder(wheel: Path) -> Path:
    """The folder to find mesh-core's wheel in (`--find-links`): the wheel's own, or the folder given."""
    wheel = Path(wheel).expanduser().resolve()
    version = mesh_core_version()
    wheels = [wheel] if wheel.is_file() else sorted(wheel.glob("mesh_core-*.whl")) if wheel.is_dir() else []
    if not wheels:
        raise MeshError(f"--mesh-core-wheel {wheel}: no such wheel file or folder of mesh_core-*.whl wheels; build it "
                        "with `pip wheel --no-deps -w dist <the mesh-core repository>`.")
    if not any(re.fullmatch(rf"mesh_core-{re.escape(version)}-.+\.whl", w.name) for w in wheels):
        raise MeshError(f"--mesh-core-wheel {wheel}: holds {', '.join(w.name for w in wheels)}, not mesh-core {version}, "
                        f"which this `mesh` is and the domain will depend on; build the wheel of mesh-core {version}.")
    return wheel.parent if wheel.is_file() else wheel


def find_uv() -> str | None:
    """uv on the PATH, else beside this interpreter (mesh-core's test extra installs it in the virtualenv)."""
    beside = Path(sys.executable).parent / "uv"
    return shutil.which("uv") or (str(beside) if beside.is_file() else None)


def lock(directory: Path, find_links: Path | None) -> str | None:
    """Pin the domain's dependencies with hashes in requirements.lock (`make lock` runs the same).
    None when done; otherwise why not, for the user to fix and run `make lock`."""
    uv = find_uv()
    if uv is None:
        return "uv is not installed (`pip install uv`)"
    command = [uv, "pip", "compile", "pyproject.toml", "--extra", "test", "--generate-hashes", "--quiet",
               "--python-version", f"{sys.version_info.major}.{sys.version_info.minor}", "-o", LOCK]
    if find_links is not None:
        command += ["--find-links", str(find_links)]
    try:
        done = subprocess.run(command, cwd=directory, capture_output=True, text=True, timeout=LOCK_SECONDS)
    except subprocess.TimeoutExpired:
        return f"uv pip compile did not finish in {LOCK_SECONDS} s (is the package index reachable?)"
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        if f"{DISTRIBUTION}==" in detail and find_links is None:
            detail += (f"\n(mesh-core is not on your package index: pass --mesh-core-wheel, or set MESH_CORE_WHEELS "
                       "for `make lock`, to the folder holding its wheel)")
        return f"uv pip compile failed:\n{detail}"
    return None


# -- the repository's files -------------------------------------------------------------------

def _distribution_name(name: str) -> str:
    return f"{name.replace('_', '-')}-domain"


def _uv_pin() -> str:
    """The uv that mesh-core's own tests pin, so `make lock` works from the domain's venv too."""
    try:
        requires = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        requires = []
    return next((r.split(";")[0].strip() for r in requires if re.match(r"uv\s*[=<>~!]", r)), "uv")


def _pyproject(name: str, summary: str) -> str:
    return f'''[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "{_distribution_name(name)}"
version = "0.1.0"
description = {summary!r}
requires-python = ">=3.11,<3.13"
# The domain's own libraries go here too; `make lock` re-pins requirements.lock after a change.
dependencies = ["{DISTRIBUTION}=={mesh_core_version()}"]

[project.optional-dependencies]
test = ["pytest>=8", "{_uv_pin()}"]

[tool.setuptools.packages.find]
include = ["{name}*"]

# The domain ships its data files, contract snapshots and SQL products' queries with its code.
[tool.setuptools.package-data]
"{name}" = ["data/*", "snapshots/*.yaml", "*.sql"]

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
filterwarnings = ["ignore::DeprecationWarning"]
'''


def _makefile(name: str, find_links: Path | None, python: str) -> str:
    return f'''# The {name} domain: its own virtualenv, built from requirements.lock (uv when it is installed, else pip).
PYTHON ?= python3
PYTHON_VERSION ?= {python}
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-from-lock
# The folder holding mesh-core's wheel when your package index does not have it (empty: the index only).
MESH_CORE_WHEELS ?= {find_links or ""}
FIND_LINKS := $(if $(MESH_CORE_WHEELS),--find-links $(MESH_CORE_WHEELS))
UV ?= $(or $(shell command -v uv 2>/dev/null),$(wildcard $(BIN)/uv))
HOME_ENV := DAGSTER_HOME=$(or $(DAGSTER_HOME),$(CURDIR)/dagster_home)

# The mesh's contract registry (the other domains' contracts, and this domain's readers) comes from
# $MESH_REGISTRY_URI, which every mesh command below reads: set it in the environment or in CI.
.PHONY: venv test lint materialize publish lock

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
ifneq ($(UV),)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	$(UV) pip install --quiet --python $(BIN)/python --require-hashes $(FIND_LINKS) -r requirements.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
else
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-deps --require-hashes $(FIND_LINKS) -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
endif
	touch $(STAMP)

## The domain's tests, among them: it loads, and `mesh lint` passes
test: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

## The mesh's rules on this domain
lint: $(STAMP)
	$(HOME_ENV) $(BIN)/mesh lint

## Run the domain's products into the Dagster home (DAGSTER_HOME, else ./dagster_home)
materialize: $(STAMP)
	$(HOME_ENV) $(BIN)/mesh materialize

## Publish the domain's contracts to the mesh's registry ($$MESH_REGISTRY_URI)
publish: $(STAMP)
	$(BIN)/mesh registry publish -d {name}

## Re-pin requirements.lock after changing pyproject.toml (a library, or the mesh-core version)
lock:
	@test -n "$(UV)" || {{ echo "make lock needs uv: pip install uv" >&2; exit 2; }}
	$(UV) pip compile pyproject.toml --extra test --python-version $(PYTHON_VERSION) --generate-hashes $(FIND_LINKS) -o requirements.lock
'''


def _workspace(name: str) -> str:
    return f'''# The {name} domain, this repository's one code location. A mesh lists it in its own workspace.yaml
# with Dagster's keys for another virtualenv: executable_path: <this folder>/.venv/bin/python and
# working_directory: <this folder>.
load_from:
  - python_module:
      module_name: {name}.definitions
      location_name: {name}
      working_directory: .
'''


def _ci(name: str) -> str:
    return f'''#!/bin/sh
# CI of the {name} domain: its virtualenv from the lock, its tests (which load it and run `mesh lint`).
set -eu
cd "$(dirname "$0")/.."
make test
'''


def _definitions_test(name: str) -> str:
    return f'''"""The domain loads as its code location and passes the mesh's rules (`mesh lint`)."""

import os
import subprocess
import sys
from pathlib import Path

from {name}.definitions import defs

ROOT = Path(__file__).resolve().parents[1]


def test_every_product_belongs_to_the_domain():
    keys = [spec.key.path for spec in defs.resolve_all_asset_specs() if "mesh/version" in spec.metadata]
    assert keys, "the domain publishes no product"
    assert all(key[0] == "{name}" for key in keys), keys


def test_mesh_lint_passes(tmp_path):
    lint = subprocess.run([sys.executable, "-m", "mesh_core.cli", "lint", "-w", str(ROOT / "workspace.yaml")], cwd=ROOT,
                          capture_output=True, text=True, env={{**os.environ, "DAGSTER_HOME": str(tmp_path)}})
    assert lint.returncode == 0, lint.stdout + lint.stderr
'''


def _readme(name: str, summary: str, directory: Path) -> str:
    return f'''# {name}

{summary} A domain of the mesh in a repository and a virtualenv of its own: it depends on
`{DISTRIBUTION}=={mesh_core_version()}` and pins every library in `{LOCK}`.

```bash
make test          # .venv from {LOCK}, then the tests: the products run, the domain loads, `mesh lint` passes
make lint          # the mesh's rules
make materialize   # run the products into DAGSTER_HOME (default ./dagster_home)
make publish       # its contracts to the mesh's registry ($MESH_REGISTRY_URI)
make lock          # re-pin {LOCK} after changing pyproject.toml
```

`.ci/run` is what CI runs. The products are in `{name}/products.py`, their contracts in
`{name}/contracts.py`, suites in `{name}/suites.py`; `.venv/bin/mesh contracts update` writes the
snapshots of its public contracts to `{name}/snapshots/` (commit them).

Upgrade a library (or mesh-core) by changing `dependencies` in `pyproject.toml`, then `make lock` and
`make test`. If your package index does not have mesh-core, `make MESH_CORE_WHEELS=<folder> lock`
names the folder holding its wheel.

## The other domains: the contract registry

This repository holds only this domain's code. The products it reads from other domains, and the
readers of its own products, are in the mesh's contract registry (a folder or `s3://bucket/prefix`,
the platform team says which). Name it, in CI too, and every command reads it:

```bash
export MESH_REGISTRY_URI=s3://mesh-registry/prod   # or: --registry URI on any mesh command
make test          # the tests' `mesh lint` checks this domain's inputs against the registry
make lint          # without the registry, an input from another domain "does not exist"
.venv/bin/mesh contracts update   # snapshots, and {name}/snapshots/{name}.consumers.yaml: the
                                  # expectations the registry's readers rely on, run in this domain's audits
make publish       # after the tests pass: this domain's contracts and reads, for the others
```

S3 is configured from the environment (AWS_ENDPOINT_URL, AWS_REGION and the credentials).
A domain that reads no other domain needs no registry to test and lint.

A mesh runs this domain from this virtualenv when its `workspace.yaml` lists it so:

```yaml
  - python_module:
      module_name: {name}.definitions
      location_name: {name}
      working_directory: {directory}
      executable_path: {directory}/.venv/bin/python
```
'''
