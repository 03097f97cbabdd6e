"""The self-serve platform for domain engineers: scaffolding, contracts inferred from data, testing a product."""
