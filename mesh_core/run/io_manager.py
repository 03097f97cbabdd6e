"""The IO manager every domain uses: publishes to its own ports, reads pinned versions of any."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import pandas as pd
from pydantic import PrivateAttr

from mesh_core.declare.inputs import Input
from mesh_core.declare.lifecycle import Lifecycle
from mesh_core.declare.ref import ProductRef
from mesh_core.errors import AccessDeniedError, ProductNotPublishedError
from mesh_core.run.provenance import PORT_VERSION, not_published, pinned_read, unpublished, versions_in_use
from mesh_core.storage.acting import acting_for
from mesh_core.storage.domain_storage import DomainStorage, Publication, resolve_data_dir
from mesh_core.storage.retention import Retention

IO_MANAGER_KEY = "mesh_io_manager"
READ_AS = "mesh/read_as"  # an input's metadata: the engine the product's code receives it in


@dataclass(frozen=True)
class Committed:
    """An output the step has already published (an engine's, staged, audited and committed by the
    step itself): the IO manager records it, and writes nothing."""

    publication: Publication


class MeshIOManager(dg.ConfigurableIOManager):
    """Writes only its own domain's storage; reads other domains' products read-only.

    Every input is read at the version pinned for the whole run (see `mesh_core.run.provenance`), from
    the major the consumer pins, with only the columns it declares it reads."""

    domain: str
    data_dir: str | None = None  # local data (DuckDB store, locks): default $MESH_DATA_DIR, else $DAGSTER_HOME/data
    ports_uri: str | None = None  # output ports: default $MESH_PORTS_URI, else data_dir; may be s3://...
    keep_versions: int = Retention.keep_versions
    keep_hours: float = Retention.keep_hours
    # The verified files of each input version this run has read: a product read by several
    # steps (insights reads operations.flights four times) is read and checked once per run.
    _run_reads: tuple[str, dict] = PrivateAttr(default=("", {}))

    def storage(self) -> DomainStorage:
        return DomainStorage(resolve_data_dir(self.data_dir), self.domain, ports_uri=self.ports_uri,
                             retention=Retention(self.keep_versions, self.keep_hours))

    def handle_output(self, context: dg.OutputContext, obj: "pd.DataFrame | Committed") -> None:
        ref = ProductRef.from_asset_key(context.asset_key)
        if ref.domain != self.domain:
            raise AccessDeniedError(
                f"Domain '{self.domain}' may not publish {ref}: a domain writes only its own ports. "
                f"Declare the product in the '{ref.domain}' domain's own code location."
            )
        meta = context.definition_metadata
        storage = self.storage()
        if isinstance(obj, Committed):
            publication = obj.publication
        else:
            with acting_for(self._step_domain(context.step_context)):
                publication = storage.publish(
                    ref.product, obj, version=meta["mesh/version"], access=meta["mesh/access"], run_id=context.run_id,
                    contract_fingerprint=meta.get("mesh/contract_fingerprint", ""), lifecycle=Lifecycle.from_metadata(meta),
                    in_use=versions_in_use(context.step_context.instance, ref),
                )
        for warning in publication.warnings:
            context.log.warning(warning)
        published = publication.version
        context.add_output_metadata(
            {
                **({"mesh/warnings": dg.MetadataValue.text("\n".join(publication.warnings))} if publication.warnings else {}),
                PORT_VERSION: published.version,
                "dagster/row_count": published.rows,
                "dagster/table_name": f"{ref.domain}.{ref.product}",
                "dagster/uri": storage.port(ref).uri,
                "mesh/version": published.product_version,
                "mesh/contract_fingerprint": published.contract_fingerprint,
                "mesh/database": dg.MetadataValue.path(str(storage.database_path)),
                "mesh/database_synced": publication.warehouse_synced,
            }
        )

    def load_input(self, context: dg.InputContext):
        ref = ProductRef.from_asset_key(context.asset_key)
        declared = (context.definition_metadata or {}).get("mesh/input")
        spec = Input.from_dict(declared) if declared else Input(ref)
        step = context.step_context
        try:
            port, version = pinned_read(step.instance, step.run_id, ref, spec.major)
        except ProductNotPublishedError:
            missing = unpublished(step.instance, step.run_id, _declared_inputs(step))
            if ref not in missing:
                raise  # published, but not at the major this input pins: that error says so
            raise not_published(step.run_id, missing) from None  # run before its producers: name them all
        if self._run_reads[0] != step.run_id:  # a new run reads afresh: versions are pinned per run
            self._run_reads = (step.run_id, {})
        with acting_for(self._step_domain(step)):
            if (context.definition_metadata or {}).get(READ_AS, "pandas") != "pandas":  # lazily, in an engine
                frame = self.storage().scan(ref, version=version, major=port, columns=spec.columns, cache=self._run_reads[1])
                rows = self.storage().reading_port(ref, port).published(version).rows
            else:
                frame = self.storage().read(ref, version=version, major=port, columns=spec.columns, arrow_strings=True,
                                            cache=self._run_reads[1])
                rows = len(frame)
        context.add_input_metadata({PORT_VERSION: version, "dagster/row_count": rows,
                                    **({"mesh/major": port} if port is not None else {})})
        return frame

    def _step_domain(self, step) -> str:
        """The domain of the product the step computes (from its own definition): the run's domain.
        An IO manager made for another domain cannot serve it."""
        domains = {ProductRef.from_asset_key(key).domain for key in step.assets_def.keys}
        if domains != {self.domain}:
            raise AccessDeniedError(
                f"The IO manager of domain '{self.domain}' may not serve a step of {', '.join(sorted(domains))}: "
                "a domain reads and writes only through its own IO manager. Use the one domain_definitions() "
                "gives the domain (MeshIOManager(domain=<the product's domain>)).")
        return self.domain


def _declared_inputs(step) -> list[ProductRef]:
    """The products the step's product declares as inputs."""
    return [Input.from_dict(spec).ref for spec in (d.metadata.get("mesh/input") for d in step.op_def.input_defs) if spec]
