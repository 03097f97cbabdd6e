"""Test one data product from pytest, in one call, against a throwaway instance and storage.

    from mesh_core import run_product

    def test_flights_by_day():
        result = run_product(flights_by_day, inputs={"flights": pd.DataFrame({...})})
        assert result.published, result.message
        assert result.output["departures"].sum() == 3
        assert result.checks["contract"].passed

The given upstream frames are published as the upstream products' current versions (pinned
majors included), then the product is materialized for real: its contract, its suite and its
consumers' expectations run, and it publishes only if they allow. Nothing touches the mesh's
own `DAGSTER_HOME` or data.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import dagster as dg
import pandas as pd

from mesh_core.declare.product import DataProduct
from mesh_core.errors import DefinitionError, Violation
from mesh_core.run.materialize import CheckSummary, _product_results
from mesh_core.run.provenance import PORT_VERSION
from mesh_core.run.spark import SPARK_RESOURCE_KEY, SparkEngine
from mesh_core.storage.domain_storage import DomainStorage


@dataclass(frozen=True)
class ProductRun:
    status: str  # published | blocked | failed | skipped
    output: pd.DataFrame | None  # what was published, read back from its port; None otherwise
    checks: Mapping[str, CheckSummary]  # by check name: contract, each expectation, consumers' ones
    message: str  # why it was not published, or what needs attention

    @property
    def published(self) -> bool:
        return self.status == "published"


def run_product(product: DataProduct, inputs: Mapping[str, pd.DataFrame] | None = None, *,
                folder: str | Path | None = None) -> ProductRun:
    """Materialize `product` with `inputs` (parameter name -> upstream DataFrame) in a temp folder
    (or `folder`, kept for inspection), and return what it published and every check's result."""
    from mesh_core.run.assets import build_product_asset
    from mesh_core.run.io_manager import IO_MANAGER_KEY, MeshIOManager

    inputs = dict(inputs or {})
    if not isinstance(product, DataProduct):
        raise TypeError(f"run_product takes a DataProduct (declared with @data_product), not {product!r}.")
    missing, extra = sorted(set(product.inputs) - set(inputs)), sorted(set(inputs) - set(product.inputs))
    if missing or extra:
        raise DefinitionError([Violation(product.domain, product.name, "test-inputs-match",
                                         f"run_product got inputs {sorted(inputs)}; the product reads {sorted(product.inputs)}.",
                                         "pass one DataFrame per input parameter, e.g. inputs={'flights': frame}.")])
    wrong = {param: type(frame).__name__ for param, frame in inputs.items() if not isinstance(frame, pd.DataFrame)}
    if wrong:
        raise TypeError(f"run_product inputs must be pandas DataFrames; got {wrong}. Wrap them: pd.DataFrame(...).")
    with tempfile.TemporaryDirectory(prefix="mesh-test-") as scratch:
        root = Path(folder) if folder is not None else Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        with dg.DagsterInstance.ephemeral() as instance:
            for param, frame in inputs.items():
                _publish_upstream(instance, root, product.inputs[param], frame)
            io_manager = MeshIOManager(domain=product.domain, data_dir=str(root), ports_uri=str(root))
            # The product alone, its inputs (of any domain, its own included) as stubs: the frames above.
            stubs = [dg.AssetSpec(spec.ref.asset_key).with_io_manager_key(IO_MANAGER_KEY) for spec in product.inputs.values()]
            defs = dg.Definitions(assets=[build_product_asset(product), *stubs],
                                  resources={IO_MANAGER_KEY: io_manager, SPARK_RESOURCE_KEY: SparkEngine()},
                                  executor=dg.in_process_executor)
            result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
                instance=instance, asset_selection=[product.ref.asset_key], raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})
            [outcome] = [r for r in _product_results(_Only(product, defs), result.all_events) if r.ref == product.ref]
            output = (DomainStorage(root, product.domain, ports_uri=str(root)).read(product.ref)
                      if outcome.status == "published" else None)
    return ProductRun(outcome.status, output, {c.name: c for c in outcome.checks}, outcome.message)


def _publish_upstream(instance: dg.DagsterInstance, root: Path, spec, frame: pd.DataFrame) -> None:
    """The frame as the upstream's current version, recorded as Dagster would record it."""
    version = f"{spec.major if spec.major is not None else 1}.0.0"
    storage = DomainStorage(root, spec.ref.domain, ports_uri=str(root))
    published = storage.publish(spec.ref.product, frame, version=version, access="public", run_id="mesh-test-upstream")
    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key=spec.ref.asset_key, metadata={PORT_VERSION: published.version.version, "mesh/version": version}))


@dataclass(frozen=True)
class _Only:
    """The one product under test, shaped like a workspace location for `_product_results`."""

    product: DataProduct
    defs: dg.Definitions

    @property
    def products(self):
        return {self.product.ref: next(s for s in self.defs.resolve_all_asset_specs() if s.key == self.product.ref.asset_key)}
