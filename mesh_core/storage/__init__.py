"""Where a domain's data lives: a Delta Lake output port per product and the domain's private DuckDB store.

Ports are the truth and the public interface; the store is derived from them. Retention, and the
failpoints that fault-injection tests kill a publish at, are here too. Knows declarations, not Dagster runs.
"""
