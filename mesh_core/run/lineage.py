"""OpenLineage events for every product a run materializes: START, then COMPLETE or FAIL.

Each product is an OpenLineage job whose output dataset is the product and whose input datasets
are the products it reads (across domains too), named `<domain>.<product>` in one namespace
(`mesh`, or $MESH_OPENLINEAGE_NAMESPACE), so Marquez, DataHub or OpenMetadata draw the same graph
as Dagster. Events carry the contract's schema, the check results as data-quality assertions, the
port version read and written, and the Dagster run as parent.

Where they go: by default one JSON line per event in $DAGSTER_HOME/mesh/openlineage.jsonl (the
instance's folder; an ephemeral instance's temp folder in `run_product`). Any
standard OpenLineage setting (OPENLINEAGE_URL, OPENLINEAGE_CONFIG, OPENLINEAGE__TRANSPORT__*, an
openlineage.yml) sends them there instead; OPENLINEAGE_DISABLED=true turns them off. Lineage is a
report on the run, never a reason to fail it: an emit that fails is logged as a warning.
"""

from __future__ import annotations

import os
import traceback
import uuid
from datetime import datetime, timezone
from functools import lru_cache
from importlib.metadata import version as package_version
from pathlib import Path

from mesh_core.declare.contract import column_specs
from mesh_core.declare.product import DataProduct

NAMESPACE_ENV = "MESH_OPENLINEAGE_NAMESPACE"
DEFAULT_FILE = Path("mesh") / "openlineage.jsonl"
PRODUCER = f"urn:mesh:mesh_core:{package_version('mesh-core')}"
_CONFIGURED_BY = ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG", "OPENLINEAGE__TRANSPORT__TYPE")


def namespace() -> str:
    return os.environ.get(NAMESPACE_ENV) or "mesh"


def default_path(instance_root: str | os.PathLike) -> Path:
    """Beside the instance's own storage: $DAGSTER_HOME, or an ephemeral instance's temp folder (so a
    `run_product` test never writes into the project)."""
    return Path(instance_root) / DEFAULT_FILE


def product_run_id(dagster_run_id: str, product: DataProduct) -> str:
    """One OpenLineage run per product per Dagster run, the same id for its START and its end."""
    return str(uuid.uuid5(uuid.UUID(dagster_run_id), str(product.ref)))


@lru_cache(maxsize=None)
def _client(settings: tuple, path: str | None):  # settings: only the cache key
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.file import FileConfig, FileTransport

    if path is None:
        return OpenLineageClient()  # the standard resolution: URL, config file, env, or disabled
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=path, append=True)))


def client(instance_root: str | os.PathLike):
    """The client for the settings as they are now (one per distinct setting, kept for the process)."""
    settings = (*(os.environ.get(name) for name in (*_CONFIGURED_BY, "OPENLINEAGE_DISABLED")),
                Path("openlineage.yml").is_file())
    configured = any(settings[:-2]) or settings[-1] or (settings[-2] or "").strip().lower() == "true"
    return _client(settings, None if configured else str(default_path(instance_root)))


class ProductLineage:
    """The OpenLineage run of one product inside one Dagster run."""

    def __init__(self, product: DataProduct, context):
        self.product, self.context = product, context
        self.run_id = product_run_id(context.run_id, product)

    def start(self) -> None:
        self._emit("START")

    def complete(self, outcomes, rows: int, read: dict[str, int], written: int | None) -> None:
        self._emit("COMPLETE", outcomes=outcomes, rows=rows, read=read, written=written)

    def fail(self, error: BaseException, outcomes=()) -> None:
        self._emit("FAIL", outcomes=outcomes, error=error)

    def _emit(self, state: str, **details) -> None:
        try:
            client(self.context.instance.root_directory).emit(self.event(state, **details))
        except Exception as exc:  # lineage reports on the run; it never decides it
            self.context.log.warning(f"Could not emit the OpenLineage {state} event of {self.product.ref}: {exc}")

    def event(self, state: str, outcomes=(), rows: int | None = None, read: dict[str, int] | None = None,
              written: int | None = None, error: BaseException | None = None):
        from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
        from openlineage.client.generated import (
            data_quality_assertions_dataset as dq, dataset_version_dataset as dv, documentation_dataset as doc,
            error_message_run as err, job_type_job as jt, output_statistics_output_dataset as stats,
            ownership_dataset as own, parent_run, processing_engine_run as engine, schema_dataset as schema)
        from openlineage.client.generated.base import set_producer

        set_producer(PRODUCER)  # facets name Mesh, not the client library, as their producer
        product, ns, read = self.product, namespace(), read or {}
        inputs = []
        for spec in product.inputs.values():
            facets = {"version": dv.DatasetVersionDatasetFacet(datasetVersion=str(read[str(spec)]))} if str(spec) in read else {}
            inputs.append(InputDataset(namespace=ns, name=str(spec.ref), facets=facets))
        facets = {
            "schema": schema.SchemaDatasetFacet(fields=[
                schema.SchemaDatasetFacetFields(name=c["name"], type=c["type"], description=c["description"] or None,
                                                ordinal_position=i)
                for i, c in enumerate(column_specs(product.contract), start=1)]),
            "documentation": doc.DocumentationDatasetFacet(description=product.description),
            "ownership": own.OwnershipDatasetFacet(owners=[own.Owner(name=o, type="OWNER") for o in product.owners]),
        }
        if outcomes:
            columns = {item.name: item.column for item in product.suite}
            facets["dataQualityAssertions"] = dq.DataQualityAssertionsDatasetFacet(assertions=[
                dq.Assertion(assertion=o.check_name, success=bool(o.passed), column=columns.get(o.check_name),
                             severity=o.severity.value, name=o.check_name, description=o.description)
                for o in outcomes])
        if written is not None:
            facets["version"] = dv.DatasetVersionDatasetFacet(datasetVersion=str(written))
        output = OutputDataset(namespace=ns, name=str(product.ref), facets=facets,
                               outputFacets={"outputStatistics": stats.OutputStatisticsOutputDatasetFacet(rowCount=rows)}
                               if rows is not None else {})
        run_facets = {
            "parent": parent_run.ParentRunFacet(run=parent_run.Run(runId=self.context.run_id),
                                                job=parent_run.Job(namespace=ns, name=self.context.job_name)),
            "processing_engine": engine.ProcessingEngineRunFacet(version=package_version("dagster"), name="Dagster",
                                                                 openlineageAdapterVersion=package_version("mesh-core")),
        }
        if error is not None:
            run_facets["errorMessage"] = err.ErrorMessageRunFacet(
                message=str(error) or type(error).__name__, programmingLanguage="python",
                stackTrace="".join(traceback.format_exception(error)))
        job = Job(namespace=ns, name=str(product.ref), facets={
            "jobType": jt.JobTypeJobFacet(processingType="BATCH", integration="DAGSTER", jobType="ASSET")})
        return RunEvent(eventType=getattr(RunState, state), eventTime=datetime.now(timezone.utc).isoformat(),
                        run=Run(runId=self.run_id, facets=run_facets), job=job, producer=PRODUCER,
                        inputs=inputs, outputs=[output])
