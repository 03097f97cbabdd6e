"""Write-audit-publish in every engine, on a real Dagster instance, real Delta ports and real DuckDB files.

The same ledger is produced as pandas, a Polars LazyFrame, a DuckDB relation and an Arrow table,
and read by a consumer in each engine (Polars, SQL, a DuckDB relation, an Arrow dataset, pandas).
Every engine must publish the same rows with the same checks, and block bad data with the same
check names, keeping the last good version and leaving nothing staged behind."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from dagster import AssetKey, DagsterEventType

from mesh_core import DomainStorage, Expectation, ProductRef, data_product, domain_definitions
from mesh_core.storage.domain_storage import resolve_data_dir
from tests.integration.test_write_audit_publish import GOOD, KEY, LedgerContract  # the same one-product domain


CHECKS = {("ledger", "contract"), ("ledger", "column_values_to_be_unique__entry_id"),
          ("ledger", "column_values_to_not_be_null__memo"),
          ("doubled", "contract"), ("doubled", "column_values_to_be_unique__entry_id")}


def as_engine(frame: pd.DataFrame, engine: str):
    """The ledger's output as the product's engine produces it."""
    if engine == "pandas":
        return frame
    if engine == "polars":
        return pl.from_pandas(frame).lazy()
    if engine == "duckdb":
        return duckdb.connect().from_arrow(pyarrow.Table.from_pandas(frame, preserve_index=False))
    if engine == "arrow":
        return pyarrow.Table.from_pandas(frame, preserve_index=False)
    raise ValueError(engine)


def consumer(engine: str):
    """bank.doubled, written in `engine`."""
    declared = dict(domain="bank", description="One row per ledger entry, doubled.", owners=["team:bank"],
                    contract=LedgerContract, suite=[Expectation("ExpectColumnValuesToBeUnique", column="entry_id")],
                    inputs={"ledger": "bank.ledger"})
    if engine == "sql":
        @data_product(**declared, sql="select entry_id, amount * 2 as amount, memo from ledger")
        def doubled(ledger):
            """SQL."""
    elif engine == "polars":
        @data_product(**declared)
        def doubled(ledger: pl.LazyFrame) -> pl.LazyFrame:
            return ledger.with_columns(amount=pl.col("amount") * 2)
    elif engine == "duckdb":
        @data_product(**declared)
        def doubled(ledger: duckdb.DuckDBPyRelation):
            return ledger.select("entry_id, amount * 2 as amount, memo")
    elif engine == "arrow":
        @data_product(**declared)
        def doubled(ledger: ds.Dataset):
            table = ledger.to_table()
            return table.set_column(1, "amount", pc.multiply(table["amount"], 2))
    else:
        @data_product(**declared)
        def doubled(ledger: pd.DataFrame):
            return ledger.assign(amount=ledger["amount"] * 2)
    return doubled


class Ledger:
    """A domain whose ledger is produced in `producer` and read by `doubled` in `reader`."""

    def __init__(self, producer: str, reader: str):
        self.output, self.producer = GOOD, producer

        @data_product(
            domain="bank", description="One row per ledger entry.", owners=["team:bank"], contract=LedgerContract,
            suite=[Expectation("ExpectColumnValuesToBeUnique", column="entry_id"),
                   Expectation("ExpectColumnValuesToNotBeNull", column="memo", severity="warning")],
        )
        def ledger():
            return as_engine(self.output, self.producer)

        self.defs = domain_definitions("bank", [ledger, consumer(reader)])

    def materialize(self, instance, output=None):
        if output is not None:
            self.output = output
        return self.defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance, raise_on_error=False)


def published(name="ledger") -> pd.DataFrame:
    frame = DomainStorage(resolve_data_dir(), "audit").read(ProductRef("bank", name))
    return frame.sort_values("entry_id", ignore_index=True)


def stored(name="ledger", schema="bank") -> pd.DataFrame:
    with duckdb.connect(str(DomainStorage(resolve_data_dir(), "bank").database_path), read_only=True) as con:
        return con.execute(f'SELECT * FROM "{schema}"."{name}" ORDER BY entry_id').df()


def port_files(name="ledger") -> set[str]:
    port = Path(DomainStorage(resolve_data_dir(), "bank").port(ProductRef("bank", name)).uri)
    return {p.name for p in port.glob("*.parquet")}


def evaluations(instance, run_id) -> dict:
    return {(r.dagster_event.event_specific_data.asset_key.path[-1], r.dagster_event.event_specific_data.check_name):
            r.dagster_event.event_specific_data
            for r in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)}


def assert_same(frame: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(frame.astype(object).where(frame.notna(), None),
                                  expected.astype(object).where(expected.notna(), None))


ENGINES = ["pandas", "polars", "duckdb", "arrow"]
READERS = ["polars", "sql", "duckdb", "arrow", "pandas"]


@pytest.mark.parametrize("producer, reader", [(p, r) for p in ENGINES for r in READERS if p == "pandas" or r == "polars"]
                         + [("polars", "sql"), ("duckdb", "pandas"), ("arrow", "duckdb")])
def test_every_engine_publishes_the_same_rows_with_the_same_checks(instance, producer, reader):
    result = Ledger(producer, reader).materialize(instance)
    assert result.success
    found = evaluations(instance, result.run_id)
    assert set(found) == CHECKS
    memo = found[("ledger", "column_values_to_not_be_null__memo")]
    assert not memo.passed and memo.severity.value == "WARN"  # a warning in every engine, never a block
    assert memo.metadata["unexpected_count"].value == 1
    assert_same(published(), GOOD)
    assert_same(published("doubled"), GOOD.assign(amount=GOOD["amount"] * 2))
    assert_same(stored(), GOOD)  # the DuckDB store, loaded from the port
    materialization = instance.get_latest_materialization_event(KEY).asset_materialization
    assert materialization.metadata["dagster/row_count"].value == 3
    assert "| entry_id | amount | memo |" in materialization.metadata["mesh/preview"].value


@pytest.mark.parametrize("producer", ENGINES)
@pytest.mark.parametrize("bad, check, case", [
    (GOOD.assign(amount=[100, -5, 300]), "contract", ("amount", "-5")),
    (GOOD.assign(entry_id=[1, 1, 3]), "column_values_to_be_unique__entry_id", None),
], ids=["contract", "suite"])
def test_bad_data_is_blocked_in_every_engine_with_the_same_check_and_the_last_good_version_kept(instance, producer, bad, check, case):
    domain = Ledger(producer, "polars")
    assert domain.materialize(instance).success
    good_files = port_files()
    result = domain.materialize(instance, bad)
    assert not result.success
    failed = evaluations(instance, result.run_id)[("ledger", check)]
    assert not failed.passed and failed.severity.value == "ERROR"
    if case:
        records = failed.metadata["failure_cases"].records
        assert case in {(r.data["column"], r.data["failure_case"]) for r in records}
    failure = instance.all_logs(result.run_id, of_type=DagsterEventType.STEP_FAILURE)[0]
    assert "bank.ledger was not published" in failure.dagster_event.event_specific_data.error.to_string()
    assert_same(published(), GOOD)
    assert_same(stored(), GOOD)
    assert port_files() == good_files  # nothing staged is left behind
    assert len(stored(schema="quarantine")) == 3  # the blocked output, kept for debugging
    assert instance.get_latest_materialization_event(KEY).run_id != result.run_id


@pytest.mark.parametrize("producer", ENGINES)
def test_a_coercion_that_would_change_values_blocks_the_publish_in_every_engine(instance, producer):
    domain = Ledger(producer, "polars")
    assert domain.materialize(instance).success
    result = domain.materialize(instance, GOOD.assign(amount=[39.81, 28.05, 300.0]))
    assert not result.success
    contract = evaluations(instance, result.run_id)[("ledger", "contract")]
    assert not contract.passed and "amount" in contract.description
    assert_same(published(), GOOD)


def test_a_product_returning_what_no_engine_is_fails_naming_the_types(instance):
    domain = Ledger("pandas", "polars")
    result = domain.materialize(instance, pd.DataFrame({"entry_id": [1]}).to_dict())  # a dict
    assert not result.success
    failure = instance.all_logs(result.run_id, of_type=DagsterEventType.STEP_FAILURE)[0]
    text = failure.dagster_event.event_specific_data.error.to_string()
    assert "Product bank.ledger returned dict" in text and "Polars DataFrame or LazyFrame" in text


@pytest.mark.parametrize("reader", ["polars", "sql", "arrow"])
def test_a_corrupted_data_file_is_caught_by_a_lazy_read_before_any_row_reaches_the_consumer(instance, reader):
    domain = Ledger("polars", reader)
    assert domain.materialize(instance).success
    port = Path(DomainStorage(resolve_data_dir(), "bank").port(ProductRef("bank", "ledger")).uri)
    [data_file] = sorted(port.glob("part-*.parquet"))
    body = bytearray(data_file.read_bytes())
    body[len(body) // 2] ^= 0x01
    data_file.write_bytes(bytes(body))
    before = published("doubled")
    job = domain.defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, raise_on_error=False, asset_selection=[AssetKey(["bank", "doubled"])])
    assert not result.success
    failure = instance.all_logs(result.run_id, of_type=DagsterEventType.STEP_FAILURE)[0]
    text = failure.dagster_event.event_specific_data.error.to_string()
    assert "IntegrityError" in text and f"Data file {data_file} of bank.ledger version 0 is corrupt" in text
    assert_same(published("doubled"), before)  # the consumer kept its version


def test_an_engine_product_keeping_previous_majors_is_refused_at_load_and_at_run_time(instance):
    from mesh_core import DefinitionError, PreviousMajor

    class Old(LedgerContract):
        pass

    declared = dict(domain="bank", description="One row per ledger entry.", owners=["team:bank"], contract=LedgerContract,
                    suite=[Expectation("ExpectColumnValuesToBeUnique", column="entry_id")], version="2.0.0",
                    previous_majors=[PreviousMajor("1.0.0", contract=Old, until="2099-01-01", adapt=lambda frame: frame)])

    @data_product(**declared)
    def annotated() -> pl.LazyFrame:
        return pl.from_pandas(GOOD).lazy()

    with pytest.raises(DefinitionError, match=r"\[engine-previous-majors\] bank\.annotated: returns polars .* previous majors 1"):
        domain_definitions("bank", [annotated])

    @data_product(**declared)
    def unannotated():  # load cannot know: the run says so, and publishes nothing
        return pl.from_pandas(GOOD).lazy()

    result = domain_definitions("bank", [unannotated]).resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, raise_on_error=False)
    assert not result.success
    text = instance.all_logs(result.run_id, of_type=DagsterEventType.STEP_FAILURE)[0].dagster_event.event_specific_data.error.to_string()
    assert "Product bank.unannotated returned LazyFrame and keeps previous majors (1)" in text
    assert instance.get_latest_materialization_event(AssetKey(["bank", "unannotated"])) is None
