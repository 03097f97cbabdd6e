"""Where a domain's data lives: a Delta Lake output port per product and the domain's private DuckDB store.

Ports are the truth and the public interface; the store is derived from them. Retention, the failpoints
that fault-injection tests kill a publish at, the contract registry (what each domain publishes for the
others, at a folder or S3 URI) and the one S3 client are here too. Knows declarations, not Dagster runs.
"""
