"""`python -m mesh_core.cli`: the `mesh` command, for a fresh interpreter (scaffolding loads new code in one)."""

from mesh_core.cli.main import entry

entry()
