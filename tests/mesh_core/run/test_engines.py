"""A step's engines: inputs handed over lazily in the product's engine, any engine's output as one Arrow stream."""

from __future__ import annotations

import os
import re

import duckdb
import pandas as pd
import pandera.pandas as pa
import polars as pl
import pyarrow as pyarrow
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from pandera.typing import Series

from mesh_core import Expectation, MeshError, ProductOutputError, data_product
from mesh_core.declare.engine import Engine
from mesh_core.run.engines import EngineSession


class CountsContract(pa.DataFrameModel):
    carrier: Series[str]
    flights: Series[int]


BASE = dict(domain="shop", description="One row per carrier.", owners=["team:shop"], contract=CountsContract,
            suite=[Expectation("ExpectColumnValuesToNotBeNull", column="carrier")])
ROWS = 300_000  # more than one batch


@data_product(**BASE, inputs={"flights": "ops.flights"}, sql="select carrier, count(*) as flights\nfrom flights group by 1")
def counts(flights):
    """SQL."""


@pytest.fixture
def dataset(tmp_path):
    """A dataset over two Parquet files, as the IO manager hands over a verified port version."""
    for part in range(2):
        pq.write_table(pyarrow.table({"carrier": ["AA", "UA", "B6"] * 10, "flight": list(range(30)),
                                      "dest": ["BOS"] * 30}), tmp_path / f"part-{part}.parquet")
    return ds.dataset([str(tmp_path / f"part-{part}.parquet") for part in range(2)],
                      schema=pyarrow.schema([("carrier", pyarrow.string()), ("flight", pyarrow.int64())]))


class Streamed:
    """Not a known type: only the Arrow PyCapsule stream protocol."""

    def __init__(self, source):
        self.source = source

    def __arrow_c_stream__(self, requested_schema=None):
        return self.source.__arrow_c_stream__(requested_schema)


@pytest.mark.parametrize("make", [
    lambda s: pl.LazyFrame({"carrier": ["AA"] * ROWS, "flights": range(ROWS)}),
    lambda s: pl.DataFrame({"carrier": ["AA"] * ROWS, "flights": range(ROWS)}),
    lambda s: s.duckdb.sql(f"select 'AA' as carrier, range as flights from range({ROWS})"),
    lambda s: pyarrow.table({"carrier": ["AA"] * ROWS, "flights": list(range(ROWS))}),
    lambda s: pyarrow.table({"carrier": ["AA"] * ROWS, "flights": list(range(ROWS))}).to_reader(max_chunksize=1000),
    lambda s: Streamed(pyarrow.table({"carrier": ["AA"] * ROWS, "flights": list(range(ROWS))}).to_reader(max_chunksize=1000)),
], ids=["polars-lazy", "polars", "duckdb", "arrow-table", "arrow-reader", "arrow-c-stream"])
def test_every_engines_output_becomes_one_arrow_stream_read_in_batches(make):
    with EngineSession(counts) as session:
        reader = session.stream(make(session))
        assert isinstance(reader, pyarrow.RecordBatchReader)
        assert reader.schema.names == ["carrier", "flights"]
        batches = list(reader)
    assert len(batches) > 1  # streamed, not one collected frame
    assert sum(batch.num_rows for batch in batches) == ROWS


@pytest.mark.parametrize("output", [[1, 2], {"carrier": ["AA"]}, None, pd.Series([1])])
def test_an_unsupported_output_names_the_types_a_product_may_return(output):
    with EngineSession(counts) as session, pytest.raises(ProductOutputError) as caught:
        session.stream(output)
    assert f"Product shop.counts returned {type(output).__name__}" in str(caught.value)
    for named in ("pandas DataFrame", "Polars DataFrame or LazyFrame", "DuckDB relation", "pyarrow.RecordBatchReader",
                  "__arrow_c_stream__"):
        assert named in str(caught.value)


def test_an_output_with_a_column_twice_is_refused_before_anything_is_written():
    with EngineSession(counts) as session, pytest.raises(ProductOutputError, match=r"column\(s\) \['a'\] appear more than once"):
        session.stream(session.duckdb.sql("select 1 as a, 2 as a"))


def test_a_polars_query_that_does_not_resolve_names_the_product_before_computing_anything():
    with EngineSession(counts) as session, pytest.raises(ProductOutputError, match="shop.counts's Polars query does not resolve"):
        session.stream(pl.LazyFrame({"a": [1]}).select("nope"))


@pytest.mark.parametrize("engine, kind", [(Engine.POLARS, pl.LazyFrame), (Engine.DUCKDB, duckdb.DuckDBPyRelation),
                                          (Engine.ARROW, ds.Dataset)])
def test_an_input_is_handed_over_lazily_in_its_engine_with_only_the_dataset_columns(dataset, engine, kind):
    with EngineSession(counts) as session:
        value = session.hand_over(dataset, engine)
        assert isinstance(value, kind)
        table = pyarrow.table(session.stream(value).read_all()) if engine is not Engine.ARROW else value.to_table()
    assert table.column_names == ["carrier", "flight"] and table.num_rows == 60


