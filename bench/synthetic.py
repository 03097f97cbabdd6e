"""Benchmarks 3 and 4 on generated meshes: per-product overhead, growth, code-location load.

A generated mesh has D domains (one code location each) of P products; each product publishes
ROWS rows under a small Pandera contract and a one-expectation GX suite; product_00 of domain d
reads product_00 of domain d-1, so the domains run in a chain. The baseline
(bench/baseline_synthetic.py) does the same work in a plain script.

3. `mesh materialize` on 10 x 10 (20 x 10 with BENCH_FULL=1) against the baseline: the overhead
   per product is (Mesh - baseline) / products. `mesh lint` at 10, 25, 50 domains x 20 products
   and `mesh materialize` at 2, 5, 10 domains x 10 (to 20 x 10 and 50 x 20 with BENCH_FULL=1):
   the time per added product shows whether growth is linear.
4. Importing one domain's code location (its Definitions built) against a plain Dagster
   module with the same assets and checks, importing pandas and Pandera; GX must not load.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BIN, REPEATS, REPO, Table, alternate, median, run_alone, scratch, timed  # noqa: E402

ROWS = 1_000

CONTRACT = '''
import pandas as pd
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


def items(n: int, seed: int) -> pd.DataFrame:
    return pd.DataFrame({"item_id": range(n), "label": [f"item {seed}-{i}" for i in range(n)]})
'''


def generate(root: Path, domains: int, products: int, rows: int = ROWS) -> Path:
    """The mesh's workspace.yaml under root (package `gen`), with its contract snapshots."""
    (root / "gen").mkdir(parents=True)
    (root / "gen" / "__init__.py").write_text("")
    (root / "gen" / "contract.py").write_text(CONTRACT)
    entries = []
    for d in range(domains):
        name = f"domain_{d:02d}"
        module = "from gen.contract import SUITE, ItemsContract, items\nfrom mesh_core import data_product, domain_definitions\n"
        for p in range(products):
            reads = d and p == 0
            inputs = f', inputs={{"upstream": "domain_{d - 1:02d}.product_00"}}' if reads else ""
            body = "return upstream.assign(label=upstream['label'] + '.')" if reads else f"return items({rows}, {d * products + p})"
            module += textwrap.dedent(f'''
                @data_product(domain="{name}", name="product_{p:02d}", description="One row per item {p}.",
                              owners=["team:{name}"], contract=ItemsContract, suite=SUITE, access="public"{inputs})
                def product_{p:02d}({"upstream" if reads else ""}):
                    {body}
            ''')
        module += f"\ndefs = domain_definitions(\"{name}\", [{', '.join(f'product_{p:02d}' for p in range(products))}])\n"
        (root / "gen" / f"{name}.py").write_text(module)
        entries.append(f"  - python_module: {{module_name: gen.{name}, location_name: {name}, working_directory: .}}")
    workspace = root / "workspace.yaml"
    workspace.write_text("load_from:\n" + "\n".join(entries) + "\n")
    subprocess.run([sys.executable, "-m", "mesh_core.cli", "contracts", "update", "-w", str(workspace)], cwd=root,
                   check=True, capture_output=True)
    return workspace


def materialize(workspace: Path, home: Path):
    return timed([BIN / "mesh", "materialize", "-w", workspace, "--dagster-home", home], cwd=workspace.parent)


def baseline(workspace: Path, out: Path, domains: int, products: int):
    return timed([sys.executable, REPO / "bench" / "baseline_synthetic.py", out, domains, products, ROWS],
                 cwd=workspace.parent, env={"PYTHONPATH": str(workspace.parent)})


def per_product(table: Table, work: Path) -> float:
    """Returns Mesh's median time for the mesh (a point of the growth series too)."""
    domains, products = (20, 10) if os.environ.get("BENCH_FULL") else (10, 10)
    print(f"3. per-product overhead, generated mesh {domains} x {products}", flush=True)
    workspace = generate(work / "mesh-20x10", domains, products)
    theirs, ours = alternate(lambda i: baseline(workspace, work / f"base-{i}", domains, products),
                             lambda i: materialize(workspace, work / f"home-{i}"), label=f"{domains}x{products}")
    n = domains * products
    b, m = median(theirs), median(ours)
    overhead = (m - b) / n
    table.add(f"3. `mesh materialize`, generated {domains} x {products} ({ROWS:,} rows each)", f"{b:.1f} s", f"{m:.1f} s",
              f"{m / b:.2f}x", "-", None)
    table.add("   overhead per product, (Mesh - baseline) / products", "-", f"{overhead:.3f} s", "-", "<= 0.1 s",
              overhead <= 0.1)
    return m


