"""Reference data: the airlines and airports every other domain names."""