def test_a_sql_product_runs_over_its_inputs_named_by_its_parameters(dataset):
    with EngineSession(counts) as session:
        result = session.stream(session.run_sql({"flights": session.hand_over(dataset, Engine.DUCKDB)})).read_all()
    assert dict(zip(*result.sort_by("carrier").to_pydict().values())) == {"AA": 20, "B6": 20, "UA": 20}


def test_a_sql_product_reading_what_it_does_not_declare_names_the_product_and_the_position(dataset):
    @data_product(**BASE, inputs={"flights": "ops.flights"}, sql="select carrier, count(*) as flights\nfrom flightz group by 1")
    def typo(flights):
        """SQL."""

    with EngineSession(typo) as session, pytest.raises(ProductOutputError) as caught:
        session.run_sql({"flights": session.hand_over(dataset, Engine.DUCKDB)})
    assert "The SQL of shop.typo failed in DuckDB" in str(caught.value)
    assert "flightz does not exist" in str(caught.value) and "at line 2, column 6" in str(caught.value)
    assert "Its relations are its inputs: flights" in str(caught.value)


def test_a_sql_product_cannot_read_a_python_variable_of_the_same_name(dataset):
    flightz = pd.DataFrame({"carrier": ["XX"], "flights": [1]})  # DuckDB would scan this by default  # noqa: F841

    @data_product(**BASE, inputs={"flights": "ops.flights"}, sql="select * from flightz")
    def leak(flights):
        """SQL."""

    with EngineSession(leak) as session, pytest.raises(ProductOutputError, match="flightz does not exist"):
        session.run_sql({"flights": session.hand_over(dataset, Engine.DUCKDB)})


@pytest.mark.parametrize("reads", ["read_csv('/etc/passwd', header=false)", "read_parquet('{other}')",
                                   "read_text('{other}')", "'{other}'"])
def test_a_sql_product_reads_only_its_inputs_not_any_file(dataset, tmp_path, reads):
    """A SQL product is governed by its declared inputs: another domain's port files are out of reach."""
    other = tmp_path / "elsewhere" / "secret.parquet"
    other.parent.mkdir()
    pq.write_table(pyarrow.table({"carrier": ["SECRET"], "flights": [1]}), other)
    query = f"select * from {reads.format(other=other)}"

    @data_product(**BASE, inputs={"flights": "ops.flights"}, sql=query)
    def snoop(flights):
        """SQL."""

    print(f"tried: {query}")
    with EngineSession(snoop) as session, pytest.raises(ProductOutputError, match=r"shop\.snoop \(it reads no file or URL, only its inputs.*Permission Error"):
        session.stream(session.run_sql({"flights": session.hand_over(dataset, Engine.DUCKDB)})).read_all()


def test_a_sql_product_still_reads_its_inputs_and_spills_once_files_are_locked(dataset, tmp_path):
    rows = 3_000_000

    @data_product(**BASE, inputs={"flights": "ops.flights"},
                  sql=f"select f.carrier, (range * 7919) % {rows} as flights, repeat('x', 20) as pad "
                      f"from range({rows}) join (select carrier from flights limit 1) f on true order by 2")
    def sorted_counts(flights):
        """SQL."""

    with EngineSession(sorted_counts, memory_limit="64MB", spill_dir=str(tmp_path)) as session:
        seen = sum(b.num_rows for b in session.stream(session.run_sql({"flights": session.hand_over(dataset, Engine.DUCKDB)})))
    assert seen == rows


def test_a_duckdb_product_larger_than_its_memory_limit_spills_instead_of_failing(tmp_path):
    """Bounded memory in DuckDB: a sort of ~5x the step's memory limit completes by spilling to disk."""
    rows = 3_000_000
    with EngineSession(counts, memory_limit="64MB", spill_dir=str(tmp_path)) as session:
        relation = session.duckdb.sql(f"select (range * 7919) % {rows} as k, repeat('x', 20) as pad from range({rows}) order by k")
        seen = sum(batch.num_rows for batch in session.stream(relation))
        limit = session.duckdb.execute("select current_setting('memory_limit')").fetchone()[0]
    print(f"sorted {rows} rows (~{rows * 28 // 2**20} MB) under DuckDB memory_limit {limit}")
    assert seen == rows
    assert limit.endswith("MiB") and float(limit.split()[0].replace("MiB", "")) <= 64  # the session's limit held


def test_a_filter_on_a_polars_or_duckdb_input_reaches_the_parquet_scan(dataset):
    """Predicate and projection pushdown: the engines read only the row groups and columns they need."""
    with EngineSession(counts) as session:
        plan = session.hand_over(dataset, Engine.POLARS).filter(pl.col("flight") > 25).explain()
        scan = plan[plan.index("Parquet SCAN"):]
        assert "flight" in scan and ("SELECTION" in scan or "FILTER" in scan or "predicate" in scan.lower()), plan
        assert "dest" not in plan  # a column the dataset does not project is never read
        relation = session.hand_over(dataset, Engine.DUCKDB).filter("flight > 25")
        explained = session.duckdb.execute(f"explain {relation.sql_query()}").fetchall()[0][1]
        assert "Filters" in explained and "flight>25" in explained.replace(" ", ""), explained