def growth(table: Table, work: Path, at_largest: float) -> None:
    print("3. growth: `mesh lint` at 10/25/50 x 20, `mesh materialize` at 2/5/10 x 10 (BENCH_FULL: to 20 x 10, 50 x 20)",
          flush=True)
    lint = {}
    for domains in (10, 25, 50):
        workspace = generate(work / f"lint-{domains}", domains, 20)
        lint[domains] = [timed([BIN / "mesh", "lint", "-w", workspace], cwd=workspace.parent) for _ in range(REPEATS)]
        print(f"  lint {domains} x 20: {median(lint[domains]):.2f} s", flush=True)
    cells = ", ".join(f"{d}: {median(s):.2f} s" for d, s in lint.items())
    slope = (median(lint[50]) - median(lint[10])) / (40 * 20)
    table.add("3. `mesh lint` at 10 / 25 / 50 domains x 20", "-", cells, "-", "linear", None,
              note=f"{slope * 1000:.1f} ms per added product")
    full = bool(os.environ.get("BENCH_FULL"))
    largest = (20, 10) if full else (10, 10)
    sizes = [(2, 10), (5, 10)] + ([(10, 10), (50, 20)] if full else [])
    seconds = {}
    for domains, products in sizes:  # medians too: one run is at the mercy of a neighbour's spike
        workspace = generate(work / f"mat-{domains}x{products}", domains, products)
        repeats = 1 if (domains, products) == (50, 20) else REPEATS
        seconds[(domains, products)] = median([materialize(workspace, work / f"mat-home-{domains}x{products}-{i}")
                                               for i in range(repeats)])
        print(f"  materialize {domains} x {products}: {seconds[(domains, products)]:.1f} s", flush=True)
    seconds[largest] = at_largest
    cells = ", ".join(f"{d}x{p}: {s:.1f} s" for (d, p), s in sorted(seconds.items(), key=lambda x: x[0][0] * x[0][1]))
    slope = (at_largest - seconds[(2, 10)]) / (largest[0] * largest[1] - 20)
    table.add("3. `mesh materialize` growth, domains x products", "-", cells, "-", "linear", None,
              note=f"{slope:.3f} s per added product")


PLAIN = '''
"""The same assets, checks and contract without Mesh: a plain Dagster module."""
import dagster as dg
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series


class ItemsContract(pa.DataFrameModel):
    item_id: Series[int] = pa.Field(unique=True, ge=0)
    label: Series[str]

    class Config:
        strict = True
        coerce = True


def product(name, deps):
    @dg.asset(key=["domain_05", name], deps=deps, group_name="domain_05", owners=["team:domain_05"],
              description="One row per item.", metadata={"contract": "ItemsContract"},
              check_specs=[dg.AssetCheckSpec("contract", asset=["domain_05", name], blocking=True),
                           dg.AssetCheckSpec("label_not_null", asset=["domain_05", name], blocking=True)])
    def _asset(context):
        return None
    return _asset


defs = dg.Definitions(assets=[product(f"product_{p:02d}", [["domain_04", "product_00"]] if p == 0 else [])
                              for p in range(PRODUCTS)])
'''

LOAD = """
import importlib, sys, time
started = time.perf_counter()
module = importlib.import_module(sys.argv[1])
module.defs.get_repository_def()  # built as a code server builds it
assert "great_expectations" not in sys.modules, "GX was imported at load"
print(time.perf_counter() - started)
"""


def location_load(table: Table, work: Path) -> None:
    products = 20
    print(f"4. code-location load: one generated domain of {products} products vs plain Dagster", flush=True)
    workspace = generate(work / "load", 6, products)
    (workspace.parent / "gen" / "plain.py").write_text(PLAIN.replace("PRODUCTS", str(products)))
    load = lambda module: timed([sys.executable, "-c", LOAD, module], cwd=workspace.parent,  # noqa: E731
                                env={"PYTHONPATH": str(workspace.parent)})
    theirs, ours = alternate(lambda i: load("gen.plain"), lambda i: load("gen.domain_05"), label="load")
    # Whole process (interpreter, imports, definitions) and the import alone, as the child printed it.
    b, m = median(theirs), median(ours)
    table.add(f"4. code-location load, {products} products (process)", f"{b:.2f} s", f"{m:.2f} s", f"{m / b:.2f}x",
              "<= 1.1x", m / b <= 1.1, note="GX not imported (asserted)")
    mem_b, mem_m = median(theirs, "peak_mb"), median(ours, "peak_mb")
    table.add("   peak RSS at load", f"{mem_b:.0f} MB", f"{mem_m:.0f} MB", f"{mem_m / mem_b:.2f}x", "-", None)
    example = [timed([sys.executable, "-c", LOAD, "domains.insights.definitions"]) for _ in range(REPEATS)]
    table.add("   example insights location load (process)", "-", f"{median(example):.2f} s", "-", "-", None)


def main(table: Table, *, full_growth: bool = True) -> None:
    with scratch("mesh-bench-synthetic-") as work:
        location_load(table, work)
        at_largest = per_product(table, work)
        if full_growth:
            growth(table, work, at_largest)


if __name__ == "__main__":
    run_alone(main)
