"""A domain's entry in the contract registry, and a domain rebuilt from its entry.

A domain that lives in its own repository and virtualenv cannot be imported by the others, so
what they need of it travels as data, never as code: per product its owners, description, tags,
access, lifecycle, objectives and version, each public major's ODCS contract, and the asset
metadata the mesh's rules read (an internal product: only whether it may be read); and every
input of its products, with the columns and expectations its consumer relies on.

`domain_entry` writes that from a loaded code location. `RegistryLocation.from_entry` rebuilds
from it the asset specs that lint, the breaking-change gate, the consumers files, the catalog and
status read, so a remote domain is a producer and a reader exactly like one whose code is here.
`entry_from_interpreter` asks another interpreter (workspace.yaml's `executable_path`: the
domain's own virtualenv) for its location's entry, through `mesh_core.governance.registry_entry`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shlex
import subprocess
import sys
from datetime import date
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

import dagster as dg
from dagster._check import CheckError  # Dagster's own argument checks (an owner that is not a string) raise it

from mesh_core.declare.expectation import Expectation
from mesh_core.declare.inputs import Input
from mesh_core.declare.lifecycle import Lifecycle, Status
from mesh_core.declare.majors import major_of
from mesh_core.declare.metadata import meta_value
from mesh_core.declare.ref import ProductRef
from mesh_core.declare.slo import SLO
from mesh_core.errors import DefinitionError, Violation, WorkspaceError
from mesh_core.governance.odcs_contract import contract_document

if TYPE_CHECKING:
    from mesh_core.governance.workspace import Location

ENTRY_FORMAT = 1
ENTRY_TIMEOUT_SECONDS = 300.0  # importing a domain's code in its own interpreter: as long as a code server may take
ENTRY_NOTICE_SECONDS = 10.0  # then say what it waits for: a hung import is otherwise minutes of silence
# What other domains may learn of an internal product: whether they may read it (access, lifecycle),
# its version, and its objectives (for the catalog). Its columns and contract stay in its repository.
_INTERNAL_KEYS = ("mesh/version", "mesh/access", "mesh/status", "mesh/deprecated_on", "mesh/successor")


def domain_entry(location: "Location") -> dict:
    """The registry entry of one loaded code location: JSON only, in a stable order, so an
    unchanged domain writes the same entry."""
    products = {}
    for ref, spec in sorted(location.products.items()):
        if ref.domain != location.name:
            raise WorkspaceError(f"code location '{location.name}' ({location.module}) serves {ref}, a product of domain "
                                 f"'{ref.domain}': a registry entry holds one domain's products. Fix: name the code "
                                 "location in workspace.yaml after its domain.")
        products[ref.product] = _product_record(ref, spec)
    reads = [_read_record(consumer, param, spec, location.owners_of(consumer))
             for consumer, param, spec in sorted(location.reads(), key=lambda item: (str(item[0]), item[1]))]
    return {"format": ENTRY_FORMAT, "domain": location.name, "mesh_core": _mesh_core_version(),
            "products": products, "reads": reads}


def _product_record(ref: ProductRef, spec: dg.AssetSpec) -> dict:
    meta = spec.metadata
    access, version = meta_value(meta, "mesh/access"), meta_value(meta, "mesh/version")
    lifecycle = Lifecycle.from_metadata(meta)
    public = access == "public"
    previous = list(meta_value(meta, "mesh/previous_majors") or []) if public else []
    contracts = {str(major_of(version)): contract_document(ref, spec)} if public else {}
    contracts.update({str(item["major"]): contract_document(ref, spec, item) for item in previous})
    return {
        "owners": list(spec.owners),
        "description": spec.description or "",
        "tags": dict(sorted(spec.tags.items())),
        "access": access,
        "version": version,
        "lifecycle": {"status": lifecycle.status.value,
                      "deprecated_on": lifecycle.deprecated_on.isoformat() if lifecycle.deprecated_on else None,
                      "successor": str(lifecycle.successor) if lifecycle.successor else None},
        "objectives": _objectives(meta),
        "previous_majors": [{"major": item["major"], "version": item["version"], "until": item["until"]} for item in previous],
        "contracts": dict(sorted(contracts.items(), key=lambda item: int(item[0]) if item[0].isdigit() else -1)),
        "metadata": {key: _encode(value) for key, value in sorted(meta.items())
                     if public or key in _INTERNAL_KEYS or key.startswith("mesh/slo")},
    }


def _objectives(meta) -> dict:
    slo = SLO.from_metadata(meta)
    return {"summary": slo.describe(), **dataclasses.asdict(slo)}


def _read_record(consumer: ProductRef, param: str, spec: Input, owners) -> dict:
    return {"consumer": str(consumer), "owners": list(owners), "input": param, "product": str(spec.ref),
            "major": spec.major, "columns": None if spec.columns is None else list(spec.columns),
            # The level is the producer's mesh's (governance.yaml), not the consumer's: no severity.
            "expectations": [{k: v for k, v in item.as_dict().items() if k != "severity"} for item in spec.expectations]}


def _mesh_core_version() -> str | None:
    return getattr(sys.modules.get("mesh_core"), "__version__", None)


# -- metadata as JSON ---------------------------------------------------------------------
# A plain value stays itself; a Dagster metadata value becomes {kind: payload}, one key.

def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dg.TableSchemaMetadataValue):
        value = value.schema
    if isinstance(value, dg.TableSchema):
        return {"table_schema": {
            "columns": [{"name": c.name, "type": c.type, "description": c.description,
                         "nullable": c.constraints.nullable, "unique": c.constraints.unique,
                         "other": list(c.constraints.other), "tags": dict(c.tags or {})} for c in value.columns],
            "other": list(value.constraints.other) if value.constraints else []}}
    if isinstance(value, dg.JsonMetadataValue):
        return {"json": value.data}
    if isinstance(value, dg.MarkdownMetadataValue):
        return {"md": value.md_str}
    if isinstance(value, dg.UrlMetadataValue):
        return {"url": value.url}
    if isinstance(value, dg.PathMetadataValue):
        return {"path": value.path}
    if isinstance(value, dg.TimestampMetadataValue):
        return {"timestamp": value.value}
    if isinstance(value, (dg.IntMetadataValue, dg.FloatMetadataValue, dg.BoolMetadataValue, dg.TextMetadataValue)):
        return value.value
    return {"text": str(value)}  # a kind the registry does not carry: readers see its text


def _decode(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    [(kind, payload)] = value.items()
    if kind == "table_schema":
        return dg.TableSchema(
            columns=[dg.TableColumn(name=c["name"], type=c["type"], description=c["description"],
                                    constraints=dg.TableColumnConstraints(nullable=c["nullable"], unique=c["unique"],
                                                                          other=list(c["other"])),
                                    tags=c.get("tags") or {})
                     for c in payload["columns"]],
            constraints=dg.TableConstraints(other=list(payload["other"])))
    if kind in _KINDS:
        return getattr(dg.MetadataValue, kind)(payload)
    raise ValueError(f"metadata value {value!r} is of no kind this mesh-core reads")


_KINDS = ("json", "md", "url", "path", "text", "timestamp")  # the MetadataValue constructors an entry names


# -- a domain rebuilt from its entry ------------------------------------------------------

@dataclasses.dataclass(frozen=True, eq=False)
class RegistryLocation:
    """A domain whose code is not loaded here, rebuilt from its entry: duck-types
    `governance.workspace.Location` (no `defs`: nothing of it runs here)."""

    name: str
    module: str  # where it came from: "registry:<uri>" or "executable:<python>"
    products: Mapping[ProductRef, dg.AssetSpec]
    entry: Mapping[str, Any]  # the entry as read: what a publish compares against
    read_records: tuple[tuple[ProductRef, str, Input], ...]
    owners: Mapping[ProductRef, tuple[str, ...]]  # of every consumer its entry names
    defs: None = None

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any], source: str) -> "RegistryLocation":
        """The domain of `entry`, read from `source` ("registry:<uri>" or "executable:<python>");
        a WorkspaceError naming the domain, the source and the fix when the entry cannot be read."""
        domain = entry.get("domain") if isinstance(entry, Mapping) else None
        fix = (f"republish it from its repository (`mesh registry publish -d {domain}`), or restore the registry's newest "
               "entry from a backup" if source.startswith("registry:")
               else "fix the domain's code so that its entry is complete")
        if not isinstance(entry, Mapping) or entry.get("format") != ENTRY_FORMAT:
            found = entry.get("format") if isinstance(entry, Mapping) else type(entry).__name__
            newer = isinstance(found, int) and not isinstance(found, bool) and found > ENTRY_FORMAT
            raise WorkspaceError(
                f"The entry of domain {domain!r} from {source} is in format {found!r}; this mesh-core "
                f"({_mesh_core_version()}) reads format {ENTRY_FORMAT}. Fix: "
                + ("upgrade mesh-core here." if newer else f"{fix}."))
        try:
            return cls._build(entry, source)
        except (KeyError, TypeError, ValueError, AttributeError, dg.DagsterError, CheckError) as exc:
            raise WorkspaceError(f"The entry of domain {domain!r} from {source} cannot be read ({type(exc).__name__}: "
                                 f"{' '.join(str(exc).split())[:300]}). Fix: {fix}.") from None

    @classmethod
    def _build(cls, entry: Mapping[str, Any], source: str) -> "RegistryLocation":
        domain = entry["domain"]
        ProductRef(domain, "product")  # a valid domain name, or ValueError
        reads, owners = [], {}
        for record in entry["reads"]:
            consumer = ProductRef.parse(record["consumer"])
            if consumer.domain != domain:  # else one domain could register a reliance, and owners, for another
                raise ValueError(f"its reads name {consumer}, a product of domain '{consumer.domain}': an entry registers "
                                 "only its own products' reads")
            spec = Input(record["product"], major=record.get("major"), columns=record.get("columns"),
                         expectations=[Expectation.from_dict(item) for item in record.get("expectations") or ()])
            reads.append((consumer, record["input"], spec))
            owners[consumer] = tuple(record.get("owners") or ())
        products = {}
        for product, record in sorted(entry["products"].items()):
            ref = ProductRef(domain, product)
            deps = list(dict.fromkeys(spec.ref.asset_key for consumer, _, spec in reads if consumer == ref))
            products[ref] = _spec(ref, record, deps)
            owners[ref] = tuple(products[ref].owners)
        return cls(domain, source, MappingProxyType(products), MappingProxyType(dict(entry)), tuple(reads),
                   MappingProxyType(owners))

    def reads(self) -> list[tuple[ProductRef, str, Input]]:
        """(consumer, parameter, Input) of the domain's products, as its entry registered them (a
        consumer whose spec the entry does not carry, e.g. an internal one, still counts)."""
        return list(self.read_records)

    def inputs(self) -> list[tuple[ProductRef, ProductRef]]:
        """(consumer, input) pairs of the domain's products."""
        return list(dict.fromkeys((consumer, spec.ref) for consumer, _, spec in self.read_records))

    def owners_of(self, consumer: ProductRef) -> tuple[str, ...]:
        return self.owners.get(consumer, ())



