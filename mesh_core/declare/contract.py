"""What Mesh reads from a Pandera contract: its columns, as Dagster's column schema."""

from __future__ import annotations

import hashlib
import json

import dagster as dg
import pandera.pandas as pa

from mesh_core.declare.metadata import meta_value


def is_contract(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, pa.DataFrameModel)


def contract_columns(contract: type[pa.DataFrameModel]) -> list[str]:
    return list(contract.to_schema().columns)


def key_columns(contract: type[pa.DataFrameModel]) -> list[str]:
    """The columns that name one row: the contract's multi-column key (Config.unique), else its
    unique columns. Failure samples show them, so an owner can find the rows."""
    schema = contract.to_schema()
    unique = schema.unique
    if unique:
        return [unique] if isinstance(unique, str) else list(unique)
    return [name for name, column in schema.columns.items() if column.unique]


def column_specs(contract: type[pa.DataFrameModel]) -> list[dict]:
    """The contract's columns as plain values: name, type, description, nullable, unique, checks
    (Pandera's own text of each check: what snapshots, ODCS and fingerprints compare) and rules
    (the same checks as a reader says them, see `check_rules`)."""
    return [
        {
            "name": name,
            "type": str(column.dtype) if column.dtype is not None else "any",
            "description": column.description or column.title,
            "nullable": bool(column.nullable),
            "unique": bool(column.unique),
            "checks": [str(check) for check in column.checks],
            "rules": check_rules(column.checks),
        }
        for name, column in contract.to_schema().columns.items()
    ]


def column_schema(contract: type[pa.DataFrameModel]) -> dg.TableSchema:
    """The contract's columns as `dagster/column_schema`, shown on the asset page: each column's
    checks as short rules (the UI cuts a constraint after 27 characters), the table's below it."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=spec["name"], type=spec["type"], description=spec["description"],
                constraints=dg.TableColumnConstraints(nullable=spec["nullable"], unique=spec["unique"], other=spec["rules"]),
            )
            for spec in column_specs(contract)
        ],
        constraints=dg.TableConstraints(other=table_rules(contract)),
    )


def column_checks(contract: type[pa.DataFrameModel]) -> dict[str, list[str]]:
    """Pandera's text of each column's checks (`mesh/column_checks`): the column schema shows rules."""
    return {spec["name"]: spec["checks"] for spec in column_specs(contract)}


def specs_from_metadata(metadata) -> list[dict]:
    """`column_specs` back from an asset's metadata: its `dagster/column_schema` and `mesh/column_checks`."""
    schema = metadata["dagster/column_schema"]
    schema = getattr(schema, "schema", schema)  # a TableSchemaMetadataValue, or the TableSchema itself
    checks = meta_value(metadata, "mesh/column_checks") or {}
    return [
        {"name": column.name, "type": column.type, "description": column.description,
         "nullable": column.constraints.nullable, "unique": bool(column.constraints.unique),
         "checks": list(checks.get(column.name, column.constraints.other)), "rules": list(column.constraints.other)}
        for column in schema.columns
    ]


def table_key(contract: type[pa.DataFrameModel]) -> list[str]:
    """The contract's multi-column key (`Config.unique`), recorded as `mesh/key`; empty if it has none."""
    unique = contract.to_schema().unique
    return [unique] if isinstance(unique, str) else list(unique or [])


def contract_key(metadata) -> tuple[str, ...] | None:
    """The columns that name one row, from a product's asset metadata: its `mesh/key` (Config.unique),
    else its first unique column (each one alone names a row; taking one lets a change to another
    unique column read as a changed row, not a row removed and one added), else None."""
    key = meta_value(metadata, "mesh/key")
    if key:
        return tuple(key)
    if "dagster/column_schema" not in metadata:
        return None
    unique = [spec["name"] for spec in specs_from_metadata(metadata) if spec["unique"]]
    return (unique[0],) if unique else None


def contract_rules(contract: type[pa.DataFrameModel]) -> str:
    """The contract as Markdown rules, one line per column, then the table's (`mesh/contract_rules`)."""
    lines = [f"**{contract.__name__}**", ""]
    for spec in column_specs(contract):
        rules = [*spec["rules"], *(["unique"] if spec["unique"] else []), "nullable" if spec["nullable"] else "not null"]
        lines.append(f"- `{spec['name']}` ({spec['type']}): {'; '.join(rules)}")
    lines += [f"- table: {rule}" for rule in table_rules(contract)]
    return "\n".join(lines)


