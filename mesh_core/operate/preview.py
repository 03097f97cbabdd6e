"""`mesh preview`: what a change does to the data of every consumer, before it merges.

1. What changed: the named products, else those whose definition differs between the working tree
   and a git ref (`mesh_core.operate.fingerprints`, each side in its own process; the base side in a
   temporary `git worktree` of the ref, removed afterwards).
2. The sandbox set: those products and everything downstream of them, in every domain.
3. A sandbox: its own temporary Dagster instance, data folder and port root. Inputs outside the set
   are read through, read-only, from the real ports at their current versions: the sandbox instance
   records each such version as a runless materialization, so Mesh's pinning reads exactly it, and
   the storage reaches the real port through an `OutputPort(read_only=True)` that refuses any write.
   No owner is notified and no OpenLineage event is sent. Domains run in dependency order, each
   selecting only its products of the set; a product downstream of one the sandbox did not publish
   is skipped, never run against the real (older) data.
4. Checks: each sandbox result against the real instance's latest result of the same check; a
   consumer's expectation (a check on the producer) is attributed to the consumer and its owners.
5. A data diff per product (`mesh_core.operate.diff`) between the real port's current version and
   the sandbox's; for a blocked product, of the output Mesh quarantined.

The real Dagster instance is only read (today's check results); the real ports only through
read-only ports; the real DuckDB stores never.

With the contract registry (`registry=`, `mesh preview --registry`), in a workspace that lists only
some domains (a domain's own repository): the set is the changed local products and their local
downstream products; a domain known only from the registry has no code here, so it never runs. Its
registered expectations on a previewed product do run there, as that product's checks: while the
workspace loads and the sandbox runs, each local domain's readers come from the registry's entries,
not its committed consumers file (which may be behind). The report lists every such remote consumer
as affected, not previewed here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import dagster as dg

from mesh_core.declare.contract import contract_key
from mesh_core.declare.lifecycle import Lifecycle, Status
from mesh_core.declare.metadata import meta_value
from mesh_core.declare.ref import ProductRef
from mesh_core.errors import DefinitionError, PreviewError, ProductNotPublishedError, WorkspaceError
from mesh_core.governance.workspace import Location, MeshWorkspace, did_you_mean
from mesh_core.instance.home import process_alive
from mesh_core.operate.preview_result import CheckChange, Consumer, Preview, ProductPreview
from mesh_core.storage.domain_storage import READ_THROUGH_ENV, port_at, resolve_ports_uri

if TYPE_CHECKING:
    from mesh_core.governance.consumers import Substitution
    from mesh_core.storage.registry import RegistryState

DEFAULT_BRANCH = "main"
# What the sandbox sets, and what it removes for its duration (restored after, whatever happens).
_SANDBOX_VARIABLES = ("DAGSTER_HOME", "MESH_DATA_DIR", "MESH_PORTS_URI", READ_THROUGH_ENV, "MESH_INSTANCE")
_LINEAGE_PREFIX = "OPENLINEAGE"
_WORKTREE_REASON = "mesh preview, process "  # the lock reason of a preview's base worktree, then its pid
_SANDBOX_PREFIX, _OWNER_FILE = "mesh-preview-", "preview.pid"  # a sandbox folder, and the file naming its process
_INTERRUPTED = "DagsterExecutionInterruptedError"  # Dagster turns Ctrl-C during a run into this step failure


@dataclass(frozen=True)
class Changes:
    """The products a change touches, and the commit it was compared with."""

    base: str | None  # the base commit (None: products were named)
    refs: tuple[ProductRef, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RealMesh:
    """Where the real mesh keeps its instance and ports: resolved before the sandbox exists."""

    home: Path | None
    ports_uri: str

    @classmethod
    def resolve(cls, home: str | os.PathLike | None) -> "RealMesh":
        given = home or os.environ.get("DAGSTER_HOME")
        home = Path(given).resolve() if given else None
        data_dir = os.environ.get("MESH_DATA_DIR") or (str(home / "data") if home else None)
        if data_dir is None:
            raise PreviewError("mesh preview compares with the real mesh, but does not know where it is: set "
                               "DAGSTER_HOME (or pass --dagster-home) to the mesh's instance folder.")
        return cls(home, resolve_ports_uri(None, Path(data_dir).resolve()))

    def current_version(self, ref: ProductRef, major: int | None = None) -> int | None:
        """The real port's current version (read through a read-only port), None if never published."""
        try:
            return port_at(self.ports_uri, ref, major, read_only=True).latest().version
        except ProductNotPublishedError:
            return None

    def check_results(self, keys: Sequence[dg.AssetCheckKey]) -> dict[dg.AssetCheckKey, bool]:
        """Today's latest result of each check that has one, from the real instance, opened only to
        read it; an instance that does not exist yet is not created."""
        if self.home is None or not (self.home / "dagster.yaml").is_file() or not _has_storage(self.home):
            return {}
        found = {}
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            for key in keys:
                record = instance.get_latest_asset_check_evaluation_record(key)
                evaluation = record.evaluation if record is not None else None
                if evaluation is not None:
                    found[key] = bool(evaluation.passed)
        return found


