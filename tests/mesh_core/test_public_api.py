"""The public surface: `mesh_core` exports exactly the committed list of names.

Domain code, the README and the docs import only from `mesh_core`; the modules behind it may move,
the names may not change by accident. Adding or removing a public name means editing
`public_api.txt` in the same change, where a reviewer sees it.
"""

import types
from pathlib import Path

import mesh_core

COMMITTED = Path(__file__).with_name("public_api.txt")


def _public_names() -> list[str]:
    # Importing a submodule sets it as an attribute of its package: modules are not API names.
    return sorted(name for name, value in vars(mesh_core).items()
                  if not name.startswith("_") and not isinstance(value, types.ModuleType))


def test_mesh_core_exports_exactly_the_committed_names():
    committed = COMMITTED.read_text().split()
    assert _public_names() == committed, (
        f"mesh_core's public names changed: added {sorted(set(_public_names()) - set(committed))}, "
        f"removed {sorted(set(committed) - set(_public_names()))}; if that is intended, update {COMMITTED.name}."
    )


def test_all_lists_the_same_names_so_star_imports_match():
    assert sorted(mesh_core.__all__) == COMMITTED.read_text().split()
    assert len(set(mesh_core.__all__)) == len(mesh_core.__all__), "a name is listed twice in __all__"
