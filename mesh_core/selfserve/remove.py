"""`mesh remove domain`: take a domain out of the mesh in one step, or refuse and say who still needs it.

A domain is refused while another domain reads one of its products that is not retired (each
consumer is named with its owners). Otherwise one plan removes its folder (code, data files,
snapshots), its scaffolded tests, its Helm user deployment, the expectations it had registered
with the producers it read, and last its workspace entry: a run killed half-way leaves the entry,
and the same command finishes the job. Published data stays unless asked: it is the domain's
last word, and other tools may still read its ports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from mesh_core.declare.lifecycle import Lifecycle, Status
from mesh_core.errors import MeshError
from mesh_core.selfserve.plan import Plan
from mesh_core.selfserve.scaffold import entries_with_modules, plan_deployment


@dataclass(frozen=True)
class Removal:
    plan: Plan
    folder: Path
    data: tuple[Path, ...]  # the domain's local data (its store, and its ports when they are elsewhere)
    data_removed: bool


def plan_remove_domain(workspace_path: Path, name: str, *, data_dir: Path | None = None, ports_uri: str | None = None,
                       delete_data: bool = False) -> Removal:
    """Everything to remove, checked before anything is: who reads it, where it lives, its data."""
    from mesh_core.governance.workspace import MeshWorkspace, did_you_mean, read_entries

    workspace_path = Path(workspace_path).resolve()
    root = workspace_path.parent
    entries = {entry.name: (entry.module, Path(entry.working_directory)) for entry in read_entries(workspace_path)}
    if name not in entries:
        raise MeshError(f"No domain '{name}' in {workspace_path.name}{did_you_mean(name, entries)}; "
                        f"domains: {', '.join(entries)}.")
    if len(entries) == 1:
        raise MeshError(f"'{name}' is the only domain in {workspace_path.name}; a mesh needs at least one. "
                        "Add another domain first, or delete the repository.")
    module, working_dir = entries[name]
    folder = (working_dir / module.rpartition(".")[0].replace(".", "/")).resolve()
    if folder.parent != root / "domains":
        raise MeshError(f"domain '{name}' is loaded from {module}, not from a folder domains/<name>/ beside "
                        f"{workspace_path.name}; remove its entry and its code by hand.")

    workspace, failures = MeshWorkspace.load_partial(workspace_path)
    blind = [failure for failure in failures if failure.name != name]
    if blind:
        raise MeshError(f"cannot tell whether {', '.join(f.name for f in blind)} read(s) '{name}': their code "
                        f"location(s) do not load. Fix them first (`mesh lint` says how), then remove '{name}'.")
    own = next((loc for loc in workspace.locations if loc.name == name), None)
    retired = {ref for ref, spec in (own.products.items() if own else ())
               if Lifecycle.from_metadata(spec.metadata).status is Status.RETIRED}
    readers = [(loc, consumer, upstream) for loc in workspace.locations if loc.name != name
               for consumer, upstream in loc.inputs() if upstream.domain == name and upstream not in retired]
    if readers:
        lines = [f"  {consumer} reads {upstream} (owners: {', '.join(loc.products[consumer].owners) or 'none'})"
                 for loc, consumer, upstream in readers]
        raise MeshError(f"cannot remove domain '{name}': other domains read its products:\n" + "\n".join(lines)
                        + f"\nFix: have them stop reading '{name}' (or retire the product once they have), then "
                          "remove it.")

    plan = Plan()
    if folder.exists():  # gone already when an earlier remove was killed half-way
        plan.remove.append(folder)
    tests = root / "tests" / "domains"
    own_tests = sorted(path for path in {*tests.glob(f"test_{name}.py"), *tests.glob(f"test_{name}__*.py")}
                       if f"from domains.{name}.products import " in path.read_text(errors="replace"))
    plan.remove += own_tests
    package = tests / "__init__.py"
    if own_tests and package.exists() and not package.read_bytes().strip() and {
            p for p in tests.iterdir() if p.name != "__pycache__"} == {package, *own_tests}:
        plan.remove.append(tests)  # only the package the scaffold made for them is left: it goes too
        plan.remove = [p for p in plan.remove if p.parent != tests]
    _forget_expectations(plan, workspace, name)
    plan_deployment(plan, workspace_path, [entry for entry in entries_with_modules(workspace_path) if entry[0] != name])
    plan.change[workspace_path] = _without_entry(workspace_path, name)  # last: see the module's docstring

    data = []
    if data_dir is not None:
        data.append(data_dir / name)
        if ports_uri is not None and "://" not in ports_uri and Path(ports_uri) != data_dir:
            data.append(Path(ports_uri) / name)
    data = tuple(path for path in data if path.exists())
    if delete_data:
        if ports_uri is not None and "://" in ports_uri:
            raise MeshError(f"the ports are at {ports_uri}/{name}/ports: delete them with your object store's tools; "
                            "`--delete-data` deletes only local data. Run again without it.")
        plan.remove += data
    return Removal(plan, folder, data, delete_data and bool(data))


def _forget_expectations(plan: Plan, workspace, name: str) -> None:
    """The domain's reads (and the expectations it registered) leave its producers' consumers files (committed
    text, so a file that is stale for other reasons is left to `mesh contracts update`)."""
    from mesh_core.governance import consumers
    from mesh_core.governance.snapshots import snapshot_folder

    for location in workspace.locations:
        path = snapshot_folder(location) / consumers.file_name(location.name)
        if location.name == name or not path.exists():
            continue
        try:
            document = yaml.safe_load(path.read_text()) or {}
            kept = {product: [e for e in entries if not str(e["consumer"]).startswith(f"{name}.")]
                    for product, entries in document.items()}
        except (yaml.YAMLError, AttributeError, TypeError, KeyError):
            continue  # unreadable: lint already says so, and `mesh contracts update` rewrites it
        kept = {product: entries for product, entries in kept.items() if entries}
        if kept == document:
            continue
        if kept:
            plan.change[path] = consumers.render(kept)
        else:
            plan.remove.append(path)


def _without_entry(workspace_path: Path, name: str) -> str:
    """workspace.yaml without the domain's entry; every other line as it was."""
    text = workspace_path.read_bytes().decode("utf-8")
    lines = text.splitlines(keepends=True)
    before = yaml.safe_load(text)["load_from"]
    wanted = [item for item in before if (item.get("python_module") or {}).get("location_name") != name]
    starts = [i for i, line in enumerate(lines) if line.lstrip().startswith("- python_module")]
    for start in starts:
        indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
        end = start + 1
        while end < len(lines) and lines[end].strip() and lines[end].startswith(indent + " ") \
                and not lines[end].lstrip().startswith("- "):
            end += 1
        new = "".join(lines[:start] + lines[end:])
        try:
            if (yaml.safe_load(new) or {}).get("load_from") == wanted:
                return new
        except yaml.YAMLError:
            continue
    raise MeshError(f"Could not remove '{name}' from {workspace_path} safely; delete its entry under load_from "
                    f"and its folder domains/{name}/ by hand.")
