"""A pandas contract run in the engine: Arrow casts, Pandera's polars backend, the same outcome as pandas."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pandera.pandas as pa
import polars as pl
import pyarrow as pyarrow
import pyarrow.parquet as pq
import pytest
from pandera.typing import Series

from mesh_core.declare.contract import is_contract
from mesh_core.errors import ContractConversionError, ProductOutputError
from mesh_core.run.validation.contract import run_contract
from mesh_core.run.validation.engine_contract import arrow_schema, conform, engine_problems, run_contract_polars
from mesh_core.storage.duckdb_memory import MEMORY_LIMIT_ENV
from tests.support import EXAMPLE_DOMAINS, REPO, needs_example


class ReadingsContract(pa.DataFrameModel):
    sensor: Series[str] = pa.Field(isin=["a", "b"])
    value: Series[float] = pa.Field(ge=0, nullable=True)
    count: Series[int] = pa.Field(ge=1)
    at: Series[pd.DatetimeTZDtype("ns", "UTC")]

    class Config:
        coerce = True
        strict = True
        unique = ["sensor", "at"]


class PandasOnlyContract(pa.DataFrameModel):
    code: Series[str] = pa.Field(str_length=2)
    amount: Series[float] = pa.Field(ge=0)
    anything: Series[object]

    @pa.check("amount")
    def whole(cls, amount: pd.Series) -> pd.Series:
        return amount == amount.round()

    @pa.dataframe_check
    def balanced(cls, df: pd.DataFrame) -> pd.Series:
        return df["amount"] >= 0


def reader(batch_rows: int = 2, **columns) -> pyarrow.RecordBatchReader:
    table = pyarrow.table(columns)
    return pyarrow.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=batch_rows))


def test_engine_problems_name_each_check_written_for_pandas_and_the_fix():
    problems = engine_problems(PandasOnlyContract)
    assert len(problems) == 3, problems
    assert any("PandasOnlyContract.amount: check 'whole' is written for pandas" in p for p in problems)
    assert any("PandasOnlyContract: dataframe check 'balanced'" in p for p in problems)
    assert any("PandasOnlyContract.anything: type object has no Arrow/Polars equivalent" in p for p in problems)
    assert all("keep the product in pandas" in p for p in problems)
    assert engine_problems(ReadingsContract) == []  # built-in Field checks run on polars


def test_a_contract_the_engine_cannot_run_fails_closed_naming_why():
    frame = pl.LazyFrame({"code": ["AB"], "amount": [1.5], "anything": ["x"]})
    outcome = run_contract_polars(PandasOnlyContract, frame, min_rows=1)
    assert not outcome.passed and outcome.blocks_publish
    assert "check 'whole' is written for pandas" in outcome.metadata["problems"]


def test_arrow_schema_is_the_contracts_columns_as_arrow_types():
    schema = arrow_schema(ReadingsContract)
    assert schema.names == ["sensor", "value", "count", "at"]
    assert [str(t) for t in schema.types] == ["string", "double", "int64", "timestamp[ns, tz=UTC]"]
    assert schema.field("value").nullable and not schema.field("count").nullable


def test_conform_casts_each_batch_losslessly_and_orders_columns_as_the_contract():
    at = pyarrow.array([0, 3_600_000_000, 7_200_000_000], pyarrow.timestamp("us"))
    source = reader(count=pyarrow.array(["1", "2", "3"]), at=at, sensor=pyarrow.array(["a", "b", "a"], pyarrow.large_string()),
                    value=pyarrow.array([1, None, 2], pyarrow.int32()))
    table = conform(source, ReadingsContract, "plant.readings").read_all()
    assert table.schema.names == ["sensor", "value", "count", "at"]
    assert [str(t) for t in table.schema.types] == ["string", "double", "int64", "timestamp[ns, tz=UTC]"]
    assert table.column("count").to_pylist() == [1, 2, 3] and table.column("value").to_pylist() == [1.0, None, 2.0]


@pytest.mark.parametrize("mode, kept", [(True, ["sensor", "extra"]), ("filter", ["sensor"])])
def test_conform_keeps_extra_columns_for_the_contract_to_report_unless_it_filters(mode, kept):
    class Strict(pa.DataFrameModel):
        sensor: Series[str]

        class Config:
            coerce = True
            strict = mode

    table = conform(reader(extra=[1, 2], sensor=["a", "b"]), Strict, "plant.readings").read_all()
    assert table.schema.names == kept


@pytest.mark.parametrize("column, values, sample", [
    ("count", [1.0, 2.5, 3.75], "2.5, 3.75"),  # a float that would be truncated
    ("count", ["1", "x", "y"], "'x', 'y'"),  # text that does not parse
    ("count", [1, 2**63 - 1, 2], None),  # fits: no error
])
def test_a_value_that_does_not_convert_stops_the_stream_naming_column_count_and_values(column, values, sample):
    at = pyarrow.array([0, 1, 2], pyarrow.timestamp("ns", "UTC"))
    stream = conform(reader(3, sensor=["a", "b", "a"], value=[1.0, 2.0, 3.0], count=values, at=at),
                     ReadingsContract, "plant.readings")
    if sample is None:
        assert stream.read_all().column("count").to_pylist() == values
        return
    with pytest.raises(ContractConversionError, match=rf"plant\.readings cannot be published: count: 2 value\(s\) "
                                                      rf"do not convert to int64 \({sample}\)") as caught:
        stream.read_all()
    assert isinstance(caught.value, ProductOutputError) and caught.value.column == "count"


def test_an_unsigned_integer_past_int64_is_counted_and_shown_not_lost_in_the_round_trip():
    """uint64 -> int64 -> uint64 without safety gives the value back, so the round trip alone finds nothing."""
    at = pyarrow.array([0, 1, 2], pyarrow.timestamp("ns", "UTC"))
    count = pyarrow.array([1, 2**63 + 5, 2**64 - 1], pyarrow.uint64())
    stream = conform(reader(3, sensor=["a"] * 3, value=[1.0] * 3, count=count, at=at), ReadingsContract, "plant.readings")
    with pytest.raises(ContractConversionError, match=r"count: 2 value\(s\) do not convert to int64 "
                                                      r"\(9223372036854775813, 18446744073709551615\)"):
        stream.read_all()


def test_the_stream_stops_at_the_first_batch_that_does_not_convert():
    at = pyarrow.array([0, 1, 2, 3], pyarrow.timestamp("ns", "UTC"))
    stream = conform(reader(2, sensor=["a"] * 4, value=[1.0] * 4, count=[1, 2, 3.5, 4.5], at=at), ReadingsContract, "p.r")
    assert stream.read_next_batch().column(2).to_pylist() == [1, 2]  # lazily: the good batch goes through
    with pytest.raises(ContractConversionError, match=r"count: 2 value\(s\) do not convert to int64 \(3.5, 4.5\)"):
        stream.read_next_batch()


def test_a_time_zone_dropped_by_the_cast_is_refused():
    class Naive(pa.DataFrameModel):
        at: Series[pd.Timestamp]

        class Config:
            coerce = True

    at = pyarrow.array([0, 1], pyarrow.timestamp("ns", "America/New_York"))
    with pytest.raises(ContractConversionError, match="at: 2 value"):
        conform(reader(at=at), Naive, "plant.readings").read_all()


def test_run_contract_polars_reads_like_run_contract():
    frame = pd.DataFrame({
        "sensor": ["a", "z", "z", "a", "a"], "value": [1.0, -1.0, None, 2.0, 3.0], "count": [1, 0, 2, 3, 4],
        "at": pd.to_datetime([0, 1, 2, 3, 3], unit="h", utc=True), "extra": [1, 2, 3, 4, 5],
    })
    expected, _ = run_contract(ReadingsContract, frame, min_rows=6)
    got = run_contract_polars(ReadingsContract, pl.from_pandas(frame).lazy(), min_rows=6)
    assert not got.passed and got.check_name == expected.check_name == "contract"
    assert got.metadata["problems"] == expected.metadata["problems"]
    assert got.description == expected.description
    assert got.metadata["failure_count"] == expected.metadata["failure_count"]
    assert got.metadata["offending_values"] == expected.metadata["offending_values"]
    assert set(got.metadata) == set(expected.metadata)
    assert got.metadata["dagster/row_count"] == 5


def test_run_contract_polars_casts_a_frame_that_was_not_conformed_without_changing_values():
    frame = pl.LazyFrame({"sensor": ["a", "b"], "value": [1, 2], "count": [1.0, 2.5],
                          "at": pl.Series([0, 1]).cast(pl.Datetime("us"))})
    outcome = run_contract_polars(ReadingsContract, frame, min_rows=1)
    assert not outcome.passed
    assert outcome.metadata["problems"] == "count: 1 value(s) do not convert to int64 (2.5)"


def test_a_frame_checked_in_chunks_reads_as_one_checked_whole():
    """Failures in every chunk add up, a failure the same in each chunk (a missing column, a type that
    does not compare) counts once, and failure cases keep their row in the whole frame."""
    rows = 35_000
    sensor = ["a", "b"] * (rows // 2)
    sensor[rows - 2] = "z"  # not in the set
    value = [-1.0 if i % 5_000 == 4_999 else float(i % 7) for i in range(rows)]  # 7 below 0, in every chunk
    at = pl.datetime_range(pl.datetime(2013, 1, 1), pl.datetime(2013, 1, 1) + pl.duration(minutes=rows - 1), "1m",
                           eager=True, time_zone="UTC")
    frame = pl.LazyFrame({"sensor": sensor, "value": value, "count": [1] * rows, "at": at})
    frame = frame.with_columns(pl.when(pl.int_range(pl.len()) == rows - 1).then(pl.col("at").get(1))
                               .otherwise(pl.col("at")).alias("at"))  # the last row ("b") repeats row 1's key
    whole = run_contract_polars(ReadingsContract, frame, min_rows=1)
    chunked = run_contract_polars(ReadingsContract, frame, min_rows=1, chunk_bytes=1)  # 10,000 rows a chunk: 4 chunks
    assert not whole.passed
    assert chunked.metadata["problems"] == whole.metadata["problems"]
    assert chunked.metadata["failure_count"] == whole.metadata["failure_count"] == 7 + 1 + 2 * 2  # below 0; not in the set; the key, once per key column
    assert chunked.metadata["failure_cases"] == whole.metadata["failure_cases"]
    rows_shown = {r.data["index"] for r in chunked.metadata["failure_cases"].records if r.data["column"] == "value"}
    assert rows_shown == {str(i) for i in range(4_999, rows, 5_000)}  # positions in the whole frame, not in a chunk

    missing = run_contract_polars(ReadingsContract, frame.drop("count"), min_rows=1, chunk_bytes=1)
    assert "column_in_dataframe" in missing.metadata["problems"]
    assert missing.metadata["failure_count"] == chunked.metadata["failure_count"] + 1


def test_uniqueness_that_cannot_be_counted_within_the_memory_limit_fails_closed_naming_the_setting(tmp_path, monkeypatch):
    """Every one of 400K rows repeated: DuckDB must hold each repeated key to count it. Under a limit too
    small for that the contract fails (nothing would be published) and says which setting to raise; with
    room, the same rows are counted exactly."""
    class Keyed(pa.DataFrameModel):
        code: Series[str]
        n: Series[int]

        class Config:
            unique = ["code", "n"]

    rows = 400_000
    path = tmp_path / "keys.parquet"
    pl.DataFrame({"code": [f"key-{i % (rows // 2):012d}" for i in range(rows)],
                  "n": [i % (rows // 2) for i in range(rows)]}).write_parquet(path, row_group_size=50_000)
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "8MB")
    starved = run_contract_polars(Keyed, [str(path)], min_rows=1)
    assert not starved.passed
    assert starved.metadata["problems"] == (
        f"code, n: multiple_fields_uniqueness could not be counted within DuckDB's memory limit 8MB (${MEMORY_LIMIT_ENV}): "
        f"too many repeated keys to hold. Nothing is published; raise it, e.g. {MEMORY_LIMIT_ENV}=4GB")
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "256MB")
    counted = run_contract_polars(Keyed, [str(path)], min_rows=1)
    assert counted.metadata["problems"].splitlines() == ["code: multiple_fields_uniqueness (400000 failures)",
                                                         "n: multiple_fields_uniqueness (400000 failures)"]


# --- parity over the example contracts -------------------------------------------------------------


def example_contracts(domain: str) -> list[type]:
    module = importlib.import_module(f"domains.{domain}.contracts")
    return [obj for obj in vars(module).values() if is_contract(obj) and obj.__module__ == module.__name__]


def good_frame(contract, rows: int = 24) -> pd.DataFrame:
    """Rows the contract's built-in checks accept, one null in each nullable column, every text,
    open-ended number and timestamp distinct (so unique columns and keys hold)."""
    schema = contract.to_schema()
    data = {}
    for name, column in schema.columns.items():
        stats = {check.name: check.statistics for check in column.checks}
        dtype = str(column.dtype)
        if "isin" in stats:
            allowed = list(stats["isin"]["allowed_values"])
            values = [allowed[i % len(allowed)] for i in range(rows)]
        elif dtype in ("str", "string"):
            length = stats.get("str_length", {})
            width = length.get("exact_value") or length.get("min_value") or 6
            values = ["".join(chr(65 + (i // 26**k) % 26) for k in reversed(range(width))) for i in range(rows)]
        elif dtype.startswith("datetime64"):
            values = pd.date_range("2013-01-01", periods=rows, freq="h", tz="UTC" if "UTC" in dtype else None)
        elif dtype == "bool":
            values = [i % 2 == 0 for i in range(rows)]
        else:
            low = [s.get("min_value") for k, s in stats.items() if k in ("greater_than", "greater_than_or_equal_to")]
            high = [s.get("max_value") for k, s in stats.items() if k in ("less_than", "less_than_or_equal_to")]
            is_float = "float" in dtype
            start = (low[0] + (0.25 if is_float else 1)) if low else (0.25 if is_float else 0)
            span = max(1, int(high[0] - start)) if high else None
            values = [start + (i % span if span else i) for i in range(rows)]
        series = pd.Series(values, dtype=column.dtype.type if dtype not in ("str", "string") else object)
        if column.nullable and not column.unique:
            series = series.astype("Int64") if dtype == "int64" else series
            series.iloc[0] = None
        data[name] = series
    return pd.DataFrame(data)


def broken_frames(contract, good: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The good rows with one rule broken each (where the contract has that rule)."""
    schema = contract.to_schema()
    broken = {}

    def changed(name, rows, value):
        frame = good.copy()
        frame[name] = frame[name].astype(object)
        for row in rows:
            frame.at[row, name] = value
        frame.attrs["broken"] = name
        return frame

    for name, column in schema.columns.items():
        stats = {check.name: check.statistics for check in column.checks}
        kind = _kind(str(column.dtype))
        if not column.nullable and f"nulls ({kind})" not in broken:
            broken[f"nulls ({kind})"] = changed(name, [1, 2, 3], None)
        if "isin" in stats and "not in set" not in broken:
            broken["not in set"] = changed(name, [2, 5], "ZZZ")
        if "str_length" in stats and "wrong length" not in broken:
            broken["wrong length"] = changed(name, [4], "TOO_LONG_A_VALUE")
        for bound, stat in stats.items():
            if bound.startswith(("greater", "less")) and f"out of range ({bound})" not in broken:
                edge = stat.get("min_value", stat.get("max_value"))
                broken[f"out of range ({bound})"] = changed(name, [6, 7], edge - 1 if bound.startswith("greater") else edge + 1)
        if column.unique and "duplicate unique column" not in broken:
            broken["duplicate unique column"] = changed(name, [8, 9], good.at[10, name])
    if schema.unique:
        keys = [schema.unique] if isinstance(schema.unique, str) else list(schema.unique)
        frame = good.copy()
        for key in keys:
            frame[key] = frame[key].astype(object)
            for row in (11, 12):
                frame.at[row, key] = good.at[13, key]
        broken["duplicate key (Config.unique)"] = frame
    broken["too few rows"] = good
    return broken