def _has_storage(home: Path) -> bool:
    """Whether the instance in `home` has storage to read (opening an empty one would create it)."""
    return (home / "storage").is_dir() or "postgres" in (home / "dagster.yaml").read_text(errors="replace")


def preview(workspace_path: str | os.PathLike, *, base: str | None = None, products: Sequence[str] = (),
            domains: Sequence[str] = (), real_home: str | os.PathLike | None = None,
            keep_sandbox: str | os.PathLike | None = None, log_level: str = "CRITICAL",
            registry: "RegistryState | None" = None, say: Callable[[str], None] = lambda message: None) -> Preview:
    """Preview the change in the working tree against `base` (default: the merge base of HEAD and
    main), or the named `products`, in a sandbox; with `registry`, the domains it holds that the
    workspace does not list are consumers whose registered expectations run; see the module docstring."""
    workspace_path = Path(workspace_path).resolve()
    real = RealMesh.resolve(real_home)
    _remove_abandoned_sandboxes()
    with ExitStack() as stack:
        substitution = None
        if registry is not None:  # readers from the registry while the domains load and run
            from mesh_core.governance.consumers import substituted
            from mesh_core.governance.workspace import read_entries

            local = [entry.name for entry in read_entries(workspace_path)]
            substitution = stack.enter_context(substituted(registry.domains, local))
        return _preview(workspace_path, real, base=base, products=products, domains=domains, keep_sandbox=keep_sandbox,
                        log_level=log_level, registry=registry, substitution=substitution, say=say)


def _preview(workspace_path: Path, real: RealMesh, *, base, products, domains, keep_sandbox, log_level,
             registry: "RegistryState | None", substitution: "Substitution | None", say) -> Preview:
    loaded: list[MeshWorkspace] = []

    def load() -> MeshWorkspace:
        loaded.append(MeshWorkspace.load(workspace_path, registry=registry))
        return loaded[0]

    changes = _named(load(), products) if products else changed_products(workspace_path, load, base)
    workspace = loaded[0]
    refs, notes = changes.refs, list(changes.notes)
    if substitution is not None:
        notes += _registry_notes(workspace, registry, substitution)
    if domains:
        wanted = {workspace.location(name).name for name in domains}
        outside = [str(ref) for ref in refs if ref.domain not in wanted] if products else []
        if outside:  # a product named and excluded at once: say so, never preview less than asked in silence
            raise PreviewError(f"{', '.join(outside)} {'is' if len(outside) == 1 else 'are'} not in the domain(s) "
                               f"given with -d ({', '.join(sorted(wanted))}): drop -d, or name products of those domains.")
        refs = tuple(ref for ref in refs if ref.domain in wanted)
    sandbox = downstream(workspace, refs)
    say(f"Changed: {', '.join(map(str, refs)) or 'nothing'}" + (f"; downstream: {len(sandbox) - len(refs)} product(s)" if refs else ""))
    if not sandbox:
        return Preview(changes.base, refs, (), tuple(notes))
    sandbox_domains = {ref.domain for ref in sandbox}
    violations = [v for v in workspace.violations() if v.domain in sandbox_domains]
    if violations:
        raise DefinitionError(violations)
    order = [loc for loc in workspace.domain_order() if loc.name in sandbox_domains]
    _refuse_fixed_storage(order)
    products_by_ref = workspace.products()
    check_keys = {ref: list(products_by_ref[ref][0].defs.resolve_assets_def(ref.asset_key).check_keys) for ref in sandbox}
    today = real.check_results([key for keys in check_keys.values() for key in keys])
    # Each product's real version now: what its diff compares with, even if `mesh materialize` publishes meanwhile.
    published = {ref: real.current_version(ref) for ref in sandbox}
    never = [str(ref) for ref in sandbox if published[ref] is None]
    if never:
        notes.append(f"Never published in the real mesh ({real.home or real.ports_uri}): {', '.join(never)}; every row "
                     "of theirs counts as added and every failing check as newly failing. If that is not new, point "
                     "DAGSTER_HOME (or --dagster-home, MESH_PORTS_URI) at the real mesh.")

    root_context = _kept(keep_sandbox) if keep_sandbox else tempfile.TemporaryDirectory(prefix=_SANDBOX_PREFIX)
    with root_context as root, sandbox_environment(Path(root), real.ports_uri):
        if not keep_sandbox:
            (Path(root) / _OWNER_FILE).write_text(str(os.getpid()))
        from mesh_core.instance.home import prepare_instance

        home = prepare_instance(Path(root) / "dagster_home")
        with dg.DagsterInstance.from_config(str(home)) as instance:
            _seed(instance, workspace, sandbox, real)
            results = _run(order, sandbox, instance, log_level, say)
            product_previews = tuple(
                _product_preview(ref, results[ref], workspace, check_keys[ref], today, real, published[ref], Path(root))
                for ref in sandbox)
    if keep_sandbox:
        notes.append(f"The sandbox is kept in {Path(keep_sandbox).resolve()} (DAGSTER_HOME={Path(keep_sandbox).resolve() / 'dagster_home'}).")
    return Preview(changes.base, refs, product_previews, tuple(notes))