def test_a_memory_limit_duckdb_cannot_read_names_the_setting_and_the_product(monkeypatch):
    monkeypatch.setenv("MESH_ENGINE_MEMORY_LIMIT", "banana")
    with EngineSession(counts) as session, pytest.raises(MeshError, match=r"shop\.counts cannot start DuckDB with "
                                                                          r"memory limit 'banana' \(\$MESH_ENGINE_MEMORY_LIMIT\)"):
        session.duckdb


def _fails_after_one_batch():
    schema = pyarrow.schema([("carrier", pyarrow.string()), ("flights", pyarrow.int64())])

    def batches():
        yield pyarrow.record_batch([pyarrow.array(["AA"]), pyarrow.array([1])], schema=schema)
        raise OSError("the source went away")
    return pyarrow.RecordBatchReader.from_batches(schema, batches())


@pytest.mark.parametrize("make, says", [
    (lambda s: pl.LazyFrame({"carrier": ["AA"] * ROWS, "n": [str(i) for i in range(ROWS - 1)] + ["x"]})
     .select("carrier", flights=pl.col("n").str.to_integer()), "ComputeError"),
    (lambda s: s.duckdb.sql(f"select 'AA' as carrier, (case when range < {ROWS - 1} then range::varchar else 'x' end)::bigint "
                            f"as flights from range({ROWS})"), "Conversion Error"),
    (lambda s: _fails_after_one_batch(), "the source went away"),
], ids=["polars-lazy", "duckdb", "arrow-reader"])
def test_an_output_that_fails_mid_stream_names_the_product(make, says):
    with EngineSession(counts) as session, pytest.raises(ProductOutputError, match=rf"shop\.counts failed while its "
                                                                                   rf"output was computed.*{says}") as caught:
        for _ in session.stream(make(session)):
            pass
    print(caught.value)


def test_a_polars_frame_arrow_cannot_hold_names_the_product():
    with EngineSession(counts) as session, pytest.raises(ProductOutputError, match=r"shop\.counts's Polars DataFrame "
                                                                                   r"cannot be read as Arrow"):
        session.stream(pl.DataFrame({"carrier": ["AA"], "flights": pl.Series([1], dtype=pl.Int128)}))


def test_a_query_past_the_memory_limit_names_the_setting_to_raise(tmp_path):
    rows = 3_000_000
    with EngineSession(counts, memory_limit="8MB", spill_dir=str(tmp_path)) as session, \
            pytest.raises(ProductOutputError, match=r"shop\.counts.*Out of Memory.*memory limit is 8MB "
                                                    r"\(\$MESH_ENGINE_MEMORY_LIMIT\); raise it"):
        relation = session.duckdb.sql(f"select (range * 7919) % {rows} as k, repeat('x', 20) as pad from range({rows}) order by k")
        for _ in session.stream(relation):
            pass


def _read_ahead(capfd, frame) -> list[int]:
    """How many row groups Polars' Parquet reader read ahead while `frame` ran (from its verbose log)."""
    capfd.readouterr()
    with pl.Config(verbose=True):
        frame()
    return [int(n) for n in re.findall(r"row_group_prefetch_size: (\d+)", capfd.readouterr().err)]


ROW_GROUPS = 20  # more than a step reads ahead


@pytest.fixture
def many_row_groups(tmp_path):
    path = tmp_path / "flights.parquet"
    pq.write_table(pyarrow.table({"carrier": ["AA", "UA"] * ROW_GROUPS * 1000, "flights": range(ROW_GROUPS * 2000)}),
                   path, row_group_size=2000)
    return str(path)


def test_polars_reads_a_step_s_parquet_files_one_row_group_ahead(capfd, monkeypatch, many_row_groups):
    """Bounded memory in Polars: unbounded, its reader reads a whole file's row groups ahead of a group_by
    (at 100x flights -d insights held ~0.5 GB more than at 10x); in a step, one row group, unless the
    operator set Polars' own variable."""
    monkeypatch.delenv("POLARS_ROW_GROUP_PREFETCH_SIZE", raising=False)
    query = pl.scan_parquet(many_row_groups).group_by("carrier").agg(pl.len())
    with EngineSession(counts) as session:
        inside = _read_ahead(capfd, lambda: sum(b.num_rows for b in session.stream(query)))
    outside = _read_ahead(capfd, lambda: query.collect(engine="streaming"))
    assert inside == [1]
    assert outside == [ROW_GROUPS]  # Polars' own default, back once the step has ended
    assert "POLARS_ROW_GROUP_PREFETCH_SIZE" not in os.environ

    monkeypatch.setenv("POLARS_ROW_GROUP_PREFETCH_SIZE", "7")
    with EngineSession(counts) as session:
        assert _read_ahead(capfd, lambda: sum(b.num_rows for b in session.stream(query))) == [7]
    assert os.environ["POLARS_ROW_GROUP_PREFETCH_SIZE"] == "7"
