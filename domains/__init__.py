"""The example mesh: one package per business domain, each its own Dagster code location."""
