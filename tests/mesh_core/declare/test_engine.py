"""How a product declares the engine its inputs arrive in, and a product written in SQL."""

from __future__ import annotations

import duckdb
import pandas as pd
import pandera.pandas as pa
import polars as pl
import pyarrow.dataset as ds
import pytest
from pandera.typing import Series

from mesh_core import DefinitionError, Expectation, Input, data_product
from mesh_core.declare.engine import Engine, engine_of, sql_error, sql_problems


class CountsContract(pa.DataFrameModel):
    carrier: Series[str]
    flights: Series[int]


BASE = dict(domain="shop", description="One row per carrier.", owners=["team:shop"], contract=CountsContract,
            suite=[Expectation("ExpectColumnValuesToNotBeNull", column="carrier")])


@pytest.mark.parametrize("annotation, engine", [
    (pd.DataFrame, Engine.PANDAS), (pl.LazyFrame, Engine.POLARS), (duckdb.DuckDBPyRelation, Engine.DUCKDB),
    (ds.Dataset, Engine.ARROW), ("pl.LazyFrame", Engine.POLARS), ("pd.DataFrame", Engine.PANDAS),
    ("duckdb.DuckDBPyRelation", Engine.DUCKDB), ("pyarrow.dataset.Dataset", Engine.ARROW), ("LazyFrame", Engine.POLARS),
])
def test_an_annotation_names_the_engine_its_input_arrives_in(annotation, engine):
    assert engine_of(annotation) is engine


def test_each_parameter_gets_its_annotated_engine_and_pandas_by_default():
    @data_product(**BASE, inputs={"flights": "ops.flights", "airlines": "ref.airlines", "weather": "wx.weather"})
    def counts(flights: pl.LazyFrame, airlines, weather: duckdb.DuckDBPyRelation) -> pl.LazyFrame:
        return flights

    assert counts.read_as == {"flights": Engine.POLARS, "airlines": Engine.PANDAS, "weather": Engine.DUCKDB}
    assert counts.engine is Engine.POLARS  # its return annotation


def test_input_as_sets_the_engine_without_an_annotation_and_the_output_engine_follows_the_inputs():
    @data_product(**BASE, inputs={"flights": Input("ops.flights", as_="duckdb")})
    def counts(flights):
        return flights

    assert counts.read_as == {"flights": Engine.DUCKDB}
    assert counts.engine is Engine.DUCKDB


def test_an_unknown_engine_in_input_as_is_refused_naming_the_engines():
    with pytest.raises(ValueError, match="as_='dask'.*pandas, polars, duckdb, arrow, spark"):
        Input("ops.flights", as_="dask")


def test_a_pyspark_dataframe_annotation_or_as_spark_hands_the_input_over_on_spark():
    @data_product(**BASE, inputs={"flights": "ops.flights", "airlines": Input("ref.airlines", as_="spark")})
    def counts(flights: "pyspark.sql.DataFrame", airlines) -> "pyspark.sql.connect.dataframe.DataFrame":
        return flights

    assert counts.read_as == {"flights": Engine.SPARK, "airlines": Engine.SPARK}
    assert counts.engine is Engine.SPARK


def test_an_annotation_no_engine_matches_fails_at_load_naming_the_parameter_and_the_types():
    with pytest.raises(DefinitionError, match=r"\[input-engines\] shop\.counts: parameter 'flights': annotation "
                                              r"'(builtins\.)?int' is not a type.*Fix: annotate .*pl\.LazyFrame"):
        @data_product(**BASE, inputs={"flights": "ops.flights"})
        def counts(flights: int):
            return flights


@pytest.mark.parametrize("annotation", [pl.DataFrame, "polars.DataFrame", "pl.DataFrame", "pyarrow.Table"])
def test_a_polars_or_arrow_frame_annotation_is_refused_not_read_as_pandas(annotation):
    """A Polars DataFrame is no pandas frame: handing one over as pandas would break the product at run time."""
    with pytest.raises(ValueError, match="is not a type Mesh can hand an input as"):
        engine_of(annotation)


def test_an_annotation_and_an_input_as_that_disagree_fail_at_load():
    with pytest.raises(DefinitionError, match=r"\[input-engines\].*'flights' is annotated as polars but its Input says "
                                              r"as_='duckdb'"):
        @data_product(**BASE, inputs={"flights": Input("ops.flights", as_="duckdb")})
        def counts(flights: pl.LazyFrame):
            return flights


def test_a_sql_product_reads_every_input_as_a_duckdb_relation_and_runs_in_duckdb():
    @data_product(**BASE, inputs={"flights": "ops.flights"}, sql="select carrier, count(*) as flights from flights group by 1")
    def counts(flights):
        """The body of a SQL product never runs."""

    assert counts.sql.startswith("select carrier")
    assert counts.engine is Engine.DUCKDB and counts.read_as == {"flights": Engine.DUCKDB}
    assert not counts.wants_context


@pytest.mark.parametrize("sql, found", [
    ("select carrier,\n  count(*) as flights frm flights", r"syntax error at or near \"frm\" at line 2, column 23 \(near: frm flights\)"),
    ("select 1 as a; select 2 as a", "holds 2 statements"),
    ("create table x as select 1", "is a CREATE statement"),
])
def test_sql_duckdb_cannot_run_as_a_product_fails_at_load_with_its_position(sql, found):
    with pytest.raises(DefinitionError, match=r"\[sql-valid\] shop\.counts: its SQL is not a query Mesh can run: .*" + found):
        @data_product(**BASE, inputs={"flights": "ops.flights"}, sql=sql)
        def counts(flights):
            """SQL."""


def test_a_sql_file_beside_the_module_is_read_at_load(tmp_path):
    (tmp_path / "counts.sql").write_text("select carrier, count(*) as flights\nfrom flights group by 1\n")
    module = tmp_path / "products.py"
    module.write_text("def counts(flights):\n    'SQL in counts.sql.'\n")
    namespace: dict = {}
    exec(compile(module.read_text(), str(module), "exec"), namespace)
    product = data_product(**BASE, inputs={"flights": "ops.flights"}, sql="counts.sql")(namespace["counts"])
    assert "from flights group by 1" in product.sql
    assert product.sql_file == str(tmp_path / "counts.sql")


def test_a_missing_sql_file_names_the_path_it_looked_for(tmp_path):
    module = tmp_path / "products.py"
    module.write_text("def counts(flights):\n    'SQL.'\n")
    namespace: dict = {}
    exec(compile(module.read_text(), str(module), "exec"), namespace)
    with pytest.raises(DefinitionError, match=r"\[sql-valid\] shop\.counts: cannot read the SQL file "
                                              + str(tmp_path / "missing.sql").replace(".", r"\.")):
        data_product(**BASE, inputs={"flights": "ops.flights"}, sql="missing.sql")(namespace["counts"])


def test_a_sql_product_takes_no_context():
    with pytest.raises(DefinitionError, match=r"\[sql-valid\] shop\.counts: a SQL product takes no 'context'"):
        @data_product(**BASE, inputs={"flights": "ops.flights"}, sql="select * from flights")
        def counts(context, flights):
            """SQL."""


def test_sql_error_turns_duckdbs_caret_into_a_line_and_column():
    sql = "select a,\n  b from nowhere_at_all"
    with pytest.raises(duckdb.Error) as caught:
        duckdb.connect().sql(sql)
    assert "nowhere_at_all does not exist" in sql_error(caught.value, sql)
    assert sql_error(caught.value, sql).endswith("at line 2, column 10")  # DuckDB gives no caret here: where it is named
    assert sql_problems("select 1 as a") == []
