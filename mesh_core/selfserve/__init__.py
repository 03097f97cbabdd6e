"""The self-serve platform for domain engineers: scaffolding and removing domains, contracts inferred from data, testing a product."""
