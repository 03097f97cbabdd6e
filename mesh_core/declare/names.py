"""Names of domains, products and checks: validated once, quoted when they reach SQL."""

from __future__ import annotations

import re

# Lower snake case keeps names valid as Dagster keys, SQL identifiers and file names alike.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


# Schemas Mesh keeps in every domain's DuckDB store beside the domain's own: no domain may take them.
RESERVED_DOMAINS = frozenset({"quarantine", "mesh_meta", "main", "information_schema", "pg_catalog"})


def is_valid_name(name: object) -> bool:
    return isinstance(name, str) and NAME_PATTERN.fullmatch(name) is not None


def quote_identifier(name: str) -> str:
    """Quote a validated name for DuckDB. Refuses anything that is not a Mesh name."""
    if not is_valid_name(name):
        raise ValueError(
            f"Refusing to use {name!r} as a SQL identifier: Mesh names are lower snake case "
            f"({NAME_PATTERN.pattern})."
        )
    return f'"{name}"'


def quote_column(name: str) -> str:
    """Quote any column name for DuckDB (a column is the data's, not a Mesh name: escaped, never trusted)."""
    return '"' + name.replace('"', '""') + '"'