# -- 1. what changed ------------------------------------------------------------------------------


def _named(workspace: MeshWorkspace, names: Sequence[str]) -> Changes:
    known = workspace.products(remote=False)
    remote = {loc.name: loc.module for loc in workspace.remote}
    refs = []
    for name in names:
        try:
            ref = ProductRef.parse(name)
        except Exception as exc:
            raise PreviewError(f"'{name}' is not a product: name products as domain.product ({exc}).") from None
        if ref.domain in remote:
            raise PreviewError(f"{ref} is a product of domain '{ref.domain}', known here from {remote[ref.domain]} only: "
                               "its code is not here to run. Preview it in the domain's own repository, or name a "
                               f"product of {', '.join(loc.name for loc in workspace.locations)}.")
        if ref not in known:
            raise PreviewError(f"No product {ref} in {workspace.path}{did_you_mean(str(ref), map(str, known))}.")
        refs.append(ref)
    return Changes(None, tuple(dict.fromkeys(refs)))


def changed_products(workspace_path: Path, workspace: MeshWorkspace | Callable[[], MeshWorkspace],
                     base: str | None) -> Changes:
    """The products whose definition differs between the working tree and `base` (or are new).
    `workspace` may be a function loading it: it then loads while both sides' fingerprints are computed."""
    top = Path(_git(workspace_path.parent, "rev-parse", "--show-toplevel",
                    error=f"{workspace_path.parent} is not in a git repository, so there is no base to compare "
                          "with. Name the products to preview instead (`mesh preview operations.flights`), or run "
                          "it in the mesh's git repository."))
    base = base or _git(top, "merge-base", "HEAD", DEFAULT_BRANCH,
                        error=f"Cannot find the merge base of HEAD and '{DEFAULT_BRANCH}' in {top}: pass the ref to "
                              "compare with, e.g. `--base origin/main` or `--base HEAD`.")
    commit = _git(top, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}",
                  error=f"'{base}' is not a commit of {top}: pass a branch, tag or commit to --base "
                        "(e.g. `--base main`, `--base HEAD~1`).")
    inside = workspace_path.relative_to(top)
    cwd = Path.cwd().resolve()
    relative_cwd = cwd.relative_to(top) if cwd.is_relative_to(top) else inside.parent
    _remove_abandoned_worktrees(top)
    with tempfile.TemporaryDirectory(prefix="mesh-preview-base-") as tmp:
        tree = Path(tmp) / "base"
        _git(top, "worktree", "add", "--detach", "--quiet", "--lock", "--reason", f"{_WORKTREE_REASON}{os.getpid()}",
             str(tree), commit, error=f"Could not check out {base} into a temporary worktree")
        try:  # both sides at once, each in its own process, while this one loads the working tree
            if not (tree / inside).is_file():
                raise PreviewError(f"{inside} is not in {base} ({commit[:12]}): it is new or not committed, so there is "
                                   "nothing to compare with. Commit it on the base branch, pass another --base, or name "
                                   "the products to preview.")
            base_cwd = tree / relative_cwd if (tree / relative_cwd).is_dir() else (tree / inside).parent
            sides = {f"at {base} ({commit[:12]})": _start_fingerprints(tree / inside, base_cwd),
                     "in the working tree": _start_fingerprints(workspace_path, cwd)}
            try:
                workspace = workspace() if callable(workspace) else workspace
            except BaseException:  # Ctrl-C, SIGTERM, a load error: the fingerprints are not waited for
                for process in sides.values():
                    process.kill()
                raise
            finally:
                outputs = {side: (*process.communicate(), process.returncode) for side, process in sides.items()}
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", "--force", str(tree)], cwd=top, capture_output=True)
            subprocess.run(["git", "worktree", "prune"], cwd=top, capture_output=True)
    before, after = (_fingerprints_of(side, *output) for side, output in outputs.items())
    products = workspace.products(remote=False)  # a remote domain's code is not here: it never counts as changed
    changed = [ref for ref in products
               if before["domains"].get(ref.domain, after["domains"].get(ref.domain)) != after["domains"].get(ref.domain)
               or before["products"].get(str(ref)) != after["products"].get(str(ref))]
    notes = [f"Code of domain '{domain}' outside its product functions changed (a helper, a constant, an import): "
             "every product of the domain counts as changed."
             for domain in sorted({ref.domain for ref in products})
             if domain in before["domains"] and before["domains"][domain] != after["domains"].get(domain)]
    gone = sorted(set(before["products"]) - set(after["products"]))
    if gone:
        notes.append(f"Removed since {base}: {', '.join(gone)} (not previewed).")
    return Changes(commit, tuple(changed), tuple(notes))