def contract_fingerprint(contract: type[pa.DataFrameModel]) -> str:
    """A short hash of what the contract promises (columns, types, nullability, checks, options),
    recorded with every published version so a consumer can tell which contract it read."""
    schema = contract.to_schema()
    promise = {
        "columns": {
            name: [str(column.dtype), column.nullable, column.unique, sorted(str(check) for check in column.checks)]
            for name, column in schema.columns.items()
        },
        "checks": sorted(str(check) for check in schema.checks),
        "strict": str(schema.strict),
        "unique": sorted(schema.unique or []),
    }
    return hashlib.sha256(json.dumps(promise, sort_keys=True).encode()).hexdigest()[:16]


def table_checks(contract: type[pa.DataFrameModel]) -> list[str]:
    """The contract's checks over whole rows or frames, and its multi-column keys."""
    schema = contract.to_schema()
    return sorted(str(check) for check in schema.checks) + ([f"unique({', '.join(schema.unique)})"] if schema.unique else [])


def table_rules(contract: type[pa.DataFrameModel]) -> list[str]:
    """`table_checks` as a reader says them."""
    schema = contract.to_schema()
    return check_rules(schema.checks) + ([f"unique ({', '.join(schema.unique)})"] if schema.unique else [])


_COMPARISONS = {"greater_than_or_equal_to": (">=", "min_value"), "greater_than": (">", "min_value"),
                "less_than_or_equal_to": ("<=", "max_value"), "less_than": ("<", "max_value"),
                "equal_to": ("==", "value"), "not_equal_to": ("!=", "value")}
_LOWER, _UPPER = {"greater_than_or_equal_to", "greater_than"}, {"less_than_or_equal_to", "less_than"}


def check_rules(checks) -> list[str]:
    """Pandera checks as rules a reader can take in at a glance: `>= 0`, `between 1 and 500`,
    `in {A, B}`, `matches ^[A-Z]{2}$`; a custom check by its error text or name. A lower and an
    upper bound on the same column (Field(ge=1, le=500)) read as one range."""
    checks = list(checks)
    lower = [c for c in checks if c.name in _LOWER]
    upper = [c for c in checks if c.name in _UPPER]
    if len(lower) != 1 or len(upper) != 1:
        return [check_rule(check) for check in checks]
    low, high = lower[0], upper[0]
    bounds = _range({"min_value": low.statistics.get("min_value"), "max_value": high.statistics.get("max_value"),
                     "include_min": low.name == "greater_than_or_equal_to",
                     "include_max": high.name == "less_than_or_equal_to"})
    return [bounds if check is low else check_rule(check) for check in checks if check is not high]


def check_rule(check) -> str:
    """One Pandera check as a rule (see `check_rules`)."""
    name, stats = check.name, dict(check.statistics or {})
    try:
        if name in _COMPARISONS:
            op, key = _COMPARISONS[name]
            return f"{op} {stats[key]}"
        if name == "in_range":
            return _range(stats)
        if name in ("isin", "notin"):
            values = stats["allowed_values"] if name == "isin" else stats["forbidden_values"]
            return f"{'in' if name == 'isin' else 'not in'} {_set(values)}"
        if name == "unique_values_eq":
            return f"values exactly {_set(stats['values'])}"
        if name in ("str_matches", "str_contains"):
            return f"{'matches' if name == 'str_matches' else 'contains'} {stats['pattern']}"
        if name in ("str_startswith", "str_endswith"):
            return f"{'starts' if name == 'str_startswith' else 'ends'} with {stats['string']}"
        if name == "str_length":
            low, high, exact = stats.get("min_value"), stats.get("max_value"), stats.get("exact_value")
            return (f"length {exact}" if exact is not None
                    else f"length between {low} and {high}" if low is not None and high is not None
                    else f"length >= {low}" if low is not None else f"length <= {high}")
    except KeyError:  # a custom check registered under a built-in's name: say it as its author did
        pass
    return str(check.error or (name if name and name != "<lambda>" else "custom check"))


def _range(stats: dict) -> str:
    low, high = stats["min_value"], stats["max_value"]
    include_min, include_max = stats.get("include_min", True), stats.get("include_max", True)
    if include_min and include_max:
        return f"between {low} and {high}"
    return f"{'>=' if include_min else '>'} {low} and {'<=' if include_max else '<'} {high}"


def _set(values) -> str:
    shown = [str(value) for value in values]  # a list in the order declared, a set sorted
    return "{" + ", ".join(sorted(shown) if isinstance(values, (set, frozenset)) else shown) + "}"


def classifications(contract: type[pa.DataFrameModel]) -> dict[str, str]:
    """Each column's `classification` (e.g. personal), as declared in its Field metadata."""
    return {name: str(column.metadata["classification"]) for name, column in contract.to_schema().columns.items()
            if isinstance(column.metadata, dict) and column.metadata.get("classification")}
