"""Mesh's instance storage (mesh_core/instance/pooled_sqlite.py) against Dagster's stock SQLite storage.

The same `mesh materialize` into new homes seeded with Mesh's dagster.yaml or the same file without
its `instance_class` (Dagster's own run and event-log storage over the same files), alternated: the
example mesh, and a generated 10 x 10 mesh (bench/synthetic.py). Not in the default `make bench`
(about 3 minutes): `make bench BENCH=instance`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synthetic  # noqa: E402
from harness import BIN, REPO, Table, interleave, median, run_alone, scratch, timed  # noqa: E402

from mesh_core.instance.home import instance_yaml  # noqa: E402

POOLED = instance_yaml()
STOCK = POOLED.replace("instance_class:\n  module: mesh_core.instance.pooled_sqlite\n  class: MeshInstance\n", "")


def main(table: Table) -> None:
    assert STOCK != POOLED, "Mesh's dagster.yaml no longer names its instance class as this benchmark expects"
    print("instance storage: Mesh's pooled SQLite storage vs Dagster's stock one", flush=True)
    with scratch("mesh-bench-instance-") as work:
        meshes = {"example mesh (5 domains, 9 products)": (REPO / "workspace.yaml", REPO),
                  "generated 10 x 10": (workspace := synthetic.generate(work / "10x10", 10, 10), workspace.parent)}
        for name, (workspace, cwd) in meshes.items():
            def run(config: str, label: str):
                def one(i: int):
                    home = work / f"{label}-{name[:3]}-{i}"
                    home.mkdir()
                    (home / "dagster.yaml").write_text(config)
                    return timed([BIN / "mesh", "materialize", "-w", workspace, "--dagster-home", home], cwd=cwd)
                return one

            stock, pooled = interleave({"stock": run(STOCK, "stock"), "Mesh": run(POOLED, "pooled")}, label=name)
            s, p = median(stock), median(pooled)
            table.add(f"   `mesh materialize`, {name}: stock instance storage vs Mesh's", f"{s:.2f} s", f"{p:.2f} s",
                      f"{p / s:.2f}x", "report", None)


if __name__ == "__main__":
    run_alone(main)