def _registry_notes(workspace: MeshWorkspace, registry: "RegistryState", substitution: "Substitution") -> list[str]:
    """What the registry changed: where readers' expectations came from, and each committed consumers
    file that is behind it. A domain whose code this process imported before the preview loaded it
    with its committed file's checks: refused, never previewed with the wrong expectations."""
    from mesh_core.governance.consumers import expectations_of, file_name

    notes = [f"Consumers' expectations are the registry's ({registry.uri}, write {registry.seq}) for every reader "
             "whose domain it holds and this workspace does not list; the committed consumers files for the others."]
    for location in workspace.locations:
        folder = meta_value(location.defs.metadata or {}, "mesh/snapshots")
        if not folder:
            continue
        if location.name not in substitution.documents:
            raise PreviewError(f"Domain '{location.name}' was imported in this process before the preview loaded it, so "
                               "its checks are its committed consumers file's, not the registry's: run the preview in a "
                               "fresh process (`mesh preview --registry URI`).")
        committed, used = substitution.committed[location.name], substitution.documents[location.name]
        if expectations_of(committed) != expectations_of(used):
            path = Path(str(folder)) / file_name(location.name)
            notes.append(f"{path} is behind the registry's readers ({', '.join(_behind(committed, used))}); the preview "
                         f"ran the registry's expectations. Run `mesh contracts update --registry {registry.uri}` and "
                         "commit the file.")
    return notes


def _behind(committed: dict, used: dict) -> list[str]:
    """The readers whose expectations differ between two reliance documents, as 'consumer on product'."""
    def of(document: dict) -> dict:
        return {(entry["consumer"], product, entry["input"]): entry.get("expectations") or []
                for product, entries in document.items() for entry in entries}
    before, after = of(committed), of(used)
    return [f"{consumer} on {product}" for consumer, product, _ in
            sorted(key for key in set(before) | set(after) if before.get(key, []) != after.get(key, []))]