def _kind(dtype: str) -> str:
    return "text" if dtype in ("str", "string") else "timestamp" if dtype.startswith("datetime") else dtype


def compare(contract, frame: pd.DataFrame, tmp_path, min_rows: int) -> tuple[dict, dict]:
    """Both engines on the same rows, the polars one as a run does it: the stream conformed to the
    contract, staged as Parquet (timestamps in microseconds, as Delta keeps them), scanned lazily."""
    path = tmp_path / "part-0.parquet"
    stream = conform(pyarrow.Table.from_pandas(frame, preserve_index=False).to_reader(max_chunksize=10), contract, "d.p")
    pq.write_table(stream.read_all(), path, coerce_timestamps="us")
    pandas_outcome, _ = run_contract(contract, frame, min_rows=min_rows)
    polars_outcome = run_contract_polars(contract, [str(path)], min_rows=min_rows)
    return [{"passed": o.passed, "failures": o.metadata.get("failure_count", 0),
             "problems": sorted(o.metadata.get("problems", "").splitlines()),
             "offending": getattr(o.metadata.get("offending_values"), "data", None)}
            for o in (pandas_outcome, polars_outcome)]


def without_numpy_knock_ons(outcome: dict, column: str) -> dict:
    """The one difference kept: numpy's int64 and bool cannot hold a null. On pandas a null in an
    integer column also fails its coercion and its type (two more problems, one failure per null
    each); a null in a bool column is coerced to False, which fails as a changed value instead of
    as not_nullable. Arrow and Polars hold the null and report it once, as not_nullable."""
    problems = outcome["problems"]
    changed = [p for p in problems if p.startswith(f"{column}: coercion to bool would change")]
    if changed:
        count = int(changed[0].split("would change ")[1].split(" ")[0])
        return outcome | {"problems": sorted([p for p in problems if p not in changed]
                                             + [f"{column}: not_nullable ({count} failures)"])}
    knock_ons = [p for p in problems if "do not convert to int64 (null)" in p or "expected int64, got" in p]
    assert len(knock_ons) == 2, problems
    nulls = int(knock_ons[0].split(": ")[1].split(" ")[0])
    return outcome | {"problems": [p for p in problems if p not in knock_ons], "failures": outcome["failures"] - 2 * nulls}


