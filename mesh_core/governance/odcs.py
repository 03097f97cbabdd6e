"""Open Data Contract Standard v3: each public product's contract out, and a contract in.

`mesh contracts export DIR` writes one ODCS v3 document per public product: the snapshot's
schema (physical and logical types, required, unique, descriptions, Pandera checks) plus
classifications, the suite's Great Expectations rules, the objectives as SLA properties, and a
server pointing at the product's output port. `mesh contracts import FILE` turns an ODCS v3
document into a Pandera contract class and a suite, so a contract agreed outside Python is
enforced like any other; export -> import -> export gives the same schema.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from mesh_core.declare.metadata import meta_value
from mesh_core.declare.ref import ProductRef
from mesh_core.errors import MeshError
from mesh_core.governance.snapshots import contract_document
from mesh_core.governance.workspace import MeshWorkspace
from mesh_core.storage.domain_storage import DomainStorage, resolve_data_dir

_LOGICAL = [(r"^(u?int|Int|UInt)", "integer"), (r"^(float|Float)", "number"), (r"^(bool|boolean)", "boolean"),
            (r"^datetime64", "date"), (r"^(date)$", "date"), (r"^(str|string|object|category)", "string")]
_CHECK = re.compile(r"^<Check (\w+): (\w+)\((.*)\)>$")
_FIELD = {"greater_than": "gt", "greater_than_or_equal_to": "ge", "less_than": "lt", "less_than_or_equal_to": "le",
          "equal_to": "eq", "not_equal_to": "ne", "isin": "isin", "notin": "notin", "str_matches": "str_matches",
          "str_contains": "str_contains", "str_startswith": "str_startswith", "str_endswith": "str_endswith"}
_RANGES = {"in_range": ("min_value", "max_value"), "str_length": ("min_value", "max_value")}
_ANNOTATION = [(r"^int", "int"), (r"^float", "float"), (r"^bool", "bool"), (r"^str$|^string$|^object$", "str"),
               (r"^datetime64\[ns\]$", "pd.Timestamp")]


def logical_type(physical: str) -> str:
    return next((kind for pattern, kind in _LOGICAL if re.match(pattern, str(physical))), "string")


def export_document(ref: ProductRef, spec, *, port_uri: str) -> dict:
    """The published ODCS v3 document of one public product."""
    document = contract_document(ref, spec)
    meta = spec.metadata
    classes = meta_value(meta, "mesh/classifications") or {}
    schema = document["schema"][0]
    schema["logicalType"] = "object"
    for column in schema["properties"]:
        column["logicalType"] = logical_type(column["physicalType"])
        if column["name"] in classes:
            column["classification"] = classes[column["name"]]
    schema["quality"] = schema["quality"] + [
        {"type": "custom", "engine": "great-expectations", "name": item["name"],
         "description": item.get("description") or "", "severity": item.get("severity", "error"),
         "implementation": yaml.safe_dump({"expectation_type": item["type"],
                                           "kwargs": {**({"column": item["column"]} if item.get("column") else {}),
                                                      **(item.get("params") or {})}}, sort_keys=False).strip()}
        for item in meta_value(meta, "mesh/suite_items") or []
    ]
    sla = []
    if meta_value(meta, "mesh/slo_max_age_hours") is not None:
        sla.append({"property": "latency", "value": meta_value(meta, "mesh/slo_max_age_hours"), "unit": "h", "driver": "operational"})
    if meta_value(meta, "mesh/slo_due_by"):
        sla.append({"property": "timeOfAvailability", "value": meta_value(meta, "mesh/slo_due_by"), "driver": "operational"})
    if sla:
        document["slaProperties"] = sla
    document["dataProduct"] = str(ref)
    document["customProperties"].append({"property": "checksPassRateObjective", "value": meta_value(meta, "mesh/slo_pass_rate")})
    scheme = port_uri.split("://", 1)[0] if "://" in port_uri else "local"
    server = {"server": "output-port", "type": {"s3": "s3", "gs": "gcs"}.get(scheme, "local"), "format": "delta"}
    server["location" if scheme in ("s3", "gs") else "path"] = port_uri
    document["servers"] = [server]
    return document


def export_contracts(workspace: MeshWorkspace, folder: Path, *, domains=None) -> list[Path]:
    """One ODCS v3 document per public product (of `domains`, default every domain) in `folder`,
    each with a server at the product's output port in this environment's storage."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for ref, (location, spec) in workspace.products().items():
        if spec.metadata["mesh/access"] != "public" or (domains and ref.domain not in domains):
            continue
        uri = DomainStorage(resolve_data_dir(), ref.domain).port(ref).uri
        path = folder / f"{ref}.odcs.yaml"
        path.write_text(yaml.safe_dump(export_document(ref, spec, port_uri=uri), sort_keys=False, allow_unicode=True))
        written.append(path)
    return written


