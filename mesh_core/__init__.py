"""Mesh: a data mesh enforced in code, on Dagster.

Everything a domain engineer or operator needs is importable from here, and only from here. The
subpackages behind it are private to Mesh and may move between releases; they are layers, each
importing only those below it (checked by `make test`, see docs/architecture.md):

    cli                      the `mesh` command, one module per command group
    operate | selfserve      operators' tools over a live mesh | scaffolding, inference, testing
    run                      declarations turned into Dagster definitions, and run
    governance               policies, consumer contracts, the workspace, snapshots, ODCS, lint
    storage | instance       output ports and the domain store | the Dagster instance
    declare                  what a domain engineer declares: the product and its parts
    errors                   the one error hierarchy
"""

from mesh_core.errors import (
    AccessDeniedError as AccessDeniedError,
    BreakingChangeError as BreakingChangeError,
    DefinitionError as DefinitionError,
    IntegrityError as IntegrityError,
    MeshError as MeshError,
    ProductNotPublishedError as ProductNotPublishedError,
    ProductOutputError as ProductOutputError,
    ProductRetiredError as ProductRetiredError,
    PublishBlockedError as PublishBlockedError,
    SparkUnavailableError as SparkUnavailableError,
    StorageError as StorageError,
    VersionNotFoundError as VersionNotFoundError,
    Violation as Violation,
    WorkspaceError as WorkspaceError,
)

# declare
from mesh_core.declare.cadence import Cadence as Cadence
from mesh_core.declare.expectation import Expectation as Expectation, Severity as Severity
from mesh_core.declare.inputs import Input as Input
from mesh_core.declare.lifecycle import Lifecycle as Lifecycle, Status as Status
from mesh_core.declare.majors import PreviousMajor as PreviousMajor
from mesh_core.declare.product import Access as Access, DataProduct as DataProduct, data_product as data_product
from mesh_core.declare.ref import ProductRef as ProductRef
from mesh_core.declare.rules import BASELINE_RULES as BASELINE_RULES, Rule as Rule
from mesh_core.declare.slo import SLO as SLO
from mesh_core.declare.sources import package_data_path as package_data_path

# storage, instance
from mesh_core.instance.home import instance_yaml as instance_yaml, prepare_instance as prepare_instance
from mesh_core.storage.domain_storage import DomainStorage as DomainStorage, Publication as Publication
from mesh_core.storage.port import OutputPort as OutputPort, PortVersion as PortVersion
from mesh_core.storage.retention import Retention as Retention

# governance
from mesh_core.governance.config import Governance as Governance
from mesh_core.governance.policies import (
    POLICIES as POLICIES,
    DomainScope as DomainScope,
    Level as Level,
    Policy as Policy,
)

# run
from mesh_core.run.definitions import domain_definitions as domain_definitions
from mesh_core.run.executor import mesh_executor as mesh_executor
from mesh_core.run.io_manager import MeshIOManager as MeshIOManager
from mesh_core.run.notify import JsonLinesNotifier as JsonLinesNotifier, Notification as Notification, Notifier as Notifier
from mesh_core.run.spark import SparkEngine as SparkEngine
from mesh_core.run.stream import (
    OffsetRange as OffsetRange,
    kafka_consumer as kafka_consumer,
    read_micro_batch as read_micro_batch,
    stream_sensor as stream_sensor,
)

# operate, selfserve
from mesh_core.operate.code_servers import (
    CodeServer as CodeServer,
    grpc_workspace_yaml as grpc_workspace_yaml,
    plan_code_servers as plan_code_servers,
)
from mesh_core.selfserve.testing import ProductRun as ProductRun, run_product as run_product

__version__ = "0.2.0"  # the mesh-core distribution's version (pyproject reads it from here)

__all__ = [
    "Access",
    "AccessDeniedError",
    "BASELINE_RULES",
    "BreakingChangeError",
    "Cadence",
    "CodeServer",
    "DataProduct",
    "DefinitionError",
    "DomainScope",
    "DomainStorage",
    "Expectation",
    "Governance",
    "Input",
    "IntegrityError",
    "JsonLinesNotifier",
    "Level",
    "Lifecycle",
    "MeshError",
    "MeshIOManager",
    "Notification",
    "Notifier",
    "OffsetRange",
    "OutputPort",
    "POLICIES",
    "Policy",
    "PortVersion",
    "PreviousMajor",
    "ProductNotPublishedError",
    "ProductOutputError",
    "ProductRef",
    "ProductRetiredError",
    "ProductRun",
    "Publication",
    "PublishBlockedError",
    "Retention",
    "Rule",
    "SLO",
    "Severity",
    "SparkEngine",
    "SparkUnavailableError",
    "Status",
    "StorageError",
    "VersionNotFoundError",
    "Violation",
    "WorkspaceError",
    "data_product",
    "domain_definitions",
    "grpc_workspace_yaml",
    "instance_yaml",
    "kafka_consumer",
    "mesh_executor",
    "package_data_path",
    "plan_code_servers",
    "prepare_instance",
    "read_micro_batch",
    "run_product",
    "stream_sensor",
]