@pytest.mark.parametrize("domain", [pytest.param(d, marks=needs_example(d)) for d in EXAMPLE_DOMAINS])
def test_pandas_and_polars_agree_on_every_example_contract_with_good_and_broken_data(domain, tmp_path):
    table = []
    for contract in example_contracts(domain):
        unsupported = engine_problems(contract)
        if unsupported:  # the engine refuses it at load, and fails it closed at run: never a silent pass
            outcome = run_contract_polars(contract, pl.from_pandas(good_frame(contract)).lazy(), min_rows=1)
            assert not outcome.passed and outcome.metadata["problems"] == "\n".join(unsupported)
            table.append(f"{contract.__name__}: not run in polars ({'; '.join(unsupported)})")
            continue
        good = good_frame(contract)
        pandas_good, polars_good = compare(contract, good, tmp_path, min_rows=1)
        assert pandas_good["passed"], (contract.__name__, pandas_good["problems"])  # the fixture is right
        assert polars_good == pandas_good
        table.append(f"{contract.__name__} x good: both pass")
        for rule, frame in broken_frames(contract, good).items():
            min_rows = len(frame) + 1 if rule == "too few rows" else 1
            pandas_outcome, polars_outcome = compare(contract, frame, tmp_path, min_rows)
            assert not pandas_outcome["passed"], (contract.__name__, rule)
            if rule in ("nulls (int64)", "nulls (bool)"):
                pandas_outcome = without_numpy_knock_ons(pandas_outcome, frame.attrs["broken"])
            assert polars_outcome == pandas_outcome, (contract.__name__, rule)
            table.append(f"{contract.__name__} x {rule}: both fail, {pandas_outcome['failures']} failure(s): "
                         + " | ".join(pandas_outcome["problems"]))
    print("\n" + "\n".join(table))


