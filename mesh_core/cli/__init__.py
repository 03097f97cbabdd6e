"""The `mesh` command: a thin layer over mesh_core's Python API, one module per command group.

`main` builds the parser from each group's `register` and maps errors to exit codes; the groups
parse arguments, call one function of the layers below and print what it returns.
"""

from mesh_core.cli.main import entry as entry, main as main
