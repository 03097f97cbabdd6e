"""Turn a DataProduct into a Dagster asset that audits its output before publishing it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd

from mesh_core.declare.cadence import automation_condition
from mesh_core.declare.contract import (classifications, column_checks, column_schema, contract_fingerprint,
                                        contract_rules, table_checks, table_key)
from mesh_core.declare.engine import Engine
from mesh_core.declare.expectation import Severity
from mesh_core.declare.lifecycle import Status
from mesh_core.declare.majors import PreviousMajor
from mesh_core.declare.product import DataProduct
from mesh_core.errors import BreakingChangeError, MeshError, ProductOutputError, ProductRetiredError, PublishBlockedError
from mesh_core.run.engines import EngineSession
from mesh_core.run.io_manager import IO_MANAGER_KEY, READ_AS, Committed
from mesh_core.run.lineage import ProductLineage
from mesh_core.run.provenance import MAJOR_VERSIONS, pinned_read, record_unreported, versions_in_use
from mesh_core.run.spark import SPARK_RESOURCE_KEY, is_spark_frame
from mesh_core.run.validation.contract import CHECK_NAME as CONTRACT_CHECK
from mesh_core.run.validation.outcome import CheckOutcome
from mesh_core.storage.acting import acting_for
from mesh_core.storage.domain_storage import check_columns

KINDS = {"pandas", "duckdb", "delta"}
ENGINE_METADATA, SPARK_METADATA = "mesh/engine", "mesh/spark"  # where a Spark-published version was computed


def check_specs(product: DataProduct, previous: tuple[PreviousMajor, ...] = ()) -> list[dg.AssetCheckSpec]:
    from mesh_core.run.validation.audit import previous_check_name

    key = product.ref.asset_key
    contract = dg.AssetCheckSpec(
        CONTRACT_CHECK, asset=key, blocking=True,
        description=f"Pandera contract {product.contract.__name__} (and at least {product.min_rows} rows).",
    )
    older = [
        dg.AssetCheckSpec(
            previous_check_name(item.major), asset=key, blocking=True,
            description=f"Major {item.major} (published beside the current major until {item.until}): "
                        f"adapt() of the output passes Pandera contract {item.contract.__name__}.",
        )
        for item in previous
    ]
    return [contract, *older] + [
        dg.AssetCheckSpec(
            item.name, asset=key, blocking=item.severity is Severity.ERROR,
            description=item.description or item.summary(),
            metadata={"suite": product.suite_name, "severity": item.severity.value},
        )
        for item in (*product.suite, *(expectation for _, expectation in product.relied_on))
    ]


def product_metadata(product: DataProduct) -> dict:
    return {
        "dagster/column_schema": column_schema(product.contract),
        "mesh/version": product.version,
        "mesh/access": product.access.value,
        "mesh/contract": product.contract.__name__,
        "mesh/contract_rules": dg.MetadataValue.md(contract_rules(product.contract)),
        "mesh/column_checks": dg.MetadataValue.json(column_checks(product.contract)),  # as Pandera writes them
        "mesh/contract_fingerprint": contract_fingerprint(product.contract),
        "mesh/table_checks": dg.MetadataValue.json(table_checks(product.contract)),
        "mesh/key": dg.MetadataValue.json(table_key(product.contract)),  # Config.unique: what a diff matches rows by
        "mesh/suite": product.suite_name,
        "mesh/expectations": dg.MetadataValue.json([item.summary() for item in product.suite]),
        "mesh/suite_items": dg.MetadataValue.json([item.as_dict() for item in product.suite]),
        "mesh/classifications": dg.MetadataValue.json(classifications(product.contract)),
        "mesh/inputs": dg.MetadataValue.json({p: i.as_dict() for p, i in product.inputs.items()}),
        "mesh/previous_majors": dg.MetadataValue.json([item.metadata() for item in product.previous_majors]),
        "mesh/min_rows": product.min_rows,
        **product.lifecycle.metadata(),
        **product.slo.metadata(),
    }


def build_product_asset(product: DataProduct, *, today: date | None = None, snapshots: Path | None = None) -> dg.AssetsDefinition:
    """The product as an asset. `snapshots`: the domain's folder of contract snapshots and consumers
    file, against which every run checks that it does not publish a breaking change."""
    key = product.ref.asset_key
    # Older majors still in their window when the code location loads (a reload re-decides).
    previous = tuple(item for item in product.previous_majors if item.published_on(today or date.today()))

    @dg.asset(
        key=key,
        ins={param: dg.AssetIn(key=spec.ref.asset_key, metadata={"mesh/input": spec.as_dict(),
                                                                 READ_AS: product.read_as[param].value})
             for param, spec in product.inputs.items()},
        description=product.description,
        owners=list(product.owners),
        group_name=product.domain,
        kinds=KINDS,
        tags={"mesh/domain": product.domain, "mesh/access": product.access.value,
              "mesh/status": product.lifecycle.status.value, **product.tags},
        metadata=product_metadata(product),
        code_version=product.version,
        check_specs=check_specs(product, previous),
        freshness_policy=product.slo.freshness_policy(),
        automation_condition=automation_condition(product),
        # Write-audit-publish: no Output is yielded unless every error-severity check passed,
        # so the IO manager never sees bad data.
        output_required=False,
        io_manager_key=IO_MANAGER_KEY,
        # A product that may run on Spark (written for it, or SQL) gets the domain's SparkEngine.
        required_resource_keys={IO_MANAGER_KEY} | ({SPARK_RESOURCE_KEY} if may_use_spark(product) else set()),
    )
    def _product(context, **inputs):  # no annotation: Dagster reads it, and annotations are strings here
        lineage, outcomes = ProductLineage(product, context), []
        lineage.start()
        try:
            with acting_for(product.domain):  # the product's own code, and its publish, act as its domain only
                read = yield from _write_audit_publish(context, product, previous, inputs, outcomes, snapshots)
        except GeneratorExit:  # Dagster stopped the step at the Output: the port write failed, or the run stopped
            lineage.fail(PublishBlockedError(f"{product.ref} was stopped before it was published."), outcomes)
            raise
        except BaseException as exc:
            lineage.fail(exc, outcomes)
            raise
        lineage.complete(outcomes, read.rows, read.versions, _written(context, product))

    return _product


def may_use_spark(product: DataProduct) -> bool:
    """Whether a run of `product` may need the domain's Spark: it reads an input as Spark, or is SQL."""
    return product.sql is not None or Engine.SPARK in (product.engine, *product.read_as.values())