def import_source(document: dict, *, class_name: str | None = None) -> tuple[str, list[str]]:
    """Python source (a Pandera contract and a suite) for an ODCS v3 document, and what it could not import."""
    if not isinstance(document, dict) or document.get("kind") != "DataContract" or not document.get("schema"):
        raise MeshError("not an ODCS v3 data contract: it needs kind: DataContract and a schema.")
    table = document["schema"][0]
    name = class_name or "".join(part.title() for part in re.split(r"[^0-9A-Za-z]+", str(table.get("name", "product")))) + "Contract"
    skipped: list[str] = []
    purpose = (document.get("description") or {}).get("purpose", "") or str(document.get("id", ""))
    lines = [f"class {name}(pa.DataFrameModel):", f"    {purpose!r}", ""]
    for column in table.get("properties") or []:
        args = []
        if not column.get("required", False):
            args.append("nullable=True")
        if column.get("unique"):
            args.append("unique=True")
        for rule in column.get("quality") or []:
            converted = _field_args(rule.get("implementation", "")) if rule.get("engine") == "pandera" else None
            if converted is None:
                skipped.append(f"{column['name']}: {rule.get('implementation') or rule}")
            else:
                args += converted
        if column.get("description"):
            args.append(f"description={column['description']!r}")
        if column.get("classification"):
            args.append(f"metadata={{'classification': {column['classification']!r}}}")
        lines.append(f"    {column['name']}: Series[{_annotation(column)}] = pa.Field({', '.join(args)})")
    lines += ["", "    class Config:", "        strict = True", "        coerce = True"]
    unique = [rule["implementation"] for rule in table.get("quality") or []
              if rule.get("engine") == "pandera" and str(rule.get("implementation", "")).startswith("unique(")]
    if unique:
        lines.append(f"        unique = {[c.strip() for c in unique[0][len('unique('):-1].split(',')]!r}")
    skipped += [str(rule.get("implementation")) for rule in table.get("quality") or []
                if rule.get("engine") == "pandera" and not str(rule.get("implementation", "")).startswith("unique(")]
    suite = []
    for rule in table.get("quality") or []:
        if rule.get("engine") != "great-expectations":
            continue
        spec = yaml.safe_load(rule.get("implementation") or "") or {}
        kwargs = dict(spec.get("kwargs") or {})
        column = kwargs.pop("column", None)
        arguments = [repr(spec.get("expectation_type"))] + ([f"column={column!r}"] if column else []) + \
            [f"name={rule['name']!r}"] * bool(rule.get("name")) + \
            [f"severity={rule['severity']!r}"] * (rule.get("severity") == "warning") + \
            [f"description={rule['description']!r}"] * bool(rule.get("description")) + \
            [f"{key}={value!r}" for key, value in kwargs.items()]
        suite.append(f"    Expectation({', '.join(arguments)}),")
    constant = re.sub(r"Contract$", "", name)
    constant = re.sub(r"(?<!^)(?=[A-Z])", "_", constant).upper() + "_SUITE"
    source = ("import pandas as pd\nimport pandera.pandas as pa\nfrom pandera.typing import Series\n\n"
              "from mesh_core import Expectation\n\n\n" + "\n".join(lines) + "\n\n\n"
              + f"{constant} = [\n" + "\n".join(suite) + "\n]\n")
    ast.parse(source)  # what we write is Python
    return source, skipped


def _annotation(column: dict) -> str:
    physical = str(column.get("physicalType", ""))
    tz = re.match(r"^datetime64\[ns, (.+)\]$", physical)
    if tz:
        return f'pd.DatetimeTZDtype("ns", "{tz.group(1)}")'
    found = next((kind for pattern, kind in _ANNOTATION if re.match(pattern, physical)), None)
    return found or {"integer": "int", "number": "float", "boolean": "bool",
                     "date": "pd.Timestamp"}.get(column.get("logicalType"), "str")


def _field_args(implementation: str) -> list[str] | None:
    match = _CHECK.match(str(implementation))
    if not match:
        return None
    check, arguments = match.group(1), match.group(3)
    try:
        values = ast.literal_eval(f"({arguments},)")
    except (ValueError, SyntaxError):
        return None
    if check in _FIELD and len(values) == 1:
        return [f"{_FIELD[check]}={values[0]!r}"]
    if check in _RANGES:
        if check == "str_length" and len(values) == 1:
            return [f"str_length={values[0]!r}"]
        low, high = (list(values) + [None])[:2]
        return [f"{check}={{'min_value': {low!r}, 'max_value': {high!r}}}"]
    return None


def read_document(path: Path) -> dict:
    try:
        return yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise MeshError(f"cannot read {path} as an ODCS YAML document: {' '.join(str(exc).split())}") from None