# --- memory -----------------------------------------------------------------------------------------

MEMORY_PROBE = textwrap.dedent(r"""
    import resource, sys
    import pandera.pandas as pa, polars as pl
    from pandera.typing import Series
    from mesh_core.run.validation.engine_contract import run_contract_polars

    source = "class Wide(pa.DataFrameModel):\n    key: Series[int] = pa.Field(ge=0, unique=True)\n"
    source += "    sensor: Series[str] = pa.Field(isin=['a', 'b', 'c'])\n"
    source += "".join(f"    v{i}: Series[float] = pa.Field(ge=0, le=1, nullable=True)\n" for i in range(12))
    exec(source)

    def rss_mb():
        return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 2**20

    run_contract_polars(Wide, pl.scan_parquet(sys.argv[1]).head(1000), min_rows=1)  # imports and warm-up
    before = rss_mb()
    outcome = run_contract_polars(Wide, [sys.argv[1]], min_rows=1, chunk_bytes=8 * 2**20)  # as a run audits staged files
    # VmHWM: this process's own peak (ru_maxrss would start from the forking test worker's)
    peak = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024
    print(outcome.passed, outcome.metadata.get("failure_count", 0), outcome.metadata["dagster/row_count"], round(before), round(peak))
    print(outcome.metadata.get("problems", ""))
""")


