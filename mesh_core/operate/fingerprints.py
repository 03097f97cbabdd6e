"""What a product's definition is, as one hash: how `mesh preview` tells which products a change touches.

A product's fingerprint covers its function's source (decorator included; a SQL product's query
too, wherever it is written) and everything its code
location declares of it: description, owners, tags, inputs, contract rules and schema, version,
suite, access, lifecycle, objectives, and its checks (consumers' expectations included). A domain's
*helper* fingerprint covers its Python files with the product functions cut out: constants, helper
functions and modules the products call. When it differs, every product of the domain may behave
differently, so `mesh preview` counts them all as changed.

Two versions of `domains.*` cannot be imported in one process, so each side of a comparison is
computed in its own process: `python -P -m mesh_core.operate.fingerprints WORKSPACE` (run with the
working directory the workspace file's entries are relative to) prints
`{"products": {product: fingerprint}, "domains": {domain: helper fingerprint}}` as JSON; a
workspace that does not load prints the error and exits 2.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

from mesh_core.declare.product import DataProduct
from mesh_core.declare.ref import ProductRef
from mesh_core.governance.workspace import Location, MeshWorkspace


def fingerprints(workspace: MeshWorkspace) -> dict[str, dict[str, str]]:
    """{"products": {'domain.product': fingerprint}, "domains": {domain: helper fingerprint}}."""
    products, domains = {}, {}
    shared = _shared_folders(workspace)
    for location in workspace.locations:
        declared = declared_products(location)
        for ref, spec in location.products.items():
            assets_def = location.defs.resolve_assets_def(ref.asset_key)
            product = declared.get(ref)
            described = {
                "source": product_source(product) if product is not None else None,
                "description": spec.description, "owners": sorted(spec.owners), "tags": dict(sorted(spec.tags.items())),
                "deps": sorted(dep.asset_key.to_user_string() for dep in spec.deps),
                "code_version": spec.code_version,
                "metadata": {key: _plain(value) for key, value in sorted(spec.metadata.items())},
                "checks": sorted((check.name, check.description or "", check.blocking, _plain(dict(check.metadata or {})))
                                 for check in assets_def.check_specs),
            }
            products[str(ref)] = _hash(described)
        domains[location.name] = _hash(_helper_text(location, declared.values(), shared))
    return {"products": products, "domains": domains}


def declared_products(location: Location) -> dict[ProductRef, DataProduct]:
    """The DataProduct objects of the location's own modules (its package), by ref."""
    package = location.module.rsplit(".", 1)[0]
    found = {}
    for name, module in list(sys.modules.items()):
        if module is None or not (name == package or name.startswith(package + ".") or name == location.module):
            continue
        for value in vars(module).values():
            if isinstance(value, DataProduct) and value.domain == location.name:
                found[value.ref] = value
    return found


def product_source(product: DataProduct) -> str:
    """The code that computes the product: its function, and for a SQL product its query (a .sql
    file beside the module is not in the function's source, nor in the domain's helper files)."""
    return _source(product.fn) + (f"\n-- sql\n{product.sql}" if product.sql is not None else "")


def _source(fn) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):  # defined outside a file (a notebook, exec): its bytecode then
        return repr(getattr(fn, "__code__", fn).co_code if hasattr(fn, "__code__") else fn)


def _helper_text(location: Location, products, shared: set[Path]) -> list[tuple[str, str]]:
    """(file, text without the product functions) of every Python file of the location's package: the
    folder of its definitions module, or only that module's file when other domains' modules share the folder."""
    path = _module_file(location)
    if path is None:
        return []
    files = [path] if path.parent in shared else [p for p in path.parent.rglob("*.py") if "__pycache__" not in p.parts]
    sources = [_source(product.fn) for product in products]
    found = []
    for file in sorted(files):
        text = file.read_text(encoding="utf-8", errors="replace")
        for source in sources:
            text = text.replace(source, "")
        found.append((str(file.relative_to(path.parent)), text))
    return found


def _module_file(location: Location) -> Path | None:
    module = sys.modules.get(location.module)
    return Path(module.__file__).resolve() if module is not None and getattr(module, "__file__", None) else None


def _shared_folders(workspace: MeshWorkspace) -> set[Path]:
    folders = [path.parent for path in map(_module_file, workspace.locations) if path is not None]
    return {folder for folder in folders if folders.count(folder) > 1}


def _plain(value: Any) -> Any:
    value = getattr(value, "value", value)  # a MetadataValue: its value
    if type(value) is dict:
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda item: str(item[0]))}
    if type(value) in (list, tuple):  # not Dagster's records (named tuples that refuse iteration)
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)  # e.g. a TableSchema: its repr names every column, type and constraint


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -P -m mesh_core.operate.fingerprints WORKSPACE", file=sys.stderr)
        return 2
    from mesh_core.errors import MeshError

    try:
        with contextlib.redirect_stdout(sys.stderr):  # whatever a domain prints while loading stays off the JSON
            found = fingerprints(MeshWorkspace.load(Path(args[0])))
    except MeshError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
