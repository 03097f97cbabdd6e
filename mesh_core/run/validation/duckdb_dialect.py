"""duckdb-engine's SQLAlchemy dialect, with each result fetched before its statement returns.

Great Expectations' SQL engine executes a metric query inside `with engine.connect()` and fetches
the rows after that block has closed the connection. Closing rolls the connection back, and
duckdb-engine's cursors share their DuckDB connection, so the rollback discards the pending result:
every metric then fails with `IndexError: list index out of range` in
`SqlAlchemyExecutionEngine.resolve_metric_bundle` (GX issues #10738, #11579). A client-side buffered
result, as psycopg2 gives, survives the close. GX's metric queries return aggregates or a bounded
sample of rows, so buffering them costs little.

Loaded by SQLAlchemy only, from the `duckdb+mesh_buffered://` URL that `register()` names.
"""

from __future__ import annotations

from duckdb_engine import Dialect as DuckDBDialect
from sqlalchemy.engine.cursor import FullyBufferedCursorFetchStrategy

DRIVER = "mesh_buffered"


class _BufferedExecutionContext(DuckDBDialect.execution_ctx_cls):
    def post_exec(self):
        super().post_exec()
        if self.cursor.description is not None:  # a statement that returns rows
            self.cursor_fetch_strategy = FullyBufferedCursorFetchStrategy(
                self.cursor, self.cursor.description, self.cursor.fetchall())


class BufferedDuckDBDialect(DuckDBDialect):
    driver = DRIVER
    execution_ctx_cls = _BufferedExecutionContext
    supports_statement_cache = False  # as duckdb-engine's; SQLAlchemy warns on a dialect that does not say


def register() -> str:
    """Make `duckdb+mesh_buffered://` known to SQLAlchemy; returns the URL scheme."""
    from sqlalchemy.dialects import registry

    registry.register(f"duckdb.{DRIVER}", __name__, "BufferedDuckDBDialect")
    return f"duckdb+{DRIVER}"
