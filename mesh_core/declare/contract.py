"""What Mesh reads from a Pandera contract: its columns, as Dagster's column schema."""

from __future__ import annotations

import hashlib
import json

import dagster as dg
import pandera.pandas as pa


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
    """The contract's columns as plain values: name, type, description, nullable, unique, checks."""
    return [
        {
            "name": name,
            "type": str(column.dtype) if column.dtype is not None else "any",
            "description": column.description or column.title,
            "nullable": bool(column.nullable),
            "unique": bool(column.unique),
            "checks": [str(check) for check in column.checks],
        }
        for name, column in contract.to_schema().columns.items()
    ]


def column_schema(contract: type[pa.DataFrameModel]) -> dg.TableSchema:
    """The contract's columns as `dagster/column_schema`, shown on the asset page."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=spec["name"], type=spec["type"], description=spec["description"],
                constraints=dg.TableColumnConstraints(nullable=spec["nullable"], unique=spec["unique"], other=spec["checks"]),
            )
            for spec in column_specs(contract)
        ]
    )


def specs_from_schema(schema: dg.TableSchema) -> list[dict]:
    """`column_specs` back from a `dagster/column_schema` (or its metadata value)."""
    return [
        {"name": column.name, "type": column.type, "description": column.description,
         "nullable": column.constraints.nullable, "unique": bool(column.constraints.unique),
         "checks": list(column.constraints.other)}
        for column in getattr(schema, "schema", schema).columns
    ]


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


def classifications(contract: type[pa.DataFrameModel]) -> dict[str, str]:
    """Each column's `classification` (e.g. personal), as declared in its Field metadata."""
    return {name: str(column.metadata["classification"]) for name, column in contract.to_schema().columns.items()
            if isinstance(column.metadata, dict) and column.metadata.get("classification")}
