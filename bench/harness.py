"""What every benchmark shares: timed child processes with their peak RSS, alternation, the table.

Each measurement is its own process (wall time and peak resident memory from the kernel's
rusage of that child), so imports, instance start-up and interpreter exit are counted as a user
pays them. Baseline and Mesh alternate within one run, so a busy neighbour slows both alike.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))


@dataclass(frozen=True)
class Sample:
    seconds: float
    peak_mb: float
    stdout: str = ""
    capped: bool = False  # stopped at BENCH_RSS_CAP_MB (bench/peak.py): peak_mb is where it was stopped


def run(args: Sequence[str], *, env: dict | None = None, cwd: Path = REPO) -> Sample:
    """Run one process to the end; its wall time and peak RSS. Fails loudly if it fails."""
    started = time.perf_counter()
    child = subprocess.Popen([str(a) for a in args], cwd=cwd, env={**os.environ, **(env or {})},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = child.communicate()
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} exited {child.returncode}:\n{out[-2000:]}\n{err[-4000:]}")
    return Sample(seconds, _peak_of(err), out, capped="\nbench-capped " in err)


# Peak RSS of one child: Python's resource module reports only the maximum over all children,
# so each measured command runs under bench/peak.py, which reports its own child's (wait4).
PEAK = [sys.executable, str(REPO / "bench" / "peak.py")]


def _peak_of(stderr: str) -> float:
    for line in reversed(stderr.splitlines()):
        if line.startswith("bench-peak-kb "):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(args: Sequence[str], **kwargs) -> Sample:
    return run([*PEAK, *map(str, args)], **kwargs)


def alternate(baseline: Callable[[int], Sample], mesh: Callable[[int], Sample], repeats: int = REPEATS,
              label: str = "") -> tuple[list[Sample], list[Sample]]:
    """baseline, Mesh, baseline, Mesh, ...: `repeats` of each."""
    theirs, ours = interleave({"baseline": baseline, "Mesh": mesh}, repeats, label)
    return theirs, ours


def interleave(sides: dict[str, Callable[[int], Sample]], repeats: int = REPEATS, label: str = "") -> list[list[Sample]]:
    """Each side once per repeat, in turn, so a busy neighbour slows every side alike; samples per side."""
    samples: list[list[Sample]] = [[] for _ in sides]
    for i in range(repeats):
        for side, run in zip(samples, sides.values()):
            side.append(run(i))
        print(f"  {label} #{i + 1}: " + " | ".join(f"{name} {side[-1].seconds:6.2f} s {side[-1].peak_mb:6.0f} MB"
                                                  for name, side in zip(sides, samples)), flush=True)
    return samples


def median(samples: Sequence[Sample], attr: str = "seconds") -> float:
    return statistics.median(getattr(s, attr) for s in samples)


@dataclass
class Row:
    benchmark: str
    baseline: str
    mesh: str
    ratio: str
    target: str
    met: bool | None  # None: reported, no target
    note: str = ""


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)

    def add(self, *args, **kwargs) -> None:
        self.rows.append(Row(*args, **kwargs))

    def render(self) -> str:
        head = ("benchmark", "baseline", "Mesh", "ratio", "target", "met?")
        cells = [head] + [(r.benchmark, r.baseline, r.mesh, r.ratio, r.target,
                           "-" if r.met is None else "yes" if r.met else "NO") for r in self.rows]
        widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
        line = lambda c: "| " + " | ".join(v.ljust(w) for v, w in zip(c, widths)) + " |"  # noqa: E731
        return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells[1:])])


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A temp folder for one benchmark's meshes and instances, removed afterwards."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_alone(main: Callable[[Table], None]) -> None:
    """`python bench/<one>.py`: that benchmark's rows only."""
    table = Table()
    main(table)
    print(table.render())
