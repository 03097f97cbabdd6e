"""Two domain repositories written by `mesh new domain --standalone`, as their teams change them: the
producer (tides) makes its product active; the consumer (moorings) reads it, relying on two of its
columns and an expectation, on another numpy than the producer's. Each repository is locked and has
its own virtualenv, with mesh-core from the wheel built from this repository. Shared by the
end-to-end tests of standalone domains (test_standalone.py, test_standalone_registry.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

from tests.support import MESH, copy_repository, make_dagster_home, mesh_env

BIN = Path(sys.executable).parent  # this environment's tools: uv (mesh-core's test extra), dagster-webserver
PRODUCER, CONSUMER = "tides", "moorings"
OTHER_NUMPY = "2.3.5"  # the consumer's; the producer locks the newest numpy mesh-core allows
TIMINGS: dict[str, float] = {}


def report_timings(request, module: str) -> None:
    """Where the module's minutes go, in the terminal summary of the run."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    for label, seconds in TIMINGS.items():
        reporter.write_line(f"{module}: {seconds:7.1f} s  {label}")
    TIMINGS.clear()  # the next module's are its own


PRODUCER_PRODUCTS = '''"""The tides domain's data products."""

import pandas as pd

from tides import contracts, suites
from mesh_core import data_product, package_data_path


@data_product(
    domain="tides",
    description="One row per tide record the domain ships in data/records.csv.",
    owners=["team:tides"],
    contract=contracts.RecordsContract,
    suite=suites.RECORDS,
    version="1.0.0",
)
def records() -> pd.DataFrame:
    return pd.read_csv(package_data_path("tides", "data", "records.csv"))
'''

CONSUMER_PRODUCT = '''

class SeenContract(pa.DataFrameModel):
    record_id: Series[int] = pa.Field(unique=True, description="The tides record read.")
    numpy_version: Series[str] = pa.Field(description="The numpy of the interpreter that ran the product.")

    class Config:
        strict = True
        coerce = True
'''

CONSUMER_READS = '''

import numpy as np

from mesh_core import Expectation, Input


@data_product(
    domain="moorings",
    description="One row per record of tides.records, with the numpy that read it.",
    owners=["team:moorings"],
    contract=contracts.SeenContract,
    suite=[Expectation("ExpectColumnValuesToNotBeNull", column="record_id")],
    version="1.0.0",
    status="draft",
    # It relies on two of the producer's columns, and on names that are one lowercase word.
    inputs={"source": Input("tides.records", columns=["record_id", "name"], expectations=[
        Expectation("ExpectColumnValuesToMatchRegex", column="name", regex="^[a-z]+$", name="names_are_words")])},
)
def seen(source: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"record_id": source["record_id"], "numpy_version": np.__version__})
'''


def timed(label: str, *args, **kwargs) -> subprocess.CompletedProcess:
    started = time.perf_counter()
    done = subprocess.run(*args, capture_output=True, text=True, **kwargs)
    TIMINGS[label] = TIMINGS.get(label, 0.0) + time.perf_counter() - started
    return done


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"{done.args}\n{done.stdout}\n{done.stderr}"
    return done


def with_uv() -> dict[str, str]:
    """The environment the domains' Makefiles run in: this environment's uv on the PATH."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def build_wheel(work: Path) -> Path:
    """mesh-core's wheel, from a copy of the repository in `work` (a build writes beside the sources)."""
    source = copy_repository(work / "mesh")
    ok(timed("pip wheel mesh-core", [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"),
                                     str(source)]))
    return next((work / "dist").glob("*.whl"))