@dataclass(frozen=True)
class _Published:
    rows: int
    versions: dict[str, int]  # the port version read of each input


def _write_audit_publish(context, product: DataProduct, previous, inputs, outcomes: list, snapshots: Path | None):
    """Compute, audit, publish only what passed. Fills `outcomes` as soon as the audit has run."""
    from mesh_core.run.validation.audit import audit

    key = product.ref.asset_key
    if product.lifecycle.status is Status.RETIRED:
        raise ProductRetiredError(
            f"{product.ref} is retired and is not materialized any more"
            + (f"; its successor is {product.lifecycle.successor}." if product.lifecycle.successor else ".")
        )
    _refuse_breaking_change(context, product, snapshots)
    _reconcile(context, product)
    with EngineSession(product, spark=getattr(context.resources, SPARK_RESOURCE_KEY, None)) as session:
        handed = {name: session.hand_over(value, product.read_as[name]) for name, value in inputs.items()}
        if product.sql is not None:
            frame = session.run_sql(handed)
        else:
            frame = product.fn(context=context, **handed) if product.wants_context else product.fn(**handed)
        if is_spark_frame(frame) and not previous:  # written by Spark's executors, audited on Spark
            return (yield from _publish_spark(context, product, session, frame, outcomes))
        if not isinstance(frame, pd.DataFrame):  # an engine's output: streamed, staged, audited in the engine
            if previous:
                raise ProductOutputError(
                    f"Product {product.ref} returned {type(frame).__name__} and keeps previous majors "
                    f"({', '.join(str(item.major) for item in previous)}): adapt() derives an older major from a "
                    "pandas DataFrame. Return a pandas DataFrame from this product until its older majors end, or drop them.")
            return (yield from _publish_stream(context, product, session.stream(frame), outcomes))
    check_columns(frame, product.ref)
    report = audit(product, frame, previous)
    outcomes.extend(report.outcomes)
    if report.blocked:
        for outcome in report.outcomes:
            yield outcome.to_check_result(key)
        blocking = [o for o in report.outcomes if o.blocks_publish]
        where = _quarantine(context, product, frame)
        raise PublishBlockedError(
            f"{product.ref} was not published: {len(blocking)} error-severity check(s) failed "
            f"({', '.join(o.check_name for o in blocking)}). Consumers keep the last good "
            f"version. {where}\n" + "\n".join(f"  - {o.description}" for o in blocking)
        )
    check_columns(report.frame, product.ref, "output as its contract leaves it")  # strict="filter" may drop all
    read = {str(spec): pinned_read(context.instance, context.run_id, spec.ref, spec.major)[1]
            for spec in product.inputs.values()}
    majors = _publish_previous(context, product, report)
    # The Output first, then the check results: Dagster attaches checks to the latest
    # materialization, so the version these checks allowed is the one that owns them.
    yield dg.Output(report.frame, metadata={"mesh/input_versions": dg.MetadataValue.json(read),
                                            **({MAJOR_VERSIONS: dg.MetadataValue.json(majors)} if majors else {}),
                                            **_scores(context, product, previous, report), **health(product, report)})
    for outcome in report.outcomes:
        yield outcome.to_check_result(key)
    return _Published(len(report.frame), read)


