"""Where a product's code runs: its inputs handed over in its engine, its output taken as an Arrow stream.

One `EngineSession` per step: the DuckDB connection every relation of the step lives in (inputs,
a SQL product's query, what the product returns), with a memory limit and a spill folder, open
until the output has been staged. Nothing is collected into memory here: a Polars LazyFrame is
streamed in batches, a DuckDB relation through its Arrow reader, and Polars reads a step's Parquet
files one row group ahead (`POLARS_READ_AHEAD_ENV`), not whole files ahead.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from typing import Any, Mapping

import pandas as pd

from mesh_core.declare.engine import Engine, sql_error
from mesh_core.declare.names import quote_column
from mesh_core.declare.product import DataProduct
from mesh_core.errors import ProductOutputError
from mesh_core.storage.duckdb_memory import MEMORY_LIMIT_ENV, limit_error, quiet
from mesh_core.storage.duckdb_memory import memory_limit as limit_for

BATCH_ROWS = 128 * 1024  # rows per Arrow batch pulled from an engine
# Polars' Parquet reader otherwise reads up to 512 row groups ahead of a slower consumer (a join, a
# group_by): at 100x flights (98 row groups) -d insights held ~0.5 GB more than at 10x. One row group
# ahead took the same time as one per thread (2) and 30-110 MB less per transform, and it does not grow
# with the machine's cores. Polars reads the variable per query; an operator's own value wins.
POLARS_READ_AHEAD_ENV = "POLARS_ROW_GROUP_PREFETCH_SIZE"
POLARS_READ_AHEAD_ROW_GROUPS = 1
RETURNABLE = ("a pandas DataFrame, a Polars DataFrame or LazyFrame, a DuckDB relation, or an Arrow stream "
              "(pyarrow.Table, pyarrow.RecordBatchReader, or any object with __arrow_c_stream__)")


class EngineSession:
    """The engines of one step. Use as a context manager; closing it ends every relation made in it."""

    def __init__(self, product: DataProduct, *, memory_limit: str | None = None, spill_dir: str | None = None,
                 spark=None):
        self.product = product
        self._spark_engine = spark  # the domain's SparkEngine (run/spark.py); its session is made on first use
        self._spark = None
        self.memory_limit = limit_for(memory_limit)
        self._spill_dir = spill_dir
        self._spill: tempfile.TemporaryDirectory | None = None
        self._duckdb = None
        self._read: list[str] = []  # the local files handed over as DuckDB relations: all a SQL product may read
        self._read_ahead_set = False

    def __enter__(self) -> "EngineSession":
        if POLARS_READ_AHEAD_ENV not in os.environ:  # for the step only: the product's scans, its stream, its audit
            os.environ[POLARS_READ_AHEAD_ENV] = str(POLARS_READ_AHEAD_ROW_GROUPS)
            self._read_ahead_set = True
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._spark is not None:
            from contextlib import suppress

            with suppress(Exception):  # a Spark Connect session ends on the server; a local one is only dropped
                if hasattr(self._spark, "client"):
                    self._spark.stop()
            self._spark = None
        if self._read_ahead_set:
            os.environ.pop(POLARS_READ_AHEAD_ENV, None)
            self._read_ahead_set = False
        if self._duckdb is not None:
            self._duckdb.close()
            self._duckdb = None
        if self._spill is not None:
            self._spill.cleanup()
            self._spill = None

    @property
    def duckdb(self):
        """The step's DuckDB connection (made on first use)."""
        if self._duckdb is None:
            import duckdb

            if self._spill_dir is None:
                self._spill = tempfile.TemporaryDirectory(prefix="mesh-duckdb-spill-")
            spill = self._spill_dir or self._spill.name
            # No replacement scans: a query reads the step's inputs, never a Python variable that happens to share a name.
            try:
                self._duckdb = quiet(duckdb.connect(config={"memory_limit": self.memory_limit, "temp_directory": spill,
                                                            "python_enable_replacements": False}))
            except duckdb.Error as exc:
                raise limit_error(str(self.product.ref), self.memory_limit, exc) from None
        return self._duckdb

    @property
    def spark(self):
        """The step's Spark session (made on first use, from the domain's SparkEngine)."""
        if self._spark is None:
            from mesh_core.run.spark import SparkEngine

            self._spark = (self._spark_engine or SparkEngine()).session(self.product.ref)
        return self._spark

    @property
    def spark_location(self) -> str:
        """The Spark this step runs on, as it may be shown (a token masked)."""
        from mesh_core.run.spark import LOCAL_DEFAULT, SparkEngine, shown

        return shown((self._spark_engine or SparkEngine()).resolved() or LOCAL_DEFAULT)

    @property
    def sql_on_spark(self) -> bool:
        """Whether this SQL product runs in Spark SQL: when the domain has a Spark configured."""
        from mesh_core.run.spark import SparkEngine

        return (self._spark_engine or SparkEngine()).runs_sql

    # -- inputs ---------------------------------------------------------------------------

    def hand_over(self, value: Any, engine: Engine) -> Any:
        """An input as the product asked for it. `value` is what the IO manager read: a pandas frame
        (read whole), or a pyarrow dataset over the verified files of the pinned version."""
        if engine is Engine.PANDAS or isinstance(value, pd.DataFrame):
            return value
        if engine is Engine.ARROW:
            return value
        import pyarrow.fs as pafs

        paths = list(getattr(value, "files", None) or [])  # on S3 these are "bucket/key": read through the dataset
        local = bool(paths) and isinstance(getattr(value, "filesystem", None), pafs.LocalFileSystem)
        if engine is Engine.POLARS:
            import polars as pl

            if local:
                return pl.scan_parquet(paths).select(value.schema.names)
            return pl.scan_pyarrow_dataset(value)
        if engine is Engine.SPARK or (engine is Engine.DUCKDB and self.product.sql is not None and self.sql_on_spark):
            from mesh_core.run.spark_io import spark_read

            return spark_read(self.spark, value, paths, local)
        if engine is Engine.DUCKDB:
            if local:
                self._read.extend(paths)
                columns = ", ".join(quote_column(name) for name in value.schema.names)
                return self.duckdb.sql(f"select {columns} from read_parquet({_sql_list(paths)})")
            return self.duckdb.from_arrow(value)
        raise ValueError(f"unknown engine {engine!r}")

    # -- a SQL product ----------------------------------------------------------------------

    def run_sql(self, inputs: Mapping[str, Any]):
        """The SQL product's query over its inputs, each a relation named by its parameter."""
        import duckdb

        product = self.product
        if self.sql_on_spark:
            from mesh_core.run.spark_io import spark_sql

            return spark_sql(self.spark, product, inputs)
        con = self.duckdb
        for name, relation in inputs.items():
            con.register(name, relation)
        # The query reads its inputs and nothing else: no file (another domain's port, /etc/passwd), no URL.
        # DuckDB cannot turn this back on for the connection; the spill folder stays writable.
        con.execute("SET allowed_paths = $1", [self._read])
        con.execute("SET allowed_directories = $1", [[self._spill_dir or self._spill.name]])
        con.execute("SET enable_external_access = false")
        try:
            return con.sql(product.sql)
        except duckdb.Error as exc:
            where = f" ({product.sql_file})" if product.sql_file else ""
            if isinstance(exc, duckdb.PermissionException):
                where += " (it reads no file or URL, only its inputs: declare what it reads in inputs=)"
            raise ProductOutputError(
                f"The SQL of {product.ref}{where} failed in DuckDB: {sql_error(exc, product.sql)}. Its relations are its inputs: "
                f"{', '.join(inputs) or 'none'}.") from None

    # -- the output -----------------------------------------------------------------------

    def stream(self, output: Any):
        """The product's output as a pyarrow RecordBatchReader, never collected; raises
        ProductOutputError naming the types a product may return."""
        import pyarrow as pa

        ref = self.product.ref
        reader = None
        kind = type(output)
        module = getattr(kind, "__module__", "") or ""
        if isinstance(output, pa.RecordBatchReader):
            reader = output
        elif isinstance(output, pa.Table):
            reader = output.to_reader(max_chunksize=BATCH_ROWS)
        elif module.startswith("polars"):
            import polars as pl

            if isinstance(output, pl.DataFrame):
                try:
                    table = output.to_arrow(compat_level=pl.CompatLevel.oldest())
                except Exception as exc:  # a type Arrow has no format for (Int128)
                    raise ProductOutputError(f"{ref}'s Polars DataFrame cannot be read as Arrow: {_one_line(exc)}. "
                                             "Cast the column to a type Arrow and Delta Lake hold.") from None
                reader = table.to_reader(max_chunksize=BATCH_ROWS)
            elif isinstance(output, pl.LazyFrame):
                reader = polars_stream(output, ref)
        elif module.startswith(("duckdb", "_duckdb")) and hasattr(output, "fetch_record_batch"):
            try:
                reader = output.fetch_record_batch(BATCH_ROWS)
            except Exception as exc:
                raise ProductOutputError(f"{ref}'s DuckDB relation failed: {sql_error(exc)}.{self._memory_hint(exc)}") from None
        elif hasattr(output, "__arrow_c_stream__"):
            reader = pa.RecordBatchReader.from_stream(output)
        if reader is None:
            raise ProductOutputError(f"Product {ref} returned {kind.__name__}; a product function must return {RETURNABLE}.")
        _check_names(reader.schema, ref)
        return _naming(reader, ref, self._memory_hint)

    def _memory_hint(self, exc: BaseException) -> str:
        """What to change when DuckDB ran out of the step's memory: the limit is Mesh's setting, not a SET in the SQL."""
        if "Out of Memory" not in str(exc):
            return ""
        return (f" The step's DuckDB memory limit is {self.memory_limit} (${MEMORY_LIMIT_ENV}); raise it, or make the "
                "query keep less at once.")


