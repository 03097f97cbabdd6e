"""Write-audit-publish on a real Dagster instance and real DuckDB files.

Each test publishes a good version of a product, then materializes a bad next
output, and checks that what consumers read is never corrupted."""

from __future__ import annotations

from typing import Optional

import duckdb
import pandas as pd
import pandera.pandas as pa
import pytest
from dagster import AssetKey, DagsterEventType
from pandera.typing import Series

from mesh_core import DomainStorage, Expectation, ProductNotPublishedError, ProductRef, data_product, domain_definitions
from mesh_core.storage.domain_storage import resolve_data_dir


class LedgerContract(pa.DataFrameModel):
    entry_id: Series[int] = pa.Field(unique=True, ge=1)
    amount: Series[int] = pa.Field(ge=0)
    memo: Series[str] = pa.Field(nullable=True)

    class Config:
        strict = True
        coerce = True


GOOD = pd.DataFrame({"entry_id": [1, 2, 3], "amount": [100, 200, 300], "memo": ["a", "b", None]})
KEY = AssetKey(["bank", "ledger"])


class Ledger:
    """A one-product domain whose next output a test sets."""

    def __init__(self, min_rows: int = 1):
        self.output = GOOD

        @data_product(
            domain="bank", description="One row per ledger entry.", owners=["team:bank"], contract=LedgerContract,
            suite=[
                Expectation("ExpectColumnValuesToBeUnique", column="entry_id"),
                Expectation("ExpectColumnValuesToNotBeNull", column="memo", severity="warning"),
            ],
            min_rows=min_rows,
        )
        def ledger():
            return self.output

        @data_product(
            domain="bank", description="One row per ledger entry, doubled.", owners=["team:bank"],
            contract=LedgerContract, suite=[Expectation("ExpectColumnValuesToBeUnique", column="entry_id")],
            inputs={"ledger": "bank.ledger"},
        )
        def doubled(ledger):
            return ledger.assign(amount=ledger["amount"] * 2)

        self.defs = domain_definitions("bank", [ledger, doubled])

    def materialize(self, instance, output=None):
        if output is not None:
            self.output = output
        job = self.defs.resolve_implicit_global_asset_job_def()
        return job.execute_in_process(instance=instance, raise_on_error=False)


def published(name="ledger") -> pd.DataFrame:
    """What a consumer in another domain reads."""
    return DomainStorage(resolve_data_dir(), "audit").read(ProductRef("bank", name))


def table(name="ledger", schema="bank") -> pd.DataFrame:
    path = DomainStorage(resolve_data_dir(), "bank").database_path
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f'SELECT * FROM "{schema}"."{name}" ORDER BY entry_id').df()


def check_evaluations(instance, run_id) -> dict:
    records = instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
    return {
        (r.dagster_event.event_specific_data.asset_key.path[-1], r.dagster_event.event_specific_data.check_name):
            r.dagster_event.event_specific_data
        for r in records
    }


def assert_good_version_intact():
    pd.testing.assert_frame_equal(published(), GOOD)
    stored = table()
    pd.testing.assert_frame_equal(stored.astype(object).where(stored.notna(), None), GOOD.astype(object))


@pytest.fixture
def ledger(instance):
    domain = Ledger()
    first = domain.materialize(instance)
    assert first.success
    return domain


def test_a_good_output_is_published_with_every_check_recorded(ledger, instance):
    result = ledger.materialize(instance)
    assert result.success
    evaluations = check_evaluations(instance, result.run_id)
    assert set(evaluations) == {
        ("ledger", "contract"), ("ledger", "column_values_to_be_unique__entry_id"),
        ("ledger", "column_values_to_not_be_null__memo"),
        ("doubled", "contract"), ("doubled", "column_values_to_be_unique__entry_id"),
    }
    # The warning fires (one null memo) and does not block publishing.
    memo = evaluations[("ledger", "column_values_to_not_be_null__memo")]
    assert not memo.passed and memo.severity.value == "WARN"
    assert published("doubled")["amount"].tolist() == [200, 400, 600]
    latest = instance.get_latest_materialization_event(KEY).asset_materialization
    assert latest.metadata["dagster/row_count"].value == 3


def test_a_contract_violation_fails_the_run_and_keeps_the_last_good_version(ledger, instance):
    bad = GOOD.assign(amount=[100, -5, 300])
    result = ledger.materialize(instance, bad)
    assert not result.success
    contract = check_evaluations(instance, result.run_id)[("ledger", "contract")]
    assert not contract.passed and contract.severity.value == "ERROR"
    [case] = contract.metadata["failure_cases"].records
    assert (case.data["column"], case.data["failure_case"]) == ("amount", "-5")
    failure = instance.all_logs(result.run_id, of_type=DagsterEventType.STEP_FAILURE)[0]
    assert "bank.ledger was not published" in str(failure.dagster_event.event_specific_data.error.to_string())
    assert_good_version_intact()
    # Downstream in the same run never ran on the bad data.
    assert published("doubled")["amount"].tolist() == [200, 400, 600]
    assert table(schema="quarantine")["amount"].tolist() == [100, -5, 300]
    assert instance.get_latest_materialization_event(KEY).run_id != result.run_id