def _remove_abandoned_sandboxes() -> None:
    """The sandbox folders of previews whose process is gone (SIGKILL): each names its process in a file."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_SANDBOX_PREFIX}*"):
        owner = folder / _OWNER_FILE
        with suppress(OSError, ValueError):
            if not process_alive(int(owner.read_text())):
                shutil.rmtree(folder, ignore_errors=True)


def _remove_abandoned_worktrees(top: Path) -> None:
    """The base worktrees of previews whose process is gone (killed: SIGKILL, a lost machine), with their
    temporary folders. Each preview locks its worktree naming its process, so a running one is left alone."""
    listed = subprocess.run(["git", "worktree", "list", "--porcelain"], cwd=top, capture_output=True, text=True).stdout
    for entry in listed.split("\n\n"):
        fields = dict(line.split(" ", 1) for line in entry.splitlines() if " " in line)
        reason = fields.get("locked", "")
        if not reason.startswith(_WORKTREE_REASON) or not reason[len(_WORKTREE_REASON):].isdigit():
            continue
        if process_alive(int(reason[len(_WORKTREE_REASON):])):
            continue  # its preview still runs
        tree = Path(fields["worktree"])
        subprocess.run(["git", "worktree", "remove", "--force", "--force", str(tree)], cwd=top, capture_output=True)
        if tree.parent.name.startswith("mesh-preview-base-"):
            shutil.rmtree(tree.parent, ignore_errors=True)
    subprocess.run(["git", "worktree", "prune"], cwd=top, capture_output=True)


def _git(cwd: Path, *args: str, error: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise PreviewError(f"{error} (git is not installed).") from None
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
        raise PreviewError(error + (f" (git: {detail})" if detail and not error.endswith(".") else ""))
    return done.stdout.strip()


def _start_fingerprints(workspace_path: Path, cwd: Path) -> subprocess.Popen:
    """The fingerprints of the mesh at `workspace_path`, computed in a process of its own (`-P`: its
    `domains.*` come from `cwd`, Mesh itself from this environment)."""
    return subprocess.Popen([sys.executable, "-P", "-m", "mesh_core.operate.fingerprints", str(workspace_path)],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONSAFEPATH": "1"})


def _fingerprints_of(side: str, stdout: str, stderr: str, returncode: int) -> dict:
    if returncode != 0:
        detail = stderr.strip() or f"exit code {returncode}"
        raise PreviewError(f"The mesh {side} does not load, so mesh preview cannot tell what changed:\n{detail}\n"
                           "Fix it, or name the products to preview.")
    return json.loads(stdout.strip().splitlines()[-1])


# -- 2. the sandbox set ----------------------------------------------------------------------------


def downstream(workspace: MeshWorkspace, refs: Sequence[ProductRef]) -> tuple[ProductRef, ...]:
    """`refs` and every live product that reads one of them, directly or not, in domain order."""
    readers: dict[ProductRef, set[ProductRef]] = {}
    for location in workspace.locations:
        for consumer, upstream in location.inputs():
            readers.setdefault(upstream, set()).add(consumer)
    found, todo = set(), list(refs)
    while todo:
        ref = todo.pop()
        if ref not in found:
            found.add(ref)
            todo.extend(readers.get(ref, ()))
    ordered: list[ProductRef] = []
    for location in workspace.domain_order():  # in a domain: by name, each after what it reads there
        pending = {ref: {ProductRef.from_asset_key(d.asset_key) for d in spec.deps} & found
                   for ref, spec in sorted(location.products.items(), key=lambda item: str(item[0]))
                   if ref in found and Lifecycle.from_metadata(spec.metadata).status is not Status.RETIRED}
        while pending:
            ref = next((r for r, deps in pending.items() if not deps & set(pending)), next(iter(pending)))
            ordered.append(ref)
            del pending[ref]
    return tuple(ordered)


def _refuse_fixed_storage(order: Sequence[Location]) -> None:
    """A domain whose IO manager names its own storage location would publish there, sandbox or not."""
    from mesh_core.run.io_manager import IO_MANAGER_KEY, MeshIOManager

    fixed = []
    for location in order:
        manager = (location.defs.resources or {}).get(IO_MANAGER_KEY)
        if not isinstance(manager, MeshIOManager) or manager.data_dir or manager.ports_uri:
            fixed.append(location.name)
    if fixed:
        raise PreviewError(f"Domain(s) {', '.join(fixed)} publish through an IO manager with its own data_dir or "
                           "ports_uri (or not Mesh's), which a sandbox cannot redirect: mesh preview would write "
                           "the real ports. Configure storage with MESH_DATA_DIR / MESH_PORTS_URI instead.")


# -- 3. the sandbox ----------------------------------------------------------------------------------


@contextmanager
def sandbox_environment(root: Path, read_through: str) -> Iterator[None]:
    """The environment of a sandbox in `root`, for the block only: its own instance, data folder and
    port root, the real ports read through read-only, the embedded instance, no OpenLineage."""
    saved = {name: value for name, value in os.environ.items() if _sandboxed(name)}
    try:
        for name in saved:
            del os.environ[name]
        os.environ.update({
            "DAGSTER_HOME": str(root / "dagster_home"), "MESH_DATA_DIR": str(root / "data"),
            "MESH_PORTS_URI": str(root / "ports"), READ_THROUGH_ENV: read_through, "MESH_INSTANCE": "sqlite",
            "OPENLINEAGE_DISABLED": "true",
        })
        yield
    finally:
        for name in [name for name in os.environ if _sandboxed(name)]:
            del os.environ[name]
        os.environ.update(saved)


def _sandboxed(name: str) -> bool:
    return name in _SANDBOX_VARIABLES or name.startswith(_LINEAGE_PREFIX)


@contextmanager
def _kept(folder: str | os.PathLike) -> Iterator[str]:
    path = Path(folder).resolve()
    if path.exists() and any(path.iterdir()):
        raise PreviewError(f"--keep-sandbox {path} is not empty: name a new or empty folder.")
    path.mkdir(parents=True, exist_ok=True)
    yield str(path)


def _seed(instance: dg.DagsterInstance, workspace: MeshWorkspace, sandbox: Sequence[ProductRef], real: RealMesh) -> None:
    """Record, in the sandbox instance, the real current version of every input read from outside the
    set, so each sandbox run pins it (run/provenance.py) and reads it through."""
    from mesh_core.run.provenance import MAJOR_VERSIONS, PORT_VERSION

    products = workspace.products()
    inside = set(sandbox)
    outside = sorted({up for ref in sandbox for up in (d.asset_key for d in products[ref][1].deps)}
                     - {ref.asset_key for ref in inside}, key=lambda key: key.to_user_string())
    for key in outside:
        ref = ProductRef.from_asset_key(key)
        port = port_at(real.ports_uri, ref, read_only=True)
        try:
            latest = port.latest()
        except ProductNotPublishedError:
            continue  # never published: the consumer's run says so, naming the domain to run first
        older = {}
        declared = meta_value(products[ref][1].metadata, "mesh/previous_majors") if ref in products else None
        for item in declared or []:
            version = real.current_version(ref, int(item["major"]))
            if version is not None:
                older[str(item["major"])] = version
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=key,
            description=f"mesh preview: the real port's current version {latest.version}, read through (read-only).",
            metadata={PORT_VERSION: latest.version, "dagster/row_count": latest.rows,
                      "mesh/version": latest.product_version,
                      **({MAJOR_VERSIONS: dg.MetadataValue.json(older)} if older else {})},
        ))


def _run(order: Sequence[Location], sandbox: Sequence[ProductRef], instance: dg.DagsterInstance, log_level: str,
         say: Callable[[str], None]) -> dict:
    """Each domain's products of the set, in one sandbox run per domain; the product results by ref."""
    from mesh_core.run.materialize import ProductResult, materialize_domain

    inside = set(sandbox)
    deps = {ref: {ProductRef.from_asset_key(d.asset_key) for d in spec.deps} & inside
            for location in order for ref, spec in location.products.items() if ref in inside}
    results: dict[ProductRef, ProductResult] = {}
    for location in order:
        selected, skipped = [], []
        for ref in (r for r in sandbox if r.domain == location.name):
            missing = sorted(str(up) for up in deps[ref] if up.domain != location.name and not results[up].ok)
            (skipped if missing else selected).append((ref, missing))
        for ref, missing in skipped:
            results[ref] = ProductResult(ref, "skipped", None, (), f"not run: {', '.join(missing)} was not published in "
                                                                  "the sandbox (it would read the real, unchanged data)")
        if selected:
            say(f"Sandbox run of {location.name}: {', '.join(str(ref) for ref, _ in selected)}")
            domain = materialize_domain(location, instance, log_level=log_level, products=[ref for ref, _ in selected],
                                        notify=False)
            if any(_INTERRUPTED in product.message for product in domain.products):
                raise KeyboardInterrupt  # Ctrl-C / SIGTERM during the run: stop, never report it as the change failing
            results.update({product.ref: product for product in domain.products})
    return results