def _naming(reader, ref, hint=lambda exc: ""):
    """`reader`, whose errors while computing a batch (a LazyFrame's or a query's, mid-stream) name the product."""
    import pyarrow as pa

    from mesh_core.errors import MeshError

    def batches():
        try:
            yield from reader
        except MeshError:
            raise
        except Exception as exc:
            raise ProductOutputError(f"{ref} failed while its output was computed ({type(exc).__name__}): "
                                     f"{_one_line(exc)}.{hint(exc)} Nothing was kept; consumers keep the last version.") from exc

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def polars_stream(frame, ref):
    """A LazyFrame's result in batches, computed by Polars' streaming engine as they are read.
    `ref` names what the frame is (a product, a contract) in the error of a plan that does not resolve."""
    import polars as pl
    import pyarrow as pa

    try:
        schema = pl.DataFrame(schema=frame.collect_schema()).to_arrow(compat_level=pl.CompatLevel.oldest()).schema
    except Exception as exc:  # a plan that does not resolve (an unknown column): before any batch is computed
        raise ProductOutputError(f"{ref}'s Polars query does not resolve: {' '.join(str(exc).split())}") from None

    def batches():
        for chunk in frame.collect_batches(chunk_size=BATCH_ROWS, engine="streaming"):
            yield from chunk.to_arrow(compat_level=pl.CompatLevel.oldest()).cast(schema).to_batches()

    return pa.RecordBatchReader.from_batches(schema, batches())


def _check_names(schema, ref) -> None:
    """The stream's columns must be a table a reader can open: some, each named once."""
    names = list(schema.names)
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    problem = ("it has no columns; return the columns its contract declares" if not names else
               f"column(s) {repeated} appear more than once; rename or drop the copies" if repeated else None)
    if problem:
        raise ProductOutputError(f"{ref} cannot be published: its output is not a table a reader can open: {problem}. "
                                 "Nothing was written; consumers keep the last version.")


def _sql_list(paths) -> str:
    return "[" + ", ".join("'" + path.replace("'", "''") + "'" for path in paths) + "]"