def test_a_table_larger_than_a_chunk_is_validated_with_exact_counts_in_bounded_memory(tmp_path):
    """4M rows (~460 MB collected) checked in 8 MB chunks, the key's uniqueness counted by DuckDB under a
    64 MB limit: failures far apart (the first and last rows) are all counted, and the audit's memory
    grows by well under the collected frame (~115 MB here; the same at 12M and 36M rows, docs/performance.md)."""
    rows = 4_000_000
    path = tmp_path / "wide.parquet"
    rng = np.random.default_rng(0)
    chunk = 500_000
    schema = pyarrow.schema([("key", pyarrow.int64()), ("sensor", pyarrow.string())]
                            + [(f"v{i}", pyarrow.float64()) for i in range(12)])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, chunk):
            columns = {"key": np.arange(start, start + chunk), "sensor": np.array(["a", "b", "c"])[np.arange(chunk) % 3]}
            columns |= {f"v{i}": rng.random(chunk) for i in range(12)}
            if start + chunk == rows:  # the last rows break rules the first rows hold: 10 out of range, a repeated key
                columns["v0"][-10:] = 2.0
                columns["key"][-1] = 0
            writer.write_table(pyarrow.table(columns, schema=schema), row_group_size=100_000)
    in_memory_mb = rows * (8 + 8 + 13 * 8) / 2**20  # the frame collected: ~460 MB
    probe = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(path)], capture_output=True, text=True,
                           cwd=REPO, timeout=600, env={**os.environ, MEMORY_LIMIT_ENV: "64MB"})
    assert probe.returncode == 0, probe.stderr[-3000:]
    figures, problems = probe.stdout.split("\n", 1)
    passed, failures, counted, before, peak = figures.split()
    growth = float(peak) - float(before)
    print(f"rows {rows}, frame ~{in_memory_mb:.0f} MB collected; RSS before {before} MB, peak {peak} MB "
          f"(+{growth:.0f} MB); found: {problems.strip()!r}")
    assert passed == "False" and counted == str(rows)
    assert sorted(problems.split("\n")[:2]) == ["key: field_uniqueness (2 failures)",
                                                 "v0: less_than_or_equal_to(1) (10 failures)"]
    assert failures == "12"
    assert growth < in_memory_mb / 2, f"the audit grew by {growth:.0f} MB for a {in_memory_mb:.0f} MB frame"
