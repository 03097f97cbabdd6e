"""Benchmark: `mesh preview` of one changed source product with all its downstream products, vs a plain
`mesh materialize` of the same products, at 1x and 10x flights (target: preview <= 1.5x materialize).

A git copy of the repository (base commit on main) has operations.flights changed in its working tree
(diverted flights dropped); the whole mesh is materialized once in its instance. Then, alternating:
`mesh preview` (what changed, the sandbox runs of operations.flights and every insights product, the
checks and a diff per product) and `mesh materialize -d operations -d insights` (the same products,
published for real into the same instance).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import BIN, Table, alternate, median, run_alone, scratch, timed  # noqa: E402

FACTOR = 10
CHANGE = ('    return pd.DataFrame(\n        {\n            "carrier"', '    frame = pd.DataFrame(\n        {\n            "carrier"')
TAIL = '\n    return frame[frame["status"] != "diverted"].reset_index(drop=True)\n'


def changed_copy(work: Path) -> Path:
    """The repository at `work`/mesh, committed on main, with operations.flights changed in the working tree."""
    from tests.support import commit_on_main, copy_repository

    repo = work / "mesh"
    repo.mkdir()
    copy_repository(repo)
    commit_on_main(repo, "bench")
    products = repo / "domains" / "operations" / "products.py"
    text = products.read_text()
    if CHANGE[0] not in text:
        raise SystemExit("bench/preview.py edits operations.flights as the example writes it; its code changed.")
    products.write_text(text.replace(*CHANGE).rstrip("\n") + TAIL)
    return repo


def main(table: Table, *, ten_x: bool = True) -> None:
    from flights10x import generate

    with scratch("mesh-bench-preview-") as work:
        repo = changed_copy(work)
        factors = {1: ""}
        if ten_x:
            factors[FACTOR] = str(generate(work / f"flights{FACTOR}x", FACTOR))
        ratios = {}
        for factor, path in factors.items():
            print(f"preview at {factor}x flights", flush=True)
            home, env = work / f"home-{factor}x", {"PYTHONPATH": path}
            mesh = [str(BIN / "mesh")]
            first = timed([*mesh, "materialize", "--dagster-home", home], env=env, cwd=repo)
            print(f"  whole mesh published once: {first.seconds:.1f} s", flush=True)
            plain, preview = alternate(
                lambda i: timed([*mesh, "materialize", "--dagster-home", home, "-d", "operations", "-d", "insights"],
                                env=env, cwd=repo),
                lambda i: timed([*mesh, "preview", "--dagster-home", home, "--json"], env=env, cwd=repo),
                label=f"{factor}x: materialize | preview")
            m, p = median(plain), median(preview)
            ratios[factor] = p / m
            table.add(f"preview of operations.flights + downstream at {factor}x flights (vs `mesh materialize` of them)",
                      f"{m:.2f} s", f"{p:.2f} s", f"{p / m:.2f}x", "<= 1.5x", p / m <= 1.5,
                      note=f"peak {median(plain, 'peak_mb'):.0f} / {median(preview, 'peak_mb'):.0f} MB")


if __name__ == "__main__":
    run_alone(main)