def scaffold_domains(wheel: Path, root: Path) -> dict[str, Path]:
    """The producer and the consumer, each scaffolded in a repository of its own under `root`, changed
    by its team, locked and with its own virtualenv."""
    home = make_dagster_home(root)
    folders = {name: root / name for name in (PRODUCER, CONSUMER)}
    for name, folder in folders.items():
        done = ok(timed("mesh new domain --standalone (with its lock)",
                        [str(MESH), "new", "domain", name, "--owner", f"team:{name}", "--standalone", str(folder),
                         "--mesh-core-wheel", str(wheel)], cwd=root, env=mesh_env(home)))
        assert "wrote requirements.lock" in done.stdout, done.stdout
    producer, consumer = folders[PRODUCER], folders[CONSUMER]
    # The producer makes its product active (it promises its contract); the consumer reads it, on another numpy.
    (producer / PRODUCER / "products.py").write_text(PRODUCER_PRODUCTS)
    contracts = producer / PRODUCER / "contracts.py"
    contracts.write_text(contracts.read_text().replace("TODO: describe this column.", "A field of the tide record."))
    with open(consumer / CONSUMER / "contracts.py", "a") as out:
        out.write(CONSUMER_PRODUCT)
    with open(consumer / CONSUMER / "products.py", "a") as out:
        out.write(CONSUMER_READS)
    definitions = consumer / CONSUMER / "definitions.py"
    definitions.write_text(definitions.read_text().replace("import records", "import records, seen")
                           .replace("[records]", "[records, seen]"))
    pyproject = consumer / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        'dependencies = ["mesh-core==', f'dependencies = ["numpy=={OTHER_NUMPY}", "mesh-core=='))
    ok(timed("make lock (consumer, after its numpy pin)", ["make", "lock"], cwd=consumer, env=with_uv()))
    for name, folder in folders.items():
        ok(timed("make venv (uv, from the lock)", ["make", "venv"], cwd=folder, env=with_uv()))
    ok(timed("mesh contracts update (producer)", [str(producer / ".venv" / "bin" / "mesh"), "contracts", "update"],
             cwd=producer, env=mesh_env(home)))
    return folders


def numpy_of(folder: Path) -> str:
    return ok(subprocess.run([str(folder / ".venv" / "bin" / "python"), "-c", "import numpy; print(numpy.__version__)"],
                             capture_output=True, text=True)).stdout.strip()


class Mesh:
    """One registry, one Dagster home and data folder shared by the domains, and each domain's own `mesh`."""

    def __init__(self, domains: dict[str, Path], uri: str, env: dict[str, str], root: Path):
        self.domains, self.uri, self.root = domains, uri, root
        home = make_dagster_home(root)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("MESH_", "AWS_", "PYTHON"))}
        self.env = {**base, **with_uv(), **env, "DAGSTER_HOME": str(home), "MESH_DATA_DIR": str(root / "data"),
                    "MESH_REGISTRY_URI": uri}
        self.env.pop("PYTHONPATH", None)

    def run(self, domain: str, *args: str, label: str | None = None, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
        folder = self.domains[domain]
        return timed(label or f"mesh {args[0]} ({domain})", [str(folder / ".venv" / "bin" / "mesh"), *args], cwd=folder,
                     env={**self.env, "MESH_PUBLISHED_BY": f"ci-{domain}", **(env or {})}, timeout=600)

    def make(self, domain: str, target: str) -> subprocess.CompletedProcess:
        return timed(f"make {target}", ["make", target], cwd=self.domains[domain],
                     env={**self.env, "MESH_PUBLISHED_BY": f"ci-{domain}"}, timeout=600)

    def registry(self):
        """The registry, read by this process (cheaper than a `mesh registry show` per check, and the same store)."""
        from mesh_core.storage.registry import Registry

        return Registry.at(self.uri)

    def state(self):
        with mock.patch.dict(os.environ, {k: v for k, v in self.env.items() if k.startswith("AWS_")}):
            return self.registry().read()

    def history(self) -> list[dict]:
        with mock.patch.dict(os.environ, {k: v for k, v in self.env.items() if k.startswith("AWS_")}):
            return self.registry().history()

    def publish_both(self) -> None:
        for domain in (PRODUCER, CONSUMER):
            done = ok(self.make(domain, "publish"))
            assert f"{domain} published to {self.uri} as entry" in done.stdout, done.stdout