def _publish_stream(context, product: DataProduct, stream, outcomes: list):
    """Write-audit-publish of an engine's output: stage it as Parquet files in the port (no version
    yet), audit the files in the engines, then commit them as one Delta version, or quarantine
    and delete them. The publish lock is held throughout, so no other publish tidies the staged files."""
    from mesh_core.errors import ContractConversionError
    from mesh_core.run.validation.audit import audit_files
    from mesh_core.run.validation.engine_contract import conform

    key = product.ref.asset_key

    def stage(publisher):
        try:
            return publisher.stage(conform(stream, product.contract, product.ref), access=product.access.value)
        except ContractConversionError as exc:  # a value the contract's type cannot hold: nothing was staged
            failed = CheckOutcome(CONTRACT_CHECK, False, Severity.ERROR,
                                  f"Contract {product.contract.__name__} failed: {exc}",
                                  {"contract": product.contract.__name__, "problems": str(exc)})
            outcomes.append(failed)
            raise _Refused(failed, f"{product.ref} was not published: its contract failed while the output was written "
                                   f"({exc}). Consumers keep the last good version. Nothing was kept.") from None

    def audit(publisher, staged):
        with publisher.local_paths(staged) as paths:  # the engines read files by path: a copy when on S3
            report = audit_files(product, paths)
            return report, staged_health(product, paths, _StagedReport(tuple(report)))

    return (yield from _publish_staged(context, product, stage, audit, outcomes))


def _publish_spark(context, product: DataProduct, session, frame, outcomes: list):
    """Write-audit-publish of a Spark DataFrame: the executors write the output, conformed to the
    contract, into a staging folder of the port; Mesh takes those files as staged (hashed, renamed),
    audits them on Spark (Pandera's pyspark backend, GX's Spark engine), then commits them as one Delta
    version or quarantines and deletes them, as for every engine. Nothing is collected to the driver."""
    from mesh_core.run.spark_io import conform_spark, spark_uri, write_files
    from mesh_core.run.validation.audit import audit_spark
    from mesh_core.run.validation.spark_contract import spark_type_name

    local = getattr(context.resources, IO_MANAGER_KEY).storage().port(product.ref).is_local

    def stage(publisher):
        with publisher.engine_writes(access=product.access.value) as write:
            types = {name: spark_type_name(column.dtype) for name, column in product.contract.to_schema().columns.items()}
            write_files(conform_spark(frame, product.contract, product.ref, types), spark_uri(write.folder, local), product.ref)
            return write.adopt()

    def audit(publisher, staged):
        written = session.spark.read.parquet(*[spark_uri(path, local) for path in staged.paths()])
        report = audit_spark(product, written)
        return report, {**spark_health(product, written, len(report), sum(o.passed for o in report), staged.rows),
                        ENGINE_METADATA: "spark", SPARK_METADATA: session.spark_location}

    return (yield from _publish_staged(context, product, stage, audit, outcomes))


class _Refused(Exception):
    """The output was refused while it was staged, with the failed check that says why."""

    def __init__(self, outcome: CheckOutcome, message: str):
        super().__init__(message)
        self.outcome = outcome