# -- 4 and 5. checks and diffs ---------------------------------------------------------------------------


def _product_preview(ref: ProductRef, result, workspace: MeshWorkspace, check_keys, today, real: RealMesh,
                     before_version: int | None, root: Path) -> ProductPreview:
    products = workspace.products()
    location, spec = products[ref]
    attributed = _consumer_checks(location, ref)
    after = {check.name: check for check in result.checks}
    specs = {check.name: check for check in location.defs.resolve_assets_def(ref.asset_key).check_specs}
    checks = []
    for key in check_keys:
        ran = after.get(key.name)
        check_spec = specs.get(key.name)
        severity = ran.severity if ran else ("ERROR" if check_spec is not None and check_spec.blocking else "WARN")
        # A consumer's expectation concerns the consumer's owners; the product's own check, its owners.
        consumer, owners = attributed.get(key.name, (None, spec.owners))
        if consumer in products:  # its owners as its code says now (the consumers file may lag)
            owners = products[consumer][1].owners
        checks.append(CheckChange(key.name, severity, today.get(key), ran.passed if ran else None,
                                  str(consumer) if consumer else None, tuple(owners)))
    remote = {loc.name for loc in workspace.remote}  # no code here: not previewed, their expectations ran above
    readers = {consumer: loc.owners_of(consumer) for loc in workspace.all_locations
               for consumer, upstream in loc.inputs() if upstream == ref}
    consumers = tuple(Consumer(reader, tuple(readers[reader]), reader.domain in remote) for reader in sorted(readers, key=str))
    return ProductPreview(ref, tuple(spec.owners), result.status, _diff(ref, result, real, before_version, root, contract_key(spec.metadata)),
                          tuple(checks), consumers, _message(result))


