"""What an operator runs against a live mesh: the catalog, repair, and one code server per domain."""