def _publish_staged(context, product: DataProduct, stage, audit, outcomes: list):
    """Stage (`stage(publisher) -> StagedFiles`), audit (`audit(publisher, staged) -> (outcomes, health
    metadata)`), then commit or quarantine and discard, under the product's publish lock."""
    key = product.ref.asset_key
    storage = getattr(context.resources, IO_MANAGER_KEY).storage()
    with storage.publishing(product.name) as publisher:
        try:
            staged = stage(publisher)
        except _Refused as refused:
            yield refused.outcome.to_check_result(key)
            raise PublishBlockedError(str(refused)) from None
        report, summary = audit(publisher, staged)
        outcomes.extend(report)
        blocking = [o for o in report if o.blocks_publish]
        if blocking:
            for outcome in report:
                yield outcome.to_check_result(key)
            try:
                where = f"The blocked output is in table {publisher.quarantine(staged, run_id=context.run_id)} of {storage.database_path}."
            except Exception as exc:  # the blocked publish is the news; a failed quarantine must not hide it
                context.log.warning(f"Could not quarantine the blocked output of {product.ref}: {exc}")
                where = "The blocked output could not be quarantined."
            publisher.discard(staged)
            raise PublishBlockedError(
                f"{product.ref} was not published: {len(blocking)} error-severity check(s) failed "
                f"({', '.join(o.check_name for o in blocking)}). Consumers keep the last good "
                f"version. {where}\n" + "\n".join(f"  - {o.description}" for o in blocking))
        read = {str(spec): pinned_read(context.instance, context.run_id, spec.ref, spec.major)[1]
                for spec in product.inputs.values()}
        publication = publisher.commit(
            staged, version=product.version, access=product.access.value, run_id=context.run_id,
            contract_fingerprint=contract_fingerprint(product.contract), lifecycle=product.lifecycle,
            in_use=versions_in_use(context.instance, product.ref))
    yield dg.Output(Committed(publication), metadata={"mesh/input_versions": dg.MetadataValue.json(read),
                                                      **_scores(context, product, (), _StagedReport(tuple(report))),
                                                      **summary})
    for outcome in report:
        yield outcome.to_check_result(key)
    return _Published(staged.rows, read)


@dataclass(frozen=True)
class _StagedReport:
    outcomes: tuple  # what _scores and health read of an audit report


def staged_health(product: DataProduct, paths, report) -> dict:
    """health() of a published engine output, read lazily from its files: five rows and null shares."""
    import polars as pl

    scan = pl.scan_parquet(list(paths))
    nullable = [c for c, column in product.contract.to_schema().columns.items() if column.nullable][:NULL_SHARE_COLUMNS]
    nullable = [c for c in nullable if c in scan.collect_schema().names()]
    head = scan.head(PREVIEW_ROWS).collect()
    shares = scan.select([pl.col(c).null_count().alias(c) for c in nullable] + [pl.len().alias("__rows")]).collect().row(0, named=True) \
        if nullable else {"__rows": 0}
    rows = shares.pop("__rows")
    preview = preview_table(head.columns, [[str(v) for v in row] for row in head.iter_rows()])
    return {"mesh/preview": dg.MetadataValue.md(preview),
            "mesh/checks_passed": sum(outcome.passed for outcome in report.outcomes),
            "mesh/checks_run": len(report.outcomes),
            **{f"mesh/null_share/{column}": (count / rows if rows else 0.0) for column, count in shares.items()}}


def spark_health(product, frame, checks_run: int, checks_passed: int, rows: int) -> dict:
    """What the product page shows of a Spark-published output (as `staged_health`), computed on Spark:
    five rows and the null shares of the first nullable columns, one small job each."""
    from pyspark.sql import functions as F

    from mesh_core.run.spark_io import spark_column

    names = set(frame.columns)
    nullable = [c for c, column in product.contract.to_schema().columns.items() if column.nullable and c in names]
    nullable = nullable[:NULL_SHARE_COLUMNS]
    head = frame.limit(PREVIEW_ROWS).collect()
    shares = {}
    if nullable and rows:
        counts = frame.select([F.count(F.when(F.col(spark_column(c)).isNull(), 1)).alias(f"n{i}")
                               for i, c in enumerate(nullable)]).collect()[0]
        shares = {c: counts[f"n{i}"] / rows for i, c in enumerate(nullable)}
    return {"mesh/preview": dg.MetadataValue.md(preview_table(frame.columns, [[str(v) for v in row] for row in head])),
            "mesh/checks_passed": checks_passed, "mesh/checks_run": checks_run,
            **{f"mesh/null_share/{column}": shares.get(column, 0.0) for column in nullable}}


def preview_table(columns, rows) -> str:
    return "\n".join(["| " + " | ".join(map(str, columns)) + " |", "|" + " --- |" * len(columns),
                      *("| " + " | ".join(v.replace("|", "/") for v in row) + " |" for row in rows)])


