"""`make bench` (lint): `mesh lint` on the example mesh and on a generated mesh of 50 domains x
20 products, against loading the same workspace without governance (MeshWorkspace.load),
each measured in a fresh process, medians of REPEATS.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPEATS = 3
DOMAINS, PRODUCTS = 50, 20

MEASURE = """
import sys, time
from pathlib import Path
started = time.perf_counter()
if sys.argv[2] == "lint":
    from mesh_core.lint import lint_mesh
    report = lint_mesh(Path(sys.argv[1]))
    assert not report.load_errors, report.load_errors
else:
    from mesh_core.workspace import MeshWorkspace
    MeshWorkspace.load(Path(sys.argv[1]))
print(time.perf_counter() - started)
"""

CONTRACT = '''
import pandera.pandas as pa
from pandera.typing import Series

from mesh_core import Expectation


class ItemsContract(pa.DataFrameModel):
    item_id: Series[int] = pa.Field(unique=True, ge=0, description="The item.")
    label: Series[str] = pa.Field(description="Its label.")

    class Config:
        strict = True
        coerce = True


SUITE = [Expectation("ExpectColumnValuesToNotBeNull", column="label")]
'''


def generate(root: Path) -> Path:
    """50 domains, each a code location of 20 products; each domain reads one product of the previous one."""
    (root / "gen").mkdir()
    (root / "gen" / "__init__.py").write_text("")
    (root / "gen" / "contract.py").write_text(CONTRACT)
    entries = []
    for d in range(DOMAINS):
        name = f"domain_{d:02d}"
        products = []
        for p in range(PRODUCTS):
            reads = f', inputs={{"upstream": "domain_{d - 1:02d}.product_00"}}' if d and p == 0 else ""
            args = "upstream" if reads else ""
            products.append(textwrap.dedent(f'''
                @data_product(domain="{name}", name="product_{p:02d}", description="One row per item {p}.",
                              owners=["team:{name}"], contract=ItemsContract, suite=SUITE{reads})
                def product_{p:02d}({args}):
                    return None
            '''))
        module = "from gen.contract import SUITE, ItemsContract\nfrom mesh_core import data_product, domain_definitions\n"
        module += "".join(products)
        module += f"\ndefs = domain_definitions(\"{name}\", [{', '.join(f'product_{p:02d}' for p in range(PRODUCTS))}])\n"
        (root / "gen" / f"{name}.py").write_text(module)
        entries.append(f"  - python_module: {{module_name: gen.{name}, location_name: {name}, working_directory: .}}")
    workspace = root / "workspace.yaml"
    workspace.write_text("load_from:\n" + "\n".join(entries) + "\n")
    subprocess.run([sys.executable, "-m", "mesh_core.cli", "contracts", "update", "-w", str(workspace)], cwd=root,
                   check=True, capture_output=True)
    return workspace


def measure(workspace: Path, mode: str) -> float:
    runs = [float(subprocess.run([sys.executable, "-c", MEASURE, str(workspace), mode], cwd=workspace.parent,
                                 check=True, capture_output=True, text=True).stdout) for _ in range(REPEATS)]
    return statistics.median(runs)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for label, workspace in (("example mesh (5 domains, 9 products)", REPO / "workspace.yaml"),
                                 (f"generated mesh ({DOMAINS} domains x {PRODUCTS} products)", generate(Path(tmp)))):
            load, lint = measure(workspace, "load"), measure(workspace, "lint")
            print(f"{label}: load {load:.2f} s, lint {lint:.2f} s, ratio lint/load {lint / load:.2f}")


if __name__ == "__main__":
    main()
