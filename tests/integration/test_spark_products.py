"""Spark products on a real Spark Connect server, a real Dagster instance and real Delta ports.

A pandas ledger is read by bank.doubled, written for Spark (its input a Spark DataFrame, its output
one): the executors write the files, Mesh commits them as one version, audited on Spark with the
same checks as every engine; bad data is blocked with the same check names; pandas and Polars
consumers read what Spark published, pinned; a SQL product runs in Spark SQL once the domain has a
Spark configured; an unreachable Spark is one line naming its URL and the cause.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import polars as pl
import pytest
from pyspark.sql import DataFrame as SparkDataFrame
from pyspark.sql import functions as F

from mesh_core import DomainStorage, Expectation, ProductRef, data_product, domain_definitions
from mesh_core.run.failure import failure_text
from mesh_core.run.spark import REMOTE_ENV, SPARK_RESOURCE_KEY, SparkEngine
from mesh_core.storage.domain_storage import resolve_data_dir
from tests.integration.test_engine_products import CHECKS, as_engine, assert_same, evaluations, port_files
from tests.integration.test_write_audit_publish import GOOD, LedgerContract
from tests.support import needs_example

SUITE = [Expectation("ExpectColumnValuesToBeUnique", column="entry_id")]
DECLARED = dict(domain="bank", owners=["team:bank"], contract=LedgerContract)


def ledger_product(box: dict):
    @data_product(**DECLARED, description="One row per ledger entry.",
                  suite=[*SUITE, Expectation("ExpectColumnValuesToNotBeNull", column="memo", severity="warning")])
    def ledger():
        return as_engine(box["output"], "pandas")

    return ledger


def spark_doubled(box: dict):
    @data_product(**DECLARED, description="One row per ledger entry, doubled, computed on Spark.", suite=SUITE,
                  inputs={"ledger": "bank.ledger"})
    def doubled(ledger: SparkDataFrame) -> SparkDataFrame:
        out = ledger.withColumn("amount", F.col("amount") * 2)
        if box.get("duplicate"):  # bad data: every entry twice, and a negative amount
            out = out.unionByName(out.withColumn("amount", F.lit(-1)))
        if box.get("fail_midway"):  # a task that raises while the executors write
            out = out.withColumn("amount", F.expr("assert_true(entry_id < 3)").cast("bigint") + F.col("amount"))
        return out

    return doubled


def reader(engine: str):
    """bank.<engine>_copy: reads the Spark-published bank.doubled in `engine`."""
    declared = dict(DECLARED, description=f"One row per ledger entry: bank.doubled, read in {engine}.", suite=SUITE, inputs={"doubled": "bank.doubled"})
    if engine == "polars":
        @data_product(**declared)
        def polars_copy(doubled: pl.LazyFrame) -> pl.LazyFrame:
            return doubled
        return polars_copy

    @data_product(**declared)
    def pandas_copy(doubled: pd.DataFrame) -> pd.DataFrame:
        return doubled
    return pandas_copy


class SparkBank:
    def __init__(self, remote: str, extra=()):
        self.box = {"output": GOOD}
        self.defs = domain_definitions("bank", [ledger_product(self.box), spark_doubled(self.box), *extra],
                                       resources={SPARK_RESOURCE_KEY: SparkEngine(remote=remote)})

    def materialize(self, instance, **settings):
        self.box.update(settings)
        job = self.defs.resolve_implicit_global_asset_job_def()
        return job.execute_in_process(instance=instance, raise_on_error=False)


def published(name: str) -> pd.DataFrame:
    return DomainStorage(resolve_data_dir(), "bank").read(ProductRef("bank", name)).sort_values("entry_id", ignore_index=True)


def staging_left(name: str = "doubled") -> list[str]:
    port = Path(DomainStorage(resolve_data_dir(), "bank").port(ProductRef("bank", name)).uri)
    return sorted(str(p.relative_to(port)) for p in (port / "_mesh_staging").rglob("*")) if (port / "_mesh_staging").exists() else []


def test_a_spark_product_publishes_what_pandas_would_with_the_same_checks_and_readers_pin_it(instance, spark_server):
    bank = SparkBank(spark_server.url, extra=[reader("pandas"), reader("polars")])
    result = bank.materialize(instance)
    assert result.success, [e.message for e in result.all_events if e.is_failure]

    expected = GOOD.assign(amount=GOOD["amount"] * 2)
    assert_same(published("doubled"), expected)
    for copy in ("pandas_copy", "polars_copy"):
        assert_same(published(copy), expected)
    checks = evaluations(instance, result.run_id)
    assert {("doubled", "contract"), ("doubled", "column_values_to_be_unique__entry_id")} <= set(checks)
    assert all(checks[key].passed for key in checks if key[0] == "doubled")
    assert staging_left() == []

    # what each reader read is the version Spark committed in this run, pinned and recorded
    storage = DomainStorage(resolve_data_dir(), "bank")
    version = storage.port(ProductRef("bank", "doubled")).latest()
    assert version.run_id == result.run_id and version.rows == len(GOOD)
    assert set(version.files) == port_files("doubled")  # every data file in the port is a committed, checksummed one
    for copy in ("pandas_copy", "polars_copy"):
        reads = [e for e in instance.all_logs(result.run_id) if e.dagster_event and e.dagster_event.event_type_value
                 == "ASSET_MATERIALIZATION" and e.dagster_event.asset_key.path[-1] == copy]
        inputs = reads[-1].dagster_event.step_materialization_data.materialization.metadata["mesh/input_versions"].value
        assert inputs == {"bank.doubled": version.version}, inputs


def test_bad_data_from_spark_is_blocked_with_the_same_checks_and_the_last_version_kept(instance, spark_server):
    bank = SparkBank(spark_server.url)
    assert bank.materialize(instance).success
    before = DomainStorage(resolve_data_dir(), "bank").port(ProductRef("bank", "doubled")).latest()
    files_before = port_files("doubled")

    result = bank.materialize(instance, duplicate=True)
    assert not result.success
    checks = evaluations(instance, result.run_id)
    failed = sorted(name for (asset, name), data in checks.items() if asset == "doubled" and not data.passed)
    assert failed == ["column_values_to_be_unique__entry_id", "contract"], failed
    assert {key for key in CHECKS if key[0] == "doubled"} <= set(checks)
    contract = checks[("doubled", "contract")]
    assert "entry_id" in contract.description and "amount" in contract.description, contract.description

    after = DomainStorage(resolve_data_dir(), "bank").port(ProductRef("bank", "doubled")).latest()
    assert after.version == before.version  # nothing committed
    assert port_files("doubled") == files_before and staging_left() == []  # no file left behind
    assert_same(published("doubled"), GOOD.assign(amount=GOOD["amount"] * 2))


def test_a_spark_job_that_fails_while_the_executors_write_leaves_the_old_version_and_no_files(instance, spark_server):
    bank = SparkBank(spark_server.url)
    assert bank.materialize(instance).success
    files_before = port_files("doubled")

    result = bank.materialize(instance, fail_midway=True)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE"
                   and e.step_key == "bank__doubled")
    text = failure_text(failure.event_specific_data.error)
    assert "bank.doubled failed while Spark computed and wrote its output" in text and "\n" not in text.strip(), text
    assert port_files("doubled") == files_before and staging_left() == []
    assert_same(published("doubled"), GOOD.assign(amount=GOOD["amount"] * 2))


def test_a_sql_product_runs_in_spark_sql_once_the_domain_has_a_spark(instance, spark_server, monkeypatch):
    declared = dict(DECLARED, description="One row per ledger entry over 100, in SQL.", suite=SUITE, inputs={"ledger": "bank.ledger"})

    @data_product(**declared, sql="select entry_id, amount, memo from ledger where amount > 100")
    def large(ledger):
        """Runs in DuckDB, or in Spark SQL when the domain has a Spark."""

    for remote in (None, spark_server.url):
        if remote:
            monkeypatch.setenv(REMOTE_ENV, remote)
        else:
            monkeypatch.delenv(REMOTE_ENV, raising=False)
        box = {"output": GOOD}
        defs = domain_definitions("bank", [ledger_product(box), large])
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance, raise_on_error=False)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        assert_same(published("large"), GOOD[GOOD["amount"] > 100].reset_index(drop=True))

    # Spark SQL, not DuckDB: a query only Spark runs
    @data_product(**declared, sql="select entry_id, amount, memo from ledger where spark_partition_id() >= 0")
    def large(ledger):  # noqa: F811
        """Spark SQL only."""

    defs = domain_definitions("bank", [ledger_product({"output": GOOD}), large])
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance, raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    monkeypatch.delenv(REMOTE_ENV)
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success  # the same SQL in DuckDB: no such function


def test_a_sql_product_on_spark_reads_its_inputs_and_no_file_by_path(instance, spark_server, tmp_path):
    secret = tmp_path / "secret.parquet"
    GOOD.to_parquet(secret)
    declared = dict(DECLARED, description="One row per ledger entry, from a file.", suite=SUITE, inputs={"ledger": "bank.ledger"})

    @data_product(**declared, sql=f"select entry_id, amount, memo from parquet.`{secret}`")
    def sneaky(ledger):
        """Reads a file, not its input."""

    defs = domain_definitions("bank", [ledger_product({"output": GOOD}), sneaky],
                              resources={SPARK_RESOURCE_KEY: SparkEngine(remote=spark_server.url)})
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE" and e.step_key == "bank__sneaky")
    text = failure_text(failure.event_specific_data.error)
    assert "The SQL of bank.sneaky failed in Spark SQL" in text and "Its relations are its inputs: ledger" in text, text



@needs_example("operations", "reference", "fleet", "weather", "insights")
def test_the_insights_domain_on_spark_by_configuration_alone_publishes_what_its_pandas_versions_do(spark_server, tmp_path):
    """The whole example mesh in its default engines, then `mesh materialize -d insights` with only
    MESH_SPARK_REMOTE set: every insights product is computed and audited on the Spark Connect server,
    and publishes, frame by frame after sorting, what its pandas version computes from the same pinned inputs."""
    import json

    from dagster import AssetKey, DagsterInstance

    from tests.domains.test_insights import REWRITTEN
    from tests.support import make_dagster_home, run_mesh

    home = make_dagster_home(tmp_path)
    mesh = run_mesh("materialize", "--json", home=home)
    assert mesh.returncode == 0, mesh.stdout[-3000:] + mesh.stderr[-3000:]
    on_spark = run_mesh("materialize", "--json", "-d", "insights", home=home, env_extra={"MESH_SPARK_REMOTE": spark_server.url})
    assert on_spark.returncode == 0, on_spark.stdout[-3000:] + on_spark.stderr[-3000:]
    [domain] = json.loads(on_spark.stdout)["domains"]
    assert {p["product"] for p in domain["products"] if p["status"] == "published"} == {f"insights.{n}" for n in REWRITTEN}

    from domains.insights import products

    data = home / "data"
    with DagsterInstance.from_config(str(home)) as instance:
        for name, (pandas_version, _, key) in sorted(REWRITTEN.items()):
            product = getattr(products, name)
            event = instance.get_latest_materialization_event(AssetKey(["insights", name]))
            meta = event.asset_materialization.metadata
            assert meta["mesh/engine"].value == "spark" and meta["mesh/spark"].value == spark_server.url, name
            inputs = meta["mesh/input_versions"].value
            frames = {}
            for param, spec in product.inputs.items():  # the versions the Spark run pinned
                frames[param] = DomainStorage(data, spec.ref.domain).read(spec.ref, version=inputs[str(spec)],
                                                                          columns=spec.columns)
            expected = product.contract.validate(pandas_version(**frames), lazy=True)
            got = product.contract.validate(DomainStorage(data, "insights").read(ProductRef("insights", name)), lazy=True)

            def ordered(frame):
                frame = frame.sort_values(key).reset_index(drop=True)
                return frame.astype({c: object for c in frame.select_dtypes(object)}).where(frame.notna(), None)

            assert len(got) == len(expected) > 0, name
            pd.testing.assert_frame_equal(ordered(got), ordered(expected), check_exact=False, rtol=1e-12, check_dtype=False)
            print(f"insights.{name}: {len(got)} rows on Spark, equal to pandas")


def test_an_unreachable_spark_is_one_line_naming_the_url_and_the_cause(instance):
    from tests.support import free_port

    url = f"sc://127.0.0.1:{free_port()}"
    bank = SparkBank(url)
    result = bank.materialize(instance)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE" and e.step_key == "bank__doubled")
    text = failure_text(failure.event_specific_data.error).strip()
    assert "\n" not in text, text
    assert f"cannot reach Spark at {url}" in text and "Connection refused" in text, text
    assert os.environ.get(REMOTE_ENV) is None
