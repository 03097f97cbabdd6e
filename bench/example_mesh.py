"""Benchmarks 1 and 2: the example mesh end to end, at 1x and at 10x flights, against
bench/baseline_mesh.py (the same work in a plain script).

1. `mesh materialize` (fresh DAGSTER_HOME: instance creation is counted) vs the baseline, and vs
   the same work as plain Dagster assets and checks on a stock instance (bench/baseline_dagster.py:
   what running on Dagster costs at all); then
   each side again into the same folders: an existing instance and published versions, as every
   run after the first one finds them (the baseline overwrites its Delta and DuckDB tables).
2. 10x flights (bench/flights10x.py, contract-valid): the upstream domains are published once
   per side (timed once), then `-d insights` alternates with the baseline's insights step, at 1x
   and at 10x; reports the 10x/1x time ratio and the peak RSS of `-d insights` at 10x.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BIN, REPO, Table, alternate, interleave, median, run_alone, scratch, timed  # noqa: E402

BASELINE = [sys.executable, str(REPO / "bench" / "baseline_mesh.py")]
PLAIN_DAGSTER = [sys.executable, str(REPO / "bench" / "baseline_dagster.py")]
MESH = [str(BIN / "mesh"), "materialize", "-w", str(REPO / "workspace.yaml")]
UPSTREAM = ["reference", "fleet", "operations", "weather"]
FACTOR = 10


def mesh(home: Path, *domains: str, pythonpath: str = "") -> list:
    return [*MESH, "--dagster-home", str(home), *(a for d in domains for a in ("-d", d))]


def env(pythonpath: str = "") -> dict:
    return {"PYTHONPATH": pythonpath} if pythonpath else {"PYTHONPATH": ""}


def whole_mesh(table: Table, work: Path) -> tuple[Path, Path]:
    """Benchmark 1. Returns the last baseline folder and Mesh home (both fully published, 1x)."""
    print("1. example mesh, end to end (fresh instance and storage each time)", flush=True)
    folders = {"baseline": [], "mesh": []}

    def baseline(i):
        folders["baseline"].append(out := work / f"baseline-1x-{i}")
        return timed([*BASELINE, out], env=env())

    def ours(i):
        folders["mesh"].append(home := work / f"mesh-1x-{i}")
        return timed(mesh(home), env=env())

    def plain_dagster(i):
        return timed([*PLAIN_DAGSTER, work / f"dagster-1x-{i}"], env=env())

    theirs, dagster, ours_ = interleave({"baseline": baseline, "plain Dagster": plain_dagster, "Mesh": ours},
                                        label="whole mesh")
    b, d, m = median(theirs), median(dagster), median(ours_)
    table.add("1. example mesh, `mesh materialize` (5 domains, 9 products)", f"{b:.2f} s", f"{m:.2f} s",
              f"{m / b:.2f}x", "<= 1.0x", m / b <= 1.0)
    table.add("   the same work as plain Dagster assets, stock instance (vs script)", f"{b:.2f} s", f"{d:.2f} s",
              f"{d / b:.2f}x", "-", None)
    table.add("   Mesh vs that plain Dagster project", f"{d:.2f} s", f"{m:.2f} s", f"{m / d:.2f}x", "-", None)
    # Again into the folders each fresh repeat left: what every run after the first one finds.
    warm_theirs, warm_ours = alternate(lambda i: timed([*BASELINE, folders["baseline"][i]], env=env()),
                                       lambda i: timed(mesh(folders["mesh"][i]), env=env()),
                                       label="whole mesh, existing instance")
    wb, wm = median(warm_theirs), median(warm_ours)
    table.add("1. the same, existing instance and versions (every later run)", f"{wb:.2f} s", f"{wm:.2f} s",
              f"{wm / wb:.2f}x", "<= 1.0x", wm / wb <= 1.0)
    table.add("   peak RSS, whole mesh", f"{median(theirs, 'peak_mb'):.0f} MB", f"{median(ours_, 'peak_mb'):.0f} MB",
              f"{median(ours_, 'peak_mb') / median(theirs, 'peak_mb'):.2f}x", "-", None)
    return folders["baseline"][-1], folders["mesh"][-1]


def ten_times(table: Table, work: Path, one_x: tuple[Path, Path]) -> None:
    from flights10x import generate

    print(f"2. {FACTOR}x flights through operations and insights", flush=True)
    package = generate(work / f"flights{FACTOR}x", FACTOR)
    big = str(package)
    base10, home10 = work / f"baseline-{FACTOR}x", work / f"mesh-{FACTOR}x"
    up_b = timed([*BASELINE, base10, "--domains", ",".join(UPSTREAM)], env=env(big))
    up_m = timed(mesh(home10, *UPSTREAM), env=env(big))
    print(f"  upstream at {FACTOR}x (once): baseline {up_b.seconds:.1f} s {up_b.peak_mb:.0f} MB | "
          f"Mesh {up_m.seconds:.1f} s {up_m.peak_mb:.0f} MB", flush=True)
    table.add(f"2. reference, fleet, operations, weather at {FACTOR}x flights (once)", f"{up_b.seconds:.1f} s",
              f"{up_m.seconds:.1f} s", f"{up_m.seconds / up_b.seconds:.2f}x", "-", None,
              note=f"peak {up_b.peak_mb:.0f} / {up_m.peak_mb:.0f} MB")
    base1, home1 = one_x
    results = {}
    for factor, (b_dir, m_home, path) in {1: (base1, home1, ""), FACTOR: (base10, home10, big)}.items():
        results[factor] = alternate(lambda i: timed([*BASELINE, b_dir, "--domains", "insights"], env=env(path)),
                                    lambda i: timed(mesh(m_home, "insights"), env=env(path)),
                                    label=f"-d insights {factor}x")
    (b1, m1), (b10, m10) = results[1], results[FACTOR]
    table.add(f"2. `-d insights` at {FACTOR}x flights", f"{median(b10):.2f} s", f"{median(m10):.2f} s",
              f"{median(m10) / median(b10):.2f}x", "-", None)
    table.add(f"   time {FACTOR}x / 1x, `-d insights`", f"{median(b10) / median(b1):.2f}",
              f"{median(m10) / median(m1):.2f}", "-", "linear or better", median(m10) / median(m1) <= FACTOR)
    peak = median(m10, "peak_mb")
    table.add(f"   peak RSS, `-d insights` at {FACTOR}x", f"{median(b10, 'peak_mb'):.0f} MB", f"{peak:.0f} MB",
              f"{peak / median(b10, 'peak_mb'):.2f}x", "<= 1.5 GB", peak <= 1536)
    table.add(f"   peak RSS {FACTOR}x / 1x, `-d insights`",
              f"{median(b10, 'peak_mb') / median(b1, 'peak_mb'):.2f}", f"{peak / median(m1, 'peak_mb'):.2f}",
              "-", "-", None)


def main(table: Table, *, ten_x: bool = True) -> None:
    with scratch("mesh-bench-") as work:
        one_x = whole_mesh(table, work)
        if ten_x:
            ten_times(table, work, one_x)


if __name__ == "__main__":
    run_alone(main)
