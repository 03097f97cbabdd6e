"""The `mesh` command (`mesh_core.cli.main`)."""

from mesh_core.cli.main import entry as entry, main as main
