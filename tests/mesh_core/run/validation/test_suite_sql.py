"""A suite run in DuckDB through GX's SQL engine, on Parquet files, against the pandas run of the same suite."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from mesh_core import Expectation
from mesh_core.errors import StorageError
from mesh_core.run.validation.suite import run_suite
from mesh_core.run.validation.suite_sql import NOT_ON_SQL, run_suite_duckdb, sql_problems
from tests.support import EXAMPLE_DOMAINS, REPO, needs_example, run_in_engine


def parquet(frame: pd.DataFrame, folder, parts: int = 1) -> list[str]:
    """`frame` as `parts` Parquet files, as a publish stages it."""
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(frame) // parts) or 1
    paths = []
    for i in range(parts):
        path = folder / f"part-{i}.parquet"
        frame.iloc[i * size:(i + 1) * size].to_parquet(path, index=False)
        paths.append(str(path))
    return paths


READINGS = pd.DataFrame({"reading_id": [1, 2, 3, 4, 5, 6], "sensor": ["a", None, "b", "b", "z", "a"],
                         "value": [1.0, 5.0, 900.0, 2.0, 3.0, 3.0]})
CHECKS = [
    Expectation("ExpectColumnValuesToNotBeNull", column="sensor", severity="warning"),
    Expectation("ExpectColumnValuesToBeInSet", column="sensor", value_set=["a", "b"]),
    Expectation("ExpectColumnValuesToBeBetween", column="value", min_value=0, max_value=100),
    Expectation("ExpectColumnValuesToBeUnique", column="value", name="unique_values"),
    Expectation("ExpectCompoundColumnsToBeUnique", column_list=["sensor", "value"], name="one_row_per_sensor_value"),
    Expectation("ExpectTableRowCountToBeBetween", min_value=1, max_value=5, name="row_count"),
]


@pytest.mark.filterwarnings("error")  # SQLAlchemy warns on a dialect that does not state its statement caching
def test_the_plain_duckdb_dialect_loses_a_result_when_its_connection_closes_and_the_buffered_one_keeps_it():
    # Why duckdb_dialect exists: GX fetches a metric's rows after closing the connection that ran it.
    import sqlalchemy as sa

    from mesh_core.run.validation.duckdb_dialect import register

    def fetched_after_close(url: str) -> list:
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            result = connection.execute(sa.text("SELECT 42"))  # compiled, as GX's queries are
        rows = result.fetchall()
        engine.dispose()
        return rows

    assert fetched_after_close("duckdb:///:memory:") == []
    assert fetched_after_close(f"{register()}:///:memory:") == [(42,)]


def test_a_suite_on_parquet_in_duckdb_reports_what_pandas_reports_expectation_by_expectation(tmp_path):
    paths = parquet(READINGS, tmp_path, parts=3)
    on_sql = run_suite_duckdb("lab.readings", CHECKS, paths, keys=["reading_id"])
    in_pandas = run_suite("lab.readings", CHECKS, READINGS, keys=["reading_id"])
    assert [o.check_name for o in on_sql] == [c.name for c in CHECKS]
    assert on_sql == in_pandas  # passed, severity, description, every metadata value, the sample's rows by key
    by_name = {o.check_name: o for o in on_sql}
    assert by_name["column_values_to_be_between__value"].metadata["unexpected_sample"] == "reading_id=3: value=900.0"
    assert by_name["unique_values"].metadata["unexpected_count"] == 2
    assert by_name["row_count"].metadata["observed_value"] == 6 and not by_name["row_count"].passed
    assert by_name["column_values_to_not_be_null__sensor"].blocks_publish is False


def test_a_float_nan_in_the_files_counts_as_missing_as_it_does_in_pandas(tmp_path):
    """A Polars or Arrow product keeps NaN apart from null in Parquet; pandas reads both as missing."""
    import pyarrow
    import pyarrow.parquet as pq

    values = [float("nan"), None, 1.0, 500.0, 2.0, float("nan")]
    pq.write_table(pyarrow.table({"reading_id": [1, 2, 3, 4, 5, 6], "value": pyarrow.array(values, pyarrow.float64())}),
                   tmp_path / "part-0.parquet")
    checks = [Expectation("ExpectColumnValuesToNotBeNull", column="value"),
              Expectation("ExpectColumnValuesToBeBetween", column="value", min_value=0, max_value=100),
              Expectation("ExpectColumnValuesToBeUnique", column="value")]
    pandas = run_suite("readings", checks, pd.DataFrame({"reading_id": [1, 2, 3, 4, 5, 6], "value": values}))
    duckdb = run_suite_duckdb("readings", checks, [str(tmp_path / "part-0.parquet")])
    seen = {o.check_name: (o.passed, o.metadata.get("unexpected_count")) for o in duckdb}
    print(f"pandas {[(o.check_name, o.passed, o.metadata.get('unexpected_count')) for o in pandas]}; duckdb {seen}")
    assert seen == {o.check_name: (o.passed, o.metadata.get("unexpected_count")) for o in pandas}
    assert seen["column_values_to_not_be_null__value"] == (False, 3)


def test_the_files_are_read_on_every_run_and_nothing_of_them_is_kept(tmp_path):
    checks = [Expectation("ExpectColumnValuesToBeBetween", column="value", min_value=0, max_value=100)]
    good = parquet(READINGS.head(2), tmp_path / "good")
    bad = parquet(READINGS, tmp_path / "bad")
    assert [o.passed for o in run_suite_duckdb("lab.again", checks, good)] == [True]
    assert [o.passed for o in run_suite_duckdb("lab.again", checks, bad)] == [False]  # the same suite, new files
    for path in bad:  # the view over them is gone: a discarded stage deletes them while the process lives on
        (tmp_path / "bad" / path.rsplit("/", 1)[-1]).unlink()
    assert [o.passed for o in run_suite_duckdb("lab.again", checks, good)] == [True]
    # A suite declared anew (a reloaded product) is rebuilt, not served from the old one.
    stricter = [Expectation("ExpectColumnValuesToBeBetween", column="value", min_value=0, max_value=1)]
    assert [o.passed for o in run_suite_duckdb("lab.again", stricter, good)] == [False]


def test_a_missing_column_and_no_files_are_reported_not_crashed(tmp_path):
    [outcome] = run_suite_duckdb("lab.missing", [Expectation("ExpectColumnValuesToNotBeNull", column="nope")],
                                 parquet(READINGS, tmp_path))
    assert not outcome.passed and "could not be evaluated" in outcome.description
    with pytest.raises(ValueError, match="Suite lab.none: no Parquet file to validate"):
        run_suite_duckdb("lab.none", CHECKS, [])
    with pytest.raises(ValueError, match="local Parquet files only, not s3://bucket/part-0.parquet"):
        run_suite_duckdb("lab.remote", CHECKS, ["s3://bucket/part-0.parquet"])
    gone = str(tmp_path / "discarded" / "part-0.parquet")
    with pytest.raises(StorageError, match=f"Suite lab.gone: DuckDB cannot read the 1 Parquet file.s. to validate, from {gone}"):
        run_suite_duckdb("lab.gone", CHECKS, [gone])


def test_sql_problems_name_each_expectation_that_cannot_run_in_duckdb_and_why():
    suite = [Expectation("ExpectColumnValuesToMatchRegex", column="code", regex="^[A-Z]{3}$"),
             Expectation("ExpectColumnValuesToBeIncreasing", column="at"),
             *CHECKS]
    problems = sql_problems(suite)
    assert len(problems) == 2
    assert problems[0].startswith("column_values_to_match_regex__code (ExpectColumnValuesToMatchRegex): ")
    assert "Regex is not supported for dialect duckdb" in problems[0] and problems[0].endswith("pa.Field(str_matches=...) runs in Polars)")
    assert problems[1].startswith("column_values_to_be_increasing__at (ExpectColumnValuesToBeIncreasing): ")
    assert "pandas only" in problems[1] and problems[1].endswith("or keep the product's output in pandas")
    assert sql_problems(CHECKS) == []


def test_a_row_condition_in_pandas_syntax_is_a_problem_and_the_fix_it_names_runs_in_both_engines(tmp_path):
    frame = pd.DataFrame({"id": [1, 2, 3, 4], "status": ["cancelled", "on_time", "delayed", "on_time"],
                          "dep_delay": [None, 1.0, None, 3.0]})
    pandas_syntax = Expectation("ExpectColumnValuesToNotBeNull", column="dep_delay", name="departed_have_delay",
                                condition_parser="pandas", row_condition='status != "cancelled"')
    [problem] = sql_problems([pandas_syntax])
    assert problem.startswith("departed_have_delay (ExpectColumnValuesToNotBeNull): its row_condition "
                              "'status != \"cancelled\"' is pandas syntax")
    paths = parquet(frame, tmp_path)
    [on_sql] = run_suite_duckdb("lab.departed", [pandas_syntax], paths, keys=["id"])
    assert "could not be evaluated" in on_sql.description  # what the problem spares a run from finding out
    gx_syntax = Expectation("ExpectColumnValuesToNotBeNull", column="dep_delay", name="departed_have_delay",
                            condition_parser="great_expectations", row_condition='col("status") != "cancelled"')
    assert problem.endswith("""condition_parser='great_expectations', row_condition='col("status") != "cancelled"'""")
    assert sql_problems([gx_syntax]) == []
    [on_sql] = run_suite_duckdb("lab.departed", [gx_syntax], paths, keys=["id"])
    [in_pandas] = run_suite("lab.departed", [gx_syntax], frame, keys=["id"])
    assert on_sql == in_pandas and on_sql.metadata["unexpected_count"] == 1 and on_sql.metadata["element_count"] == 3
    assert on_sql.metadata["unexpected_sample"] == "id=3: dep_delay=null"


def test_every_gx_expectation_whose_metric_has_no_sql_implementation_is_listed():
    # Guards NOT_ON_SQL against a GX upgrade: what GX's own registry says runs in pandas only.
    import great_expectations as gx
    from great_expectations.expectations.registry import _registered_metrics

    pandas_only = set()
    for name in dir(gx.expectations):
        cls = getattr(gx.expectations, name)
        metrics = set(getattr(cls, "metric_dependencies", ()) or ())
        if getattr(cls, "map_metric", None):
            metrics.add(f"{cls.map_metric}.condition")
        if any("SqlAlchemyExecutionEngine" not in _registered_metrics.get(m, {}).get("providers", {"SqlAlchemyExecutionEngine": 0})
               for m in metrics):
            pandas_only.add(name)
    assert pandas_only, "GX's metric registry changed shape: update this test"
    assert pandas_only <= set(NOT_ON_SQL), sorted(pandas_only - set(NOT_ON_SQL))


# One call per listed type: each must fail in DuckDB (else NOT_ON_SQL is out of date).
_LISTED_CALLS = {
    "ExpectColumnValuesToMatchRegex": {"column": "sensor", "regex": "^[ab]$"},
    "ExpectColumnValuesToNotMatchRegex": {"column": "sensor", "regex": "^z$"},
    "ExpectColumnValuesToMatchRegexList": {"column": "sensor", "regex_list": ["^a$", "^b$"]},
    "ExpectColumnValuesToNotMatchRegexList": {"column": "sensor", "regex_list": ["^z$"]},
    "ExpectColumnValuesToMatchLikePattern": {"column": "sensor", "like_pattern": "a%"},
    "ExpectColumnValuesToNotMatchLikePattern": {"column": "sensor", "like_pattern": "z%"},
    "ExpectColumnValuesToMatchLikePatternList": {"column": "sensor", "like_pattern_list": ["a%"]},
    "ExpectColumnValuesToNotMatchLikePatternList": {"column": "sensor", "like_pattern_list": ["z%"]},
    "ExpectColumnValuesToNotBeOutliers": {"column": "value"},
    "ExpectColumnValuesToBeIncreasing": {"column": "reading_id"},
}


@pytest.mark.parametrize("type_", sorted(_LISTED_CALLS))
def test_a_listed_expectation_runs_in_pandas_and_cannot_be_evaluated_in_duckdb(type_, tmp_path):
    item = Expectation(type_, **_LISTED_CALLS[type_])
    assert type_ in NOT_ON_SQL
    [in_pandas] = run_suite("lab.listed", [item], READINGS)
    if "LikePattern" not in type_:  # GX evaluates LIKE patterns in SQL only, in no engine Mesh runs
        assert "exception" not in in_pandas.metadata, in_pandas.description
    [on_sql] = run_suite_duckdb("lab.listed", [item], parquet(READINGS, tmp_path))
    print(type_, "in DuckDB:", on_sql.description)
    assert not on_sql.passed and "could not be evaluated" in on_sql.description


def test_importing_the_sql_runner_does_not_import_great_expectations():
    code = ("import sys, mesh_core.run.validation.suite_sql; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('great_expectations', 'duckdb_engine')))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout


WIDE = pd.DataFrame({"id": range(12), "x": [9.5, 10.0, 10.5, 11.0, None, 12.0, 100.0, 8.0, 9.0, 10.0, 11.0, 10.25],
                     "y": [1, 2, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10], "z": [1, 1, 2, 3, 4, 4, 7, 7, 9, 9, 1, 10],
                     "s": ["ab", "abc", "b", None, "ab", "ab", "abc", "b", "ab", None, "abc", "ab"]})
# Every GX expectation Mesh has found to run in both engines, beside those the example suites use.
SQL_PORTABLE = [Expectation(t, name=f"check_{i}", **kw) for i, (t, kw) in enumerate([
    ("ExpectColumnDistinctValuesToBeInSet", {"column": "s", "value_set": ["ab", "abc"]}),
    ("ExpectColumnDistinctValuesToContainSet", {"column": "s", "value_set": ["ab", "zz"]}),
    ("ExpectColumnDistinctValuesToEqualSet", {"column": "s", "value_set": ["ab", "abc", "b"]}),
    ("ExpectColumnMaxToBeBetween", {"column": "x", "min_value": 0, "max_value": 50}),
    ("ExpectColumnMeanToBeBetween", {"column": "x", "min_value": 0, "max_value": 15}),
    ("ExpectColumnMedianToBeBetween", {"column": "y", "min_value": 0, "max_value": 5}),
    ("ExpectColumnMinToBeBetween", {"column": "x", "min_value": 0, "max_value": 5}),
    ("ExpectColumnMostCommonValueToBeInSet", {"column": "s", "value_set": ["ab"]}),
    ("ExpectColumnPairValuesAToBeGreaterThanB", {"column_A": "y", "column_B": "z", "or_equal": True}),
    ("ExpectColumnPairValuesToBeEqual", {"column_A": "y", "column_B": "z"}),
    ("ExpectColumnPairValuesToBeInSet", {"column_A": "y", "column_B": "z", "value_pairs_set": [[1, 1], [2, 2]]}),
    ("ExpectColumnProportionOfNonNullValuesToBeBetween", {"column": "s", "min_value": 0.9, "max_value": 1}),
    ("ExpectColumnProportionOfUniqueValuesToBeBetween", {"column": "y", "min_value": 0.9, "max_value": 1}),
    ("ExpectColumnStdevToBeBetween", {"column": "x", "min_value": 0, "max_value": 3}),
    ("ExpectColumnSumToBeBetween", {"column": "y", "min_value": 0, "max_value": 50}),
    ("ExpectColumnToExist", {"column": "s"}),
    ("ExpectColumnUniqueValueCountToBeBetween", {"column": "y", "min_value": 1, "max_value": 9}),
    ("ExpectColumnValueLengthsToBeBetween", {"column": "s", "min_value": 2, "max_value": 3}),
    ("ExpectColumnValueLengthsToEqual", {"column": "s", "value": 2}),
    ("ExpectColumnValueZScoresToBeLessThan", {"column": "x", "threshold": 2, "double_sided": True}),
    ("ExpectColumnValuesToBeBetween", {"column": "x", "min_value": 9, "max_value": 12, "strict_min": True}),
    ("ExpectColumnValuesToBeInSet", {"column": "y", "value_set": list(range(8)), "mostly": 0.5}),
    ("ExpectColumnValuesToBeNull", {"column": "s"}),
    ("ExpectColumnValuesToBeUnique", {"column": "y"}),
    ("ExpectColumnValuesToNotBeInSet", {"column": "s", "value_set": ["b"]}),
    ("ExpectColumnValuesToNotBeNull", {"column": "x"}),
    ("ExpectCompoundColumnsToBeUnique", {"column_list": ["y", "z"]}),
    ("ExpectMulticolumnSumToEqual", {"column_list": ["y", "z"], "sum_total": 4}),
    ("ExpectSelectColumnValuesToBeUniqueWithinRecord", {"column_list": ["y", "z"]}),
    ("ExpectTableColumnCountToBeBetween", {"min_value": 1, "max_value": 4}),
    ("ExpectTableColumnsToMatchOrderedList", {"column_list": ["id", "x", "y", "z", "s"]}),
    ("ExpectTableColumnsToMatchSet", {"column_set": ["id", "x", "y", "z"], "exact_match": True}),
    ("ExpectTableRowCountToEqual", {"value": 12}),
    ("ExpectColumnKLDivergenceToBeLessThan", {"column": "y", "partition_object": {"bins": [0, 5, 11], "weights": [0.5, 0.5]},
                                              "threshold": 0.1}),
])]


def test_every_expectation_known_to_run_in_both_engines_gives_the_same_success_count_and_observed_value(tmp_path):
    on_sql = run_suite_duckdb("lab.wide", SQL_PORTABLE, parquet(WIDE, tmp_path), keys=["id"])
    in_pandas = run_suite("lab.wide", SQL_PORTABLE, WIDE, keys=["id"])
    assert not sql_problems(SQL_PORTABLE)
    for item, p, s in zip(SQL_PORTABLE, in_pandas, on_sql, strict=True):
        assert "exception" not in p.metadata and "exception" not in s.metadata, (item.type, p.metadata, s.metadata)
        seen = [(o.passed, o.metadata.get("unexpected_count"), o.metadata.get("observed_value")) for o in (p, s)]
        if isinstance(seen[0][2], float):  # a mean or deviation summed in another order: the last digits differ
            seen[1] = (*seen[1][:2], pytest.approx(seen[1][2], rel=1e-12))
        assert seen[0] == seen[1], item.type
    assert {o.passed for o in on_sql} == {True, False}


# --- parity over the example mesh's own suites and data ------------------------------------------------------

_SAMPLE_ROWS = 20_000  # rows of each product validated: the counts must agree, not the throughput


def example_outputs() -> dict:
    """{product: (product, its validated output)} for every example product, with the expectations its
    consumers rely on, built from the packaged source data in dependency order, as a run derives them
    (without publishing)."""
    from dataclasses import replace

    from mesh_core.declare.product import DataProduct
    from mesh_core.governance.config import Level
    from mesh_core.governance.consumers import consumer_expectations, read_reliance
    from mesh_core.run.validation.contract import run_contract

    products = {}
    for domain in EXAMPLE_DOMAINS:
        module = importlib.import_module(f"domains.{domain}.products")
        reliance = read_reliance(Path(module.__file__).parent / "snapshots", domain)
        for value in vars(module).values():
            if isinstance(value, DataProduct):
                products[str(value.ref)] = replace(value, relied_on=consumer_expectations(value.name, reliance, Level.WARN))
    outputs: dict = {}

    def derive(ref: str) -> pd.DataFrame:
        if ref not in outputs:
            product = products[ref]
            inputs = {name: derive(str(i.ref))[list(i.columns)] if i.columns else derive(str(i.ref))
                      for name, i in product.inputs.items()}
            if product.sql is not None or product.engine.value != "pandas":  # computed in its engine
                with tempfile.TemporaryDirectory() as folder:
                    output = run_in_engine(product, inputs, Path(folder))
            else:
                output = product.fn(**inputs)
            outcome, validated = run_contract(product.contract, output, min_rows=product.min_rows)
            assert outcome.passed, f"{ref}: {outcome.description}"
            outputs[ref] = validated
        return outputs[ref]

    return {ref: (products[ref], derive(ref)) for ref in products}


def broken(frame: pd.DataFrame, suite) -> pd.DataFrame:
    """`frame` with rows that break each expectation of the suite: the i-th expectation's rows 2i and 2i+1."""
    bad = frame.copy()
    for i, item in enumerate(suite):
        rows = bad.index[[2 * i % len(bad), (2 * i + 1) % len(bad)]]
        p = item.params
        if item.type == "ExpectColumnValuesToNotBeNull":
            bad[item.column] = bad[item.column].astype(object)
            bad.loc[rows, item.column] = None
        elif item.type == "ExpectColumnValuesToBeNull":  # a value where none may be: in rows null now, which its
            rows = bad.index[bad[item.column].isna()][:2]  # row_condition (if any) selects on good data
            numeric = pd.api.types.is_numeric_dtype(bad[item.column])
            bad[item.column] = bad[item.column].astype(float if numeric else object)
            bad.loc[rows, item.column] = 1.0 if numeric else "x"
        elif item.type == "ExpectColumnValuesToBeInSet":
            allowed = list(p["value_set"])
            outside = (not allowed[0]) if isinstance(allowed[0], bool) else \
                "__not_in_set__" if isinstance(allowed[0], str) else max(allowed) + 1
            bad[item.column] = bad[item.column].astype(object)
            bad.loc[rows, item.column] = outside
        elif item.type == "ExpectColumnValuesToBeBetween":
            bad.loc[rows, item.column] = p["max_value"] + 1 if p.get("max_value") is not None else p["min_value"] - 1
        elif item.type == "ExpectColumnValuesToBeUnique":
            bad.loc[rows[1], item.column] = bad.loc[rows[0], item.column]
        elif item.type == "ExpectCompoundColumnsToBeUnique":
            bad.loc[rows[1], p["column_list"]] = bad.loc[rows[0], p["column_list"]].values
        elif item.type == "ExpectTableRowCountToBeBetween":
            continue  # below: it changes the rows every other expectation counts
        elif sql_problems([item]):
            continue  # not compared: it cannot run in DuckDB
        else:
            raise AssertionError(f"{item.type}: teach broken() how to break it")
    counts = [item.params for item in suite if item.type == "ExpectTableRowCountToBeBetween"]
    if counts and counts[0].get("max_value") is not None:
        bad = pd.concat([bad] * (counts[0]["max_value"] // len(bad) + 1), ignore_index=True)
    return bad


@needs_example()
def test_every_example_suite_gives_the_same_success_and_counts_in_duckdb_as_in_pandas(tmp_path):
    from mesh_core.declare.contract import key_columns

    table, differences, not_on_sql = [], [], []
    for ref, (product, output) in example_outputs().items():
        suite = [*product.suite, *(item for _, item in product.relied_on)]
        flagged = {item.name for item in suite if sql_problems([item])}
        sample = output.head(_SAMPLE_ROWS).reset_index(drop=True)
        keys = key_columns(product.contract)
        for case, frame in (("good", sample), ("bad", broken(sample, suite))):
            paths = parquet(frame, tmp_path / ref / case, parts=2)
            in_pandas = run_suite(product.suite_name, suite, frame, keys)
            on_sql = run_suite_duckdb(product.suite_name, suite, paths, keys)
            for p, s in zip(in_pandas, on_sql, strict=True):
                assert p.check_name == s.check_name
                if p.check_name in flagged:  # sql_problems said so at load: the run cannot evaluate it
                    assert "could not be evaluated" in s.description, s.description
                    not_on_sql.append((ref, case, p.check_name))
                    continue
                row = (ref, case, p.check_name, p.passed, s.passed,
                       p.metadata.get("unexpected_count", p.metadata.get("observed_value")),
                       s.metadata.get("unexpected_count", s.metadata.get("observed_value")))
                table.append(row)
                if row[3] != row[4] or row[5] != row[6] or "exception" in s.metadata:
                    differences.append((*row, s.description))
                if p.metadata != s.metadata or p.description != s.description:
                    print("same counts, other text:", ref, case, p.check_name, p.description, "|", s.description)
    for row in table:
        print(*row, sep=" | ")
    print("flagged by sql_problems, not compared:", not_on_sql)
    assert not differences, differences
    failed_when_broken = {(r[0], r[2]) for r in table if r[1] == "bad" and (not r[3] or r[5] != next(
        g[5] for g in table if g[1] == "good" and g[:1] + g[2:3] == r[:1] + r[2:3]))}
    assert failed_when_broken == {(r[0], r[2]) for r in table}, "some expectation was not broken by broken()"
