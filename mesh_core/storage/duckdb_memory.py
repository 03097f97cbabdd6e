"""How much memory Mesh's own DuckDB work may hold before it spills to disk: one setting for an
engine step, the audit's uniqueness count and the load of a domain's store.

DuckDB's default is 80% of the machine's memory, per connection; a table larger than that, or two
steps at once, would take the machine. With a limit DuckDB spills joins, aggregations and sorts to
a temporary folder instead, so a product larger than memory runs in bounded memory.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from typing import Iterator

from mesh_core.errors import MeshError

MEMORY_LIMIT_ENV = "MESH_ENGINE_MEMORY_LIMIT"  # in DuckDB's syntax, e.g. "2GB"
DEFAULT_MEMORY_LIMIT = "256MB"  # beside a step's Python and Polars: operations at 100x flights peaks 1.18 GB (512MB: 1.38)


def memory_limit(explicit: str | None = None) -> str:
    """The limit to use: `explicit`, else $MESH_ENGINE_MEMORY_LIMIT, else the default."""
    return explicit or os.environ.get(MEMORY_LIMIT_ENV) or DEFAULT_MEMORY_LIMIT


def limit_error(what: str, limit: str, exc: Exception) -> MeshError:
    """DuckDB refused the limit: say which setting and how to write it."""
    return MeshError(f"{what} cannot start DuckDB with memory limit {limit!r} (${MEMORY_LIMIT_ENV}): "
                     f"{' '.join(str(exc).split())}. Set it in DuckDB's syntax, e.g. {MEMORY_LIMIT_ENV}=4GB, "
                     f"or unset it for {DEFAULT_MEMORY_LIMIT}.")


def quiet(con):
    """`con` without DuckDB's progress bar, which it draws on stdout for a long query, into a run's log.
    (A setting of the connection: DuckDB refuses it in the config at connect.)"""
    con.execute("SET enable_progress_bar = false")
    return con


@contextmanager
def bounded_connection(what: str) -> Iterator:
    """An in-memory DuckDB connection under the memory limit, spilling to a temporary folder that
    is removed with it. `what` names the work in an error (e.g. the product)."""
    import duckdb

    limit = memory_limit()
    with tempfile.TemporaryDirectory(prefix="mesh-duckdb-spill-") as spill:
        try:
            con = quiet(duckdb.connect(config={"memory_limit": limit, "temp_directory": spill}))
        except duckdb.Error as exc:
            raise limit_error(what, limit, exc) from None
        try:
            yield con
        finally:
            con.close()
