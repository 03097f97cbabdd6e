"""Assemble one domain's code location: its products, their checks and storage."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Mapping, Sequence

import dagster as dg
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME

from mesh_core.declare.cadence import Cadence, automation_sensor, schedules
from mesh_core.declare.names import is_valid_name
from mesh_core.declare.product import DataProduct
from mesh_core.declare.tags import domain_tags
from mesh_core.declare.engine import Engine
from mesh_core.errors import DefinitionError, Violation
from mesh_core.governance.config import Governance, evaluate
from mesh_core.governance.consumers import consumer_expectations, read_reliance
from mesh_core.governance.policies import DomainScope, Policy
from mesh_core.run.assets import build_product_asset
from mesh_core.run.executor import mesh_executor
from mesh_core.run.io_manager import IO_MANAGER_KEY, MeshIOManager
from mesh_core.run.notify import JsonLinesNotifier, Notifier, failure_sensor
from mesh_core.run.spark import SPARK_RESOURCE_KEY, SparkEngine


def domain_definitions(
    domain: str,
    products: Sequence[DataProduct],
    *,
    io_manager: dg.ConfigurableIOManager | None = None,
    resources: Mapping[str, object] | None = None,
    teams: Sequence[str] | str = (),
    policies: Sequence[Policy] = (),
    levels: Mapping[str, str] | None = None,
    governance: Governance | None = None,
    cadence: Cadence | str | None = None,
    notifier: Notifier | None = None,
) -> dg.Definitions:
    """The Dagster Definitions of one domain's code location.

    Checks the domain as a whole (every problem at once) and applies the mesh's policies
    (plus the domain's own `policies`, at the `levels` it may set; `teams` are the owners
    its products must have), adds a stub for each product read from another domain so it
    loads as a lineage edge, and gives the domain its own storage.

    Operating: `cadence` (a cron string or `Cadence(cron, timezone)`) schedules the products that
    read no other product; the others run by automation once what they read was published; the
    `notifier` (default: a JSON-lines file, see mesh_core.run.notify) hears of every product a run did
    not publish. Runs execute in one process (a domain's steps share its storage lock anyway)
    unless the deployment sets MESH_EXECUTOR=celery.
    """
    violations = list(_domain_violations(domain, products))
    try:
        cadence = Cadence.parse(cadence) if cadence is not None else None
    except ValueError as exc:
        violations.append(Violation(str(domain), None, "cadence-valid", str(exc),
                                    "pass cadence='0 6 * * *' or Cadence('0 6 * * *', timezone='Europe/Paris')."))
    if notifier is not None and not isinstance(notifier, Notifier):
        violations.append(Violation(str(domain), None, "notifier-valid", f"notifier={notifier!r} is not a Notifier.",
                                    "pass an instance of a mesh_core.Notifier subclass, e.g. JsonLinesNotifier()."))
    if violations:
        raise DefinitionError(violations)
    if governance is None:  # the governance.yaml of the mesh this domain's code lives in
        governance = Governance.for_module(products[0].fn.__module__ if products else None)
    teams = (teams,) if isinstance(teams, str) else tuple(teams)
    findings = evaluate(products, DomainScope(domain, teams), governance, policies=policies, levels=levels)
    folder = _snapshots_folder(products)
    products = _with_consumer_expectations(domain, products, governance, folder)
    own = {p.ref for p in products}
    foreign = sorted({spec.ref for p in products for spec in p.inputs.values()} - own)
    # A product of another domain: the workspace merges that domain's real node over this stub.
    stubs = [dg.AssetSpec(ref.asset_key).with_io_manager_key(IO_MANAGER_KEY) for ref in foreign]
    return dg.Definitions(
        assets=[*(build_product_asset(p, snapshots=folder) for p in products), *stubs],
        # The job the UI's Materialize button (and declarative automation) launches: Dagster builds it
        # untagged unless the location defines it, so a run from the UI carries the domain's tags too.
        jobs=[dg.define_asset_job(IMPLICIT_ASSET_JOB_NAME, tags=domain_tags(domain))],  # tags: job and run tags
        schedules=schedules(domain, products, cadence),
        sensors=[*automation_sensor(domain, products), failure_sensor(domain, products, notifier or JsonLinesNotifier())],
        executor=mesh_executor,  # in process unless the deployment picks Celery (mesh_core.run.executor)
        resources={IO_MANAGER_KEY: io_manager or MeshIOManager(domain=domain), SPARK_RESOURCE_KEY: SparkEngine(),
                   **(resources or {})},
        # Warnings and waived findings: the load goes on, `mesh lint` shows them.
        metadata={"mesh/governance": dg.MetadataValue.json([finding.as_dict() for finding in findings]),
                  **({"mesh/snapshots": dg.MetadataValue.path(str(folder))} if folder else {})},
    )


def _snapshots_folder(products: Sequence[DataProduct]) -> Path | None:
    """`snapshots/` beside the domain's product modules: its contract snapshots and consumers file.
    Recorded in the Definitions' metadata (`mesh/snapshots`), so lint and `mesh contracts update`
    use the very folder the runs check against."""
    module = sys.modules.get(products[0].fn.__module__) if products else None
    return Path(module.__file__).resolve().parent / "snapshots" if getattr(module, "__file__", None) else None


def _with_consumer_expectations(domain: str, products: Sequence[DataProduct], governance: Governance,
                                folder: Path | None) -> list[DataProduct]:
    """Each product with the expectations its consumers rely on (see mesh_core.governance.consumers),
    read from `snapshots/<domain>.consumers.yaml` beside the domain's modules."""
    if folder is None:
        return list(products)
    reliance = read_reliance(folder, domain)
    extended = []
    for product in products:
        extra = consumer_expectations(product.name, reliance, governance.consumer_expectations)
        extended.append(replace(product, relied_on=extra) if extra else product)
    return extended


def _domain_violations(domain: str, products: Sequence[DataProduct]):
    if not is_valid_name(domain):
        yield Violation(str(domain), None, "domain-name", f"invalid domain name {domain!r}.",
                        "use the lower snake case name of the domain folder.")
        return
    names = {p.name for p in products if isinstance(p, DataProduct)}
    seen: set[str] = set()
    for product in products:
        if not isinstance(product, DataProduct):
            yield Violation(domain, None, "products-declared", f"{product!r} is not a DataProduct.",
                            "declare each product with @data_product(...).")
            continue
        if product.domain != domain:
            yield Violation(domain, product.name, "product-in-own-domain",
                            f"declares domain '{product.domain}' but is listed in domain '{domain}'.",
                            f"set domain='{domain}' or move the product to its own domain's folder.")
        if product.name in seen:
            yield Violation(domain, product.name, "product-names-unique", "is declared twice.",
                            "give each product of a domain its own name.")
        seen.add(product.name)
        yield from _engine_violations(domain, product)
        for param, spec in product.inputs.items():
            ref = spec.ref
            if ref.domain == domain and ref.product not in names:
                yield Violation(domain, product.name, "inputs-exist",
                                f"input '{param}' reads {ref}, which this domain does not declare.",
                                f"add {ref.product} to the domain's products or fix the reference.")


def _engine_violations(domain: str, product: DataProduct):
    """A product declared in an engine (SQL, or its return annotation) must have a contract Pandera's
    polars backend can run and a suite GX's SQL engine can run (on Spark: Pandera's pyspark backend, GX's
    Spark engine; a SQL product too once the domain has a Spark): said at load, not found at run time."""
    if product.engine is Engine.PANDAS or product.contract is None:
        return
    from mesh_core.run.validation.engine_contract import engine_problems
    from mesh_core.run.validation.suite_sql import sql_problems

    fix = "see docs/engines.md for what runs in each engine."  # each problem says its own fix
    if product.previous_majors and product.sql is None:
        yield Violation(domain, product.name, "engine-previous-majors",
                        f"returns {product.engine.value} (its annotations say so) and keeps previous majors "
                        f"{', '.join(str(item.major) for item in product.previous_majors)}: adapt() derives an older major "
                        "from a pandas DataFrame.",
                        "return a pandas DataFrame (annotate -> pd.DataFrame) until the older majors end, or drop them.")
    if product.engine is not Engine.SPARK:
        for problem in engine_problems(product.contract):
            yield Violation(domain, product.name, "engine-contract",
                            f"its contract cannot run in {product.engine.value}: {problem}.", fix)
        for problem in sql_problems(product.suite):
            yield Violation(domain, product.name, "engine-suite",
                            f"its suite cannot run in {product.engine.value} (GX's SQL engine over DuckDB): {problem}.", fix)
    if product.engine is Engine.SPARK or (product.sql is not None and SparkEngine().runs_sql):
        from mesh_core.run.validation.spark_contract import engine_problems_spark
        from mesh_core.run.validation.suite_spark import spark_problems

        for problem in engine_problems_spark(product.contract):
            yield Violation(domain, product.name, "engine-contract", f"its contract cannot run on Spark: {problem}.", fix)
        for problem in spark_problems(product.suite):
            yield Violation(domain, product.name, "engine-suite",
                            f"its suite cannot run on Spark (GX's Spark engine): {problem}.", fix)