def _refuse_breaking_change(context, product: DataProduct, snapshots: Path | None) -> None:
    """The breaking-change gate where data is published: before anything is computed, so a refused
    run costs nothing and the port keeps its version. Read at run time, so a run sees the files as
    they are now, not as the code location found them when it loaded."""
    if snapshots is None:
        return
    from mesh_core.governance.consumers import read_reliance
    from mesh_core.governance.snapshots import publish_refusal

    refusal = publish_refusal(product.ref, context.assets_def.specs_by_key[product.ref.asset_key], snapshots,
                              read_reliance(snapshots, product.domain))
    if refusal:
        raise BreakingChangeError(refusal)


def _written(context, product: DataProduct) -> int | None:
    """The port version this run committed (the IO manager has published it by now)."""
    try:
        return getattr(context.resources, IO_MANAGER_KEY).storage().current(product.ref).version
    except Exception:  # only lineage asks; it goes without the version
        return None


PREVIEW_ROWS, NULL_SHARE_COLUMNS = 5, 10


def health(product: DataProduct, report) -> dict:
    """What the product page shows of the published data: a preview, and numbers Dagster plots."""
    frame = report.frame
    nullable = [c for c, column in product.contract.to_schema().columns.items() if column.nullable][:NULL_SHARE_COLUMNS]
    head = frame.head(PREVIEW_ROWS).astype(str)
    preview = preview_table(head.columns, head.itertuples(index=False))
    return {
        "mesh/preview": dg.MetadataValue.md(preview),
        "mesh/checks_passed": sum(outcome.passed for outcome in report.outcomes),
        "mesh/checks_run": len(report.outcomes),
        **{f"mesh/null_share/{column}": float(frame[column].isna().mean()) if len(frame) else 0.0 for column in nullable},
    }


def _scores(context: dg.AssetExecutionContext, product: DataProduct, previous, report) -> dict:
    """The product's objectives as of this publish, this run's checks included (see
    mesh_core.run.scorecard); never a reason to fail it."""
    from mesh_core.run.scorecard import score_metadata, score_product

    try:
        keys = [dg.AssetCheckKey(product.ref.asset_key, spec.name) for spec in check_specs(product, previous)]
        return score_metadata(score_product(context.instance, product.ref, product.slo, check_keys=keys,
                                            publishing_run=context.run_id,
                                            publishing_checks=[outcome.passed for outcome in report.outcomes]))
    except Exception as exc:
        context.log.warning(f"Could not score {product.ref} against its objectives: {exc}")
        return {}


def _publish_previous(context: dg.AssetExecutionContext, product: DataProduct, report) -> dict[str, int]:
    """Publish each older major derived by the audit, before the current one: the current major's
    materialization then records the versions of both, so a pinned reader finds its own."""
    if not report.previous:
        return {}
    storage = getattr(context.resources, IO_MANAGER_KEY).storage()
    published = {}
    for major, frame in sorted(report.previous.items()):
        item = next(p for p in product.previous_majors if p.major == major)
        publication = storage.publish(product.name, frame, version=item.version, access=product.access.value,
                                      run_id=context.run_id, major=major, lifecycle=product.lifecycle,
                                      contract_fingerprint=contract_fingerprint(item.contract))
        for warning in publication.warnings:
            context.log.warning(warning)
        published[str(major)] = publication.version.version
    return published


def _reconcile(context: dg.AssetExecutionContext, product: DataProduct) -> None:
    """Before computing, finish what a crashed earlier run left: garbage, a lagging DuckDB
    table, a committed version Dagster never recorded."""
    storage = getattr(context.resources, IO_MANAGER_KEY).storage()
    try:
        history = storage.reconcile(product.name)
        if history:
            for version in record_unreported(context.instance, history, product.ref.asset_key):
                context.log.warning(f"Recorded version {version} of {product.ref}: it was committed, but Dagster had "
                                    "not recorded it (a run that stopped early, or a publish outside Dagster).")
    except MeshError as exc:  # the publish can still succeed; the store catches up later
        context.log.warning(f"Could not reconcile {product.ref} before running: {exc}")


def _quarantine(context: dg.AssetExecutionContext, product: DataProduct, frame: pd.DataFrame) -> str:
    try:
        storage = getattr(context.resources, IO_MANAGER_KEY).storage()
        table = storage.quarantine(product.name, frame, run_id=context.run_id)
    except Exception as exc:  # the blocked publish is the news; a failed quarantine must not hide it
        context.log.warning(f"Could not quarantine the blocked output of {product.ref}: {exc}")
        return "The blocked output could not be quarantined."
    return f"The blocked output is in table {table} of {storage.database_path}."
