"""A domain's storage: a private DuckDB working store plus one output port per product.

Publishing writes the product's table in the domain's DuckDB file (one
transaction, columns by name) and an immutable Parquet snapshot that is renamed
into place, then swaps a small pointer file. Consumers read the snapshot the
pointer names, with no lock on the producer's database: a reader never blocks a
writer, and a blocked or failed publish leaves the last good version in place.
The layout is the shape of object storage, so a deployment can swap this class.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dagster_duckdb import DuckDBResource

from mesh_core.errors import AccessDeniedError, MeshError, ProductNotPublishedError
from mesh_core.names import quote_identifier
from mesh_core.ref import ProductRef

POINTER = "current.json"
KEEP_SNAPSHOTS = 3  # older snapshots are pruned; readers holding one have time to finish
QUARANTINE_SCHEMA = "quarantine"


def resolve_data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where domains keep their data: explicit, else $MESH_DATA_DIR, else $DAGSTER_HOME/data.

    Called at run time, never at import, so a code location loads without it."""
    for candidate in (explicit, os.environ.get("MESH_DATA_DIR")):
        if candidate:
            return Path(candidate).resolve()
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"]).resolve() / "data"
    raise MeshError(
        "Mesh does not know where to store data: set DAGSTER_HOME (the data goes to "
        "$DAGSTER_HOME/data) or MESH_DATA_DIR."
    )


@dataclass(frozen=True)
class PublishedVersion:
    """What the pointer of a product's output port says about its current version."""

    domain: str
    product: str
    version: str
    access: str
    snapshot: str
    rows: int
    columns: tuple[str, ...]
    run_id: str
    published_at: str

    @property
    def ref(self) -> ProductRef:
        return ProductRef(self.domain, self.product)


class DomainStorage:
    """The storage one domain writes, and its read-only view of other domains' ports."""

    def __init__(self, data_dir: Path, domain: str):
        self.data_dir = Path(data_dir)
        self.domain = domain
        quote_identifier(domain)  # refuse a bad name before it reaches a path or SQL

    @property
    def database_path(self) -> Path:
        # Not named like the schema inside it: DuckDB finds 'x.duckdb' holding schema 'x' ambiguous.
        return self.data_dir / self.domain / "warehouse.duckdb"

    def port_dir(self, ref: ProductRef) -> Path:
        return self.data_dir / ref.domain / "ports" / ref.product

    @contextmanager
    def connection(self) -> Iterator:
        """A read-write connection to this domain's DuckDB file, closed even on errors."""
        self.database_path.parent.mkdir(parents=True, exist_ok=True)
        # dagster-duckdb's resource retries while another process holds the file.
        with DuckDBResource(database=str(self.database_path)).get_connection() as con:
            try:
                yield con
            finally:
                con.close()

    # -- writing (own domain only) ---------------------------------------------------

    def publish(self, product: str, frame: pd.DataFrame, *, version: str, access: str, run_id: str) -> PublishedVersion:
        ref = ProductRef(self.domain, product)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        port = self.port_dir(ref)
        port.mkdir(parents=True, exist_ok=True)
        now = datetime.now(timezone.utc)
        snapshot = f"{now:%Y%m%dT%H%M%S%fZ}-{run_id[:8]}.parquet"
        staged = port / f".{snapshot}.staged"
        try:
            pq.write_table(table, staged)
            self._replace_table(self.domain, product, table)
            os.replace(staged, port / snapshot)
        finally:
            staged.unlink(missing_ok=True)
        published = PublishedVersion(
            domain=self.domain, product=product, version=version, access=access, snapshot=snapshot,
            rows=table.num_rows, columns=tuple(table.column_names), run_id=run_id,
            published_at=now.isoformat(),
        )
        _write_atomically(port / POINTER, json.dumps(asdict(published), indent=2))
        self._prune(port)
        return published

    def quarantine(self, product: str, frame: pd.DataFrame, *, run_id: str) -> str:
        """Keep a blocked output for debugging, in this domain's `quarantine` schema."""
        table = pa.Table.from_pandas(frame.assign(_mesh_run_id=run_id), preserve_index=False)
        self._replace_table(QUARANTINE_SCHEMA, product, table)
        return f"{QUARANTINE_SCHEMA}.{product}"

    def _replace_table(self, schema: str, name: str, table: pa.Table) -> None:
        target = f"{quote_identifier(schema)}.{quote_identifier(name)}"
        with self.connection() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}")
                con.register("mesh_frame", table)
                # Replaces the table whole, with the frame's own column names and types.
                con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM mesh_frame")
                con.unregister("mesh_frame")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def _prune(self, port: Path) -> None:
        snapshots = sorted(port.glob("*.parquet"))
        for old in snapshots[:-KEEP_SNAPSHOTS]:
            old.unlink(missing_ok=True)

    # -- reading (any domain's public ports, this domain's internal ones) ------------

    def current(self, ref: ProductRef) -> PublishedVersion:
        pointer = self.port_dir(ref) / POINTER
        try:
            data = json.loads(pointer.read_text())
        except FileNotFoundError:
            raise ProductNotPublishedError(
                f"Product {ref} has no published version yet (no {pointer}). "
                f"Materialize the '{ref.domain}' domain first, e.g. `mesh materialize --domain {ref.domain}`."
            ) from None
        data["columns"] = tuple(data["columns"])
        return PublishedVersion(**data)

    def read(self, ref: ProductRef) -> pd.DataFrame:
        published = self.current(ref)
        if published.access != "public" and ref.domain != self.domain:
            raise AccessDeniedError(
                f"Domain '{self.domain}' may not read {ref}: its access is '{published.access}', "
                f"readable only inside the '{ref.domain}' domain. Ask its owners to make it public, "
                "or read a public product instead."
            )
        return pq.read_table(self.port_dir(ref) / published.snapshot).to_pandas()


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