def _spec(ref: ProductRef, record: Mapping[str, Any], deps: list[dg.AssetKey]) -> dg.AssetSpec:
    """The product's asset spec as its code declares it, as far as the mesh's rules read it."""
    lifecycle = record["lifecycle"]
    metadata = {key: _decode(value) for key, value in record["metadata"].items()}
    # The summary fields are the entry's own word on what other domains check against.
    metadata.update({"mesh/version": record["version"], "mesh/access": record["access"],
                     **Lifecycle(Status(lifecycle["status"]),
                                 date.fromisoformat(lifecycle["deprecated_on"]) if lifecycle.get("deprecated_on") else None,
                                 ProductRef.parse(lifecycle["successor"]) if lifecycle.get("successor") else None).metadata()})
    if record["access"] == "public" and "dagster/column_schema" not in metadata:
        raise ValueError(f"public product {ref} has no dagster/column_schema")
    return dg.AssetSpec(key=ref.asset_key, description=record.get("description") or None, owners=list(record["owners"]),
                        tags=dict(record.get("tags") or {}), metadata=metadata, group_name=ref.domain,
                        code_version=record["version"], deps=deps, freshness_policy=SLO.from_metadata(metadata).freshness_policy())


# -- an entry from another interpreter ----------------------------------------------------

