"""The engine a product's inputs arrive in, and a product written in SQL.

A product says how it wants each input by the type annotation of its parameter (pandas stays
the default), or by `Input(..., as_="polars")`:

    def route_performance(flights: pl.LazyFrame, airports: duckdb.DuckDBPyRelation) -> pl.LazyFrame: ...

A SQL product is a `@data_product(..., sql="select ...")` whose inputs are relations named by
its parameters; `sql="route_performance.sql"` reads the file beside the module that declares it.
Nothing here imports an engine: annotations are matched by name, so loading a code location
costs no Polars or DuckDB import.
"""

from __future__ import annotations

import enum
import inspect
import re
from pathlib import Path
from typing import Any, Callable


class Engine(str, enum.Enum):
    """How data reaches a product's code: a whole pandas frame, or lazily in an engine."""

    PANDAS = "pandas"  # a pandas DataFrame, read whole (the default)
    POLARS = "polars"  # a polars LazyFrame over the pinned port version
    DUCKDB = "duckdb"  # a DuckDB relation over the pinned port version
    ARROW = "arrow"  # a pyarrow.dataset.Dataset over the pinned port version
    SPARK = "spark"  # a pyspark DataFrame over the pinned port version, on the domain's Spark (run/spark.py)


# The annotation each engine is recognised by: "<module prefix>.<class name>" (as imported, or as
# its defining module names it) and the bare class name, for string annotations.
_ANNOTATIONS = {
    Engine.PANDAS: ("pandas.DataFrame", "pd.DataFrame", "pandas.core.frame.DataFrame"),
    Engine.POLARS: ("polars.LazyFrame", "pl.LazyFrame", "polars.lazyframe.frame.LazyFrame"),
    Engine.DUCKDB: ("duckdb.DuckDBPyRelation", "_duckdb.DuckDBPyRelation", "duckdb.duckdb.DuckDBPyRelation"),
    Engine.ARROW: ("pyarrow.dataset.Dataset", "ds.Dataset", "pyarrow._dataset.Dataset", "pa.dataset.Dataset"),
    # pyspark.sql.DataFrame is the parent of the classic and the Spark Connect frames (pyspark 4)
    Engine.SPARK: ("pyspark.sql.DataFrame", "pyspark.sql.dataframe.DataFrame", "pyspark.sql.connect.dataframe.DataFrame",
                   "pyspark.sql.classic.dataframe.DataFrame", "SparkDataFrame", "ps.DataFrame"),
}
# A bare class name counts only alone or under its own library: polars.DataFrame is no pandas frame.
_BARE = {"DataFrame": (Engine.PANDAS, "pandas"), "LazyFrame": (Engine.POLARS, "polars"),
         "DuckDBPyRelation": (Engine.DUCKDB, "duckdb"), "Dataset": (Engine.ARROW, "arrow")}
ANNOTATION_HELP = ("annotate the parameter with pd.DataFrame (the default), pl.LazyFrame, duckdb.DuckDBPyRelation, "
                   "pyarrow.dataset.Dataset or pyspark.sql.DataFrame, or declare "
                   "Input(..., as_='pandas' | 'polars' | 'duckdb' | 'arrow' | 'spark')")


def engine_of(annotation: Any) -> Engine | None:
    """The engine a parameter annotation asks for; None when it names none (no annotation)."""
    if annotation is inspect.Parameter.empty or annotation is None:
        return None
    if isinstance(annotation, str):
        name = annotation.strip().strip("'\"")
    else:
        name = f"{getattr(annotation, '__module__', '')}.{getattr(annotation, '__qualname__', '')}"
    for engine, names in _ANNOTATIONS.items():
        if name in names:
            return engine
    bare = name.rsplit(".", 1)[-1]
    if bare == "DataFrame" and "pyspark" in name:
        return Engine.SPARK
    if bare in _BARE and (name == bare or _BARE[bare][1] in name):
        return _BARE[bare][0]
    raise ValueError(f"annotation {name!r} is not a type Mesh can hand an input as")


def parameter_engines(fn: Callable[..., Any]) -> dict[str, Engine | None]:
    """{parameter: the engine its annotation asks for, or None} for every parameter but `context`.
    Raises ValueError naming the parameter whose annotation no engine matches."""
    found = {}
    for name, parameter in inspect.signature(fn).parameters.items():
        if name == "context":
            continue
        try:
            found[name] = engine_of(parameter.annotation)
        except ValueError as exc:
            raise ValueError(f"parameter '{name}': {exc}") from None
    return found


def sql_text(sql: str, fn: Callable[..., Any]) -> tuple[str, str | None]:
    """(the SQL, the file it was read from or None). `sql` ending in '.sql' names a file beside the
    module that declares `fn`; anything else is the SQL itself."""
    text = sql.strip()
    if text.endswith(".sql") and "\n" not in text and " " not in text:
        path = Path(inspect.getfile(fn)).resolve().parent / text
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise ValueError(f"cannot read the SQL file {path}: {exc.strerror or exc}") from None
    return sql, None


def sql_problems(sql: str) -> list[str]:
    """What keeps `sql` from being one product's query, found by DuckDB's own parser (no data, no
    tables): a syntax error with its position, several statements, or a statement that is no query."""
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        return [f"DuckDB cannot parse it: {sql_error(exc)}"]
    if len(statements) != 1:
        return [f"it holds {len(statements)} statements; a product is one SELECT (use CTEs, `with ... select`)"]
    if statements[0].type != duckdb.StatementType.SELECT:
        return [f"it is a {statements[0].type.name} statement; a product is one SELECT"]
    return []


_NAMED = re.compile(r'(?:Table with name|Referenced column|Referenced table) "?([A-Za-z_][A-Za-z0-9_]*)"?')


def sql_error(exc: BaseException, sql: str | None = None) -> str:
    """DuckDB's error on one line, with where in `sql` it is: its caret, else the first place the
    name it could not find is written: `... at line 1, column 10 (near: frm f)`."""
    lines = str(exc).splitlines()
    position = ""
    named = _NAMED.search(str(exc))
    if sql and named and not any(line.startswith("LINE ") for line in lines):
        found = re.search(rf"(?<![A-Za-z0-9_\"]){re.escape(named[1])}(?![A-Za-z0-9_])", sql)
        if found:
            before = sql[:found.start()]
            position = f" at line {before.count(chr(10)) + 1}, column {found.start() - (before.rfind(chr(10)) + 1) + 1}"
    for number, line in enumerate(lines):
        match = re.match(r"^LINE (\d+): ?(.*)$", line)
        if match and number + 1 < len(lines) and "^" in lines[number + 1]:
            column = lines[number + 1].index("^") - (len(line) - len(match[2])) + 1
            near = match[2][max(column - 1, 0):][:30].strip()
            position = f" at line {match[1]}, column {column}" + (f" (near: {near})" if near else "")
            break
    head = " ".join(line.strip() for line in lines if line.strip() and not line.startswith("LINE ") and set(line.strip()) != {"^"})
    return head.rstrip(".") + position