def test_a_coercion_that_would_change_values_blocks_the_publish(ledger, instance):
    result = ledger.materialize(instance, GOOD.assign(amount=[39.81, 28.05, 300.0]))
    assert not result.success
    contract = check_evaluations(instance, result.run_id)[("ledger", "contract")]
    assert not contract.passed and contract.severity.value == "ERROR"
    assert "amount: coercion to int64 would change 2 value(s) (39.81 → 39, 28.05 → 28)" in contract.description
    assert contract.metadata["failure_count"].value == 2
    assert_good_version_intact()
    # Whole numbers given as floats are the same values: they publish.
    assert ledger.materialize(instance, GOOD.assign(amount=[39.0, 28.0, 300.0])).success
    assert published()["amount"].tolist() == [39, 28, 300]


class NotesContract(pa.DataFrameModel):
    entry_id: Optional[Series[int]] = pa.Field(description="The entry noted.")

    class Config:
        coerce = True  # extra columns are kept


class FilteredNotesContract(NotesContract):
    class Config:
        strict = "filter"  # extra columns are dropped


def notes_domain(contract, outputs: list):
    @data_product(domain="bank", description="One row per note.", owners=["team:bank"], contract=contract, access="internal",
                  suite=[Expectation("ExpectTableRowCountToBeBetween", min_value=1)])
    def notes():
        return outputs.pop(0)

    return domain_definitions("bank", [notes]).resolve_implicit_global_asset_job_def()


@pytest.mark.parametrize("contract, output, problem", [
    (NotesContract, pd.DataFrame(index=range(3)), "its output is not a table a reader can open: it has 3 row(s) but no columns"),
    (FilteredNotesContract, pd.DataFrame({"remark": ["a", "b"]}),
     "its output as its contract leaves it is not a table a reader can open: it has 2 row(s) but no columns"),
    (NotesContract, pd.DataFrame({"entry_id": [1, 2], 0: ["x", "y"]}), "column label(s) [0] are not strings"),
    (NotesContract, pd.DataFrame([[1, 2]], columns=["entry_id", "entry_id"]), "column(s) ['entry_id'] appear more than once"),
    (NotesContract, pd.DataFrame([[1, "x"]], columns=pd.MultiIndex.from_tuples([("entry_id", ""), ("remark", "text")])),
     "its columns have 2 levels (a MultiIndex"),
])
def test_an_output_no_reader_could_open_is_refused_and_the_port_keeps_its_version(instance, contract, output, problem):
    good = pd.DataFrame({"entry_id": [1, 2, 3]})
    job = notes_domain(contract, [good, output])
    assert job.execute_in_process(instance=instance, raise_on_error=False).success
    port = resolve_data_dir() / "bank" / "ports" / "notes"
    files = sorted(port.rglob("*"))

    result = job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    failure = instance.all_logs(result.run_id, of_type=DagsterEventType.STEP_FAILURE)[0]
    error = failure.dagster_event.event_specific_data.error.to_string()
    assert "ProductOutputError: bank.notes cannot be published: " in error and problem in error, error
    assert "Nothing was written; consumers keep the last version." in error
    assert sorted(port.rglob("*")) == files  # nothing staged, no commit
    pd.testing.assert_frame_equal(DomainStorage(resolve_data_dir(), "bank").read(ProductRef("bank", "notes")), good)
    assert table("notes")["entry_id"].tolist() == [1, 2, 3]
    assert instance.get_latest_materialization_event(AssetKey(["bank", "notes"])).run_id != result.run_id


def test_reordered_columns_are_published_by_name(ledger, instance):
    reordered = GOOD[["amount", "memo", "entry_id"]].assign(amount=[7, 8, 9])
    assert ledger.materialize(instance, reordered).success
    assert list(published().columns) == ["entry_id", "amount", "memo"]
    assert published()[["entry_id", "amount"]].values.tolist() == [[1, 7], [2, 8], [3, 9]]
    assert table()[["entry_id", "amount"]].values.tolist() == [[1, 7], [2, 8], [3, 9]]


def test_an_unexpected_extra_column_is_blocked_by_the_contract(ledger, instance):
    result = ledger.materialize(instance, GOOD.assign(surprise=1))
    assert not result.success
    assert "column_in_schema" in check_evaluations(instance, result.run_id)[("ledger", "contract")].metadata["problems"].text
    assert_good_version_intact()


def test_a_changed_column_type_is_blocked_and_the_table_is_not_emptied(ledger, instance):
    result = ledger.materialize(instance, GOOD.assign(amount=["lots", "more", "most"]))
    assert not result.success
    assert_good_version_intact()


def test_zero_rows_never_wipe_the_published_version(ledger, instance):
    result = ledger.materialize(instance, GOOD.iloc[0:0])
    assert not result.success
    contract = check_evaluations(instance, result.run_id)[("ledger", "contract")]
    assert "0 rows, fewer than the 1 the product requires" in contract.description
    assert_good_version_intact()


def test_an_empty_product_publishes_only_when_it_says_so(instance):
    domain = Ledger(min_rows=0)
    result = domain.materialize(instance, GOOD.iloc[0:0])
    assert result.is_node_success("bank__ledger")
    assert len(published()) == 0 and len(table()) == 0
    # Its consumer does not allow empty output, so it is blocked, not wiped.
    assert result.is_node_failed("bank__doubled")
    with pytest.raises(ProductNotPublishedError, match="no published version"):
        published("doubled")


def test_a_product_function_must_return_a_dataframe(ledger, instance):
    result = ledger.materialize(instance, [1, 2, 3])
    assert not result.success
    failure = instance.all_logs(result.run_id, of_type=DagsterEventType.STEP_FAILURE)[0]
    assert "returned list; a product function must return a pandas DataFrame" in failure.dagster_event.event_specific_data.error.to_string()
    assert_good_version_intact()