def entry_from_interpreter(executable: str, module: str, name: str, working_directory: str, *,
                           timeout: float = ENTRY_TIMEOUT_SECONDS, notice_after: float = ENTRY_NOTICE_SECONDS) -> dict:
    """The entry of code location `name` (`module`), loaded by `executable` in `working_directory`
    the way a code server of that interpreter would. A DefinitionError with the location's own
    violations when its code breaks a rule; a WorkspaceError with its stderr and the fix otherwise."""
    command = [executable, "-P", "-m", "mesh_core.governance.registry_entry", "--module", module, "--location", name]
    shown = shlex.join(command)  # a command the user can paste, a folder with a space in it too
    try:
        process = subprocess.Popen(command, cwd=working_directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError as exc:
        raise WorkspaceError(f"{executable} cannot be run ({exc.strerror or exc}). Fix: point executable_path at the "
                             "python of the domain's own virtualenv (e.g. <its folder>/.venv/bin/python).") from None
    try:
        try:
            stdout, stderr = process.communicate(timeout=min(notice_after, timeout))
        except subprocess.TimeoutExpired:
            if notice_after >= timeout:
                raise
            logging.getLogger("mesh").warning("Waiting for %s to print the registry entry of domain %s (importing its code "
                                              "in %s); giving up after %g s.", executable, name, working_directory, timeout)
            stdout, stderr = process.communicate(timeout=timeout - notice_after)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()  # not communicate(): a child it started may hold the pipes open for as long as it hangs
        raise WorkspaceError(f"{executable} printed no entry within {timeout:g} s. Fix: run `{shown}` in {working_directory} "
                             "to see where loading the domain's code hangs.") from None
    done = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    printed = _last_json(done.stdout)
    if done.returncode == 0 and isinstance(printed, dict) and "format" in printed:
        return printed
    if isinstance(printed, dict) and isinstance(printed.get("load_failure"), dict):
        failure = printed["load_failure"]
        violations = tuple(Violation(**item) for item in failure.get("violations") or ())
        if violations:
            raise DefinitionError(violations)
        raise WorkspaceError(f"in {executable}: {failure.get('message')}")
    stderr = "\n".join(done.stderr.strip().splitlines()[-15:]) or "(nothing on stderr)"
    if "No module named 'mesh_core'" in done.stderr or "No module named mesh_core" in done.stderr:
        fix = (f"install mesh-core ({_mesh_core_version()} or newer) in that virtualenv: "
               f"`{shlex.quote(executable)} -m pip install mesh-core`")
    else:
        fix = f"run `{shown}` in {working_directory} to see the whole error"
    raise WorkspaceError(f"{executable} could not print the entry (exit {done.returncode}):\n{stderr}\nFix: {fix}.")


def _last_json(stdout: str) -> Any:
    """The JSON document registry_entry prints last (domain code may print before it)."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None