def _consumer_checks(location: Location, ref: ProductRef) -> dict:
    from mesh_core.governance.consumers import expectation_consumers, read_reliance

    folder = meta_value(location.defs.metadata or {}, "mesh/snapshots")
    if not folder:
        return {}
    return expectation_consumers(ref.product, read_reliance(Path(folder), location.name))


def _message(result) -> str:
    if result.status == "blocked":
        failing = [c.name for c in result.checks if not c.passed and c.severity == "ERROR"]
        return f"not published: error-severity check(s) failed ({', '.join(failing)})"
    first = next((line.strip() for line in result.message.splitlines() if line.strip()), "")
    return first


def _diff(ref: ProductRef, result, real: RealMesh, before_version: int | None, root: Path, key: Sequence[str] | None):
    """The data diff of the sandbox output against the real version current when the preview started
    (None: nothing to compare)."""
    from mesh_core.operate.diff import PortSide, diff_versions

    before = PortSide(port_at(real.ports_uri, ref).uri, before_version) if before_version is not None else None
    if result.status == "published":
        sandbox_port = port_at(str(root / "ports"), ref)
        return diff_versions(before, PortSide(sandbox_port.uri, sandbox_port.latest().version), key=key)
    if result.status == "blocked":
        kept = _quarantined(ref, root / "data", root)
        if kept is not None:
            return diff_versions(before, PortSide(kept, port_at(str(root / "quarantined"), ref).latest().version), key=key)
    return None


def _quarantined(ref: ProductRef, data_dir: Path, root: Path) -> str | None:
    """The output Mesh quarantined in the sandbox's DuckDB store, as a port under the sandbox (`quarantined/`)
    to diff; None if it was not kept."""
    import duckdb

    from mesh_core.declare.names import quote_identifier
    from mesh_core.storage.domain_storage import QUARANTINE_SCHEMA

    database = data_dir / ref.domain / "warehouse.duckdb"
    if not database.exists():
        return None
    try:
        with duckdb.connect(str(database), read_only=True) as con:
            table = con.sql(f"SELECT * EXCLUDE (_mesh_run_id) FROM {quote_identifier(QUARANTINE_SCHEMA)}."
                            f"{quote_identifier(ref.product)}").to_arrow_table()
    except duckdb.Error:
        return None
    port = port_at(str(root / "quarantined"), ref)
    port.publish(table, run_id="mesh-preview-quarantine", product_version="quarantined", contract_fingerprint="",
                 access="public")
    return port.uri
