"""The mesh as a whole: every domain code location listed in workspace.yaml.

Domains never import each other; only here, where the whole workspace is
loaded, can a cross-domain input be checked against the product it names.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, NamedTuple

import dagster as dg
import yaml

from mesh_core.declare.inputs import Input
from mesh_core.declare.lifecycle import Lifecycle
from mesh_core.declare.majors import major_of
from mesh_core.declare.metadata import meta_value
from mesh_core.declare.readable import read_findings
from mesh_core.declare.ref import ProductRef
from mesh_core.errors import DefinitionError, Violation, WorkspaceError
from mesh_core.governance.registry import RegistryLocation, entry_from_interpreter

if TYPE_CHECKING:
    from mesh_core.storage.registry import RegistryState


@dataclass(frozen=True)
class Location:
    """One domain's code location, loaded from the module workspace.yaml names."""

    name: str
    module: str
    defs: dg.Definitions

    @cached_property  # resolving specs builds the asset graph; do it once per location
    def products(self) -> dict[ProductRef, dg.AssetSpec]:
        """The products this location materializes (not the stubs of other domains' products)."""
        return {
            ProductRef.from_asset_key(spec.key): spec
            for spec in self.defs.resolve_all_asset_specs()
            if "mesh/version" in spec.metadata
        }

    def reads(self) -> list[tuple[ProductRef, str, Input]]:
        """(consumer, parameter, Input) of this location's products: pins, columns and expectations."""
        return list(self._reads)

    @cached_property  # lint and the contract gate ask several times
    def _reads(self) -> tuple[tuple[ProductRef, str, Input], ...]:
        found = []
        for ref, spec in self.products.items():
            declared = meta_value(spec.metadata, "mesh/inputs") or {}
            found += [(ref, param, Input.from_dict(value)) for param, value in declared.items()]
        return tuple(found)

    def inputs(self) -> list[tuple[ProductRef, ProductRef]]:
        """(consumer, input) pairs of this location's products."""
        return [
            (ref, ProductRef.from_asset_key(dep.asset_key))
            for ref, spec in self.products.items()
            for dep in spec.deps
        ]

    def owners_of(self, consumer: ProductRef) -> tuple[str, ...]:
        """The owners of one of its products (a reader the breaking-change gate names)."""
        return tuple(self.products[consumer].owners)


@dataclass(frozen=True)
class LoadFailure:
    """A code location that did not load: broken rules (violations) or broken code (no violations)."""

    name: str
    module: str
    message: str
    violations: tuple[Violation, ...] = ()

    def __str__(self) -> str:
        return f"code location '{self.name}' ({self.module}):" + ("\n" if self.violations else " ") + self.message


@dataclass(frozen=True)
class MeshWorkspace:
    """The code locations workspace.yaml lists, and the domains known only by their registry entry.

    `locations`: imported here. `remote`: an entry with an `executable_path` other than this
    interpreter (its own virtualenv, asked for its entry), then every registry domain that the
    workspace does not list (the workspace's code wins over the registry). Remote domains are
    producers and readers for the mesh-wide rules; their own products are checked in their repository.
    """

    path: Path
    locations: tuple[Location, ...]
    remote: tuple[RegistryLocation, ...] = ()

    @classmethod
    def load(cls, path: str | Path = "workspace.yaml", *, registry: RegistryState | None = None) -> "MeshWorkspace":
        """Import every code location in workspace.yaml; report every one that fails at once."""
        workspace, failures = cls.load_partial(path, registry=registry)
        if failures:
            raise WorkspaceError(f"{len(failures)} code location(s) failed to load:\n" + "\n".join(map(str, failures)))
        return workspace

    @classmethod
    def load_partial(cls, path: str | Path = "workspace.yaml", *, registry: RegistryState | None = None
                     ) -> tuple["MeshWorkspace", list["LoadFailure"]]:
        """The locations that load, and what stopped each of the others (for `mesh lint`)."""
        path = Path(path).resolve()
        locations, remote, failures = [], [], []
        entries = read_entries(path)
        for entry in entries:
            if entry.executable_path is not None and os.path.abspath(entry.executable_path) != os.path.abspath(sys.executable):
                loaded = _remote_location(entry)
                (remote if isinstance(loaded, RegistryLocation) else failures).append(loaded)
                continue
            if entry.working_directory not in sys.path:
                sys.path.insert(0, entry.working_directory)
            loaded = load_location(entry.name, entry.module, path)
            (locations if isinstance(loaded, Location) else failures).append(loaded)
        if registry is not None:
            listed, source = {entry.name for entry in entries}, f"registry:{registry.uri}"
            for domain in sorted(set(registry.domains) - listed):
                try:
                    found = RegistryLocation.from_entry(registry.domains[domain], source)
                    if found.name != domain:
                        raise WorkspaceError(f"The registry at {registry.uri} holds the entry of domain '{found.name}' "
                                             f"under '{domain}'. Fix: republish both domains from their repositories.")
                    remote.append(found)
                except WorkspaceError as exc:
                    failures.append(LoadFailure(domain, source, str(exc)))
        return cls(path, tuple(locations), tuple(remote)), failures

    @property
    def all_locations(self) -> tuple["Location | RegistryLocation", ...]:
        """Local code locations, then remote domains."""
        return self.locations + self.remote

    def location(self, name: str) -> Location:
        """A code location loaded here (a remote domain has no code here to run)."""
        for location in self.locations:
            if location.name == name:
                return location
        for location in self.remote:
            if location.name == name:
                raise WorkspaceError(f"Domain '{name}' is not loaded from {self.path}: it is known from {location.module} "
                                     "only. Run this in the domain's own repository, or list its code location in "
                                     f"{self.path.name}.")
        raise WorkspaceError(f"No domain '{name}' in {self.path}{did_you_mean(name, [l.name for l in self.locations])}; "
                             f"domains: {', '.join(l.name for l in self.locations)}.{unlisted_hint(self.path, name)}")

    def products(self, *, remote: bool = True) -> dict[ProductRef, tuple["Location | RegistryLocation", dg.AssetSpec]]:
        """Every product of the mesh: local code locations' and (unless `remote=False`) remote domains'."""
        located = self.all_locations if remote else self.locations
        return {ref: (loc, spec) for loc in located for ref, spec in loc.products.items()}

    def violations(self, *, unavailable: Iterable[str] = (), today: date | None = None) -> list[Violation]:
        """Mesh-wide rules that no single domain can check alone. Inputs from `unavailable`
        domains (listed, but failed to load) are not reported as missing."""
        return self.cross_domain_findings(unavailable=unavailable, today=today)[0]

    def warnings(self, *, today: date | None = None) -> list[Violation]:
        """Cross-domain reads that still work but will not for long (deprecated products)."""
        return self.cross_domain_findings(today=today)[1]

    def cross_domain_findings(self, *, unavailable: Iterable[str] = (), today: date | None = None
                              ) -> tuple[list[Violation], list[Violation]]:
        """(errors, warnings) of the mesh-wide rules, computed in one pass."""
        unavailable, today = set(unavailable), today or date.today()
        warnings: list[Violation] = []
        products = self.products()
        found = []
        for location in self.locations:
            for ref, spec in location.products.items():
                successor = Lifecycle.from_metadata(spec.metadata).successor
                if successor is not None and (successor == ref or successor not in products):
                    found.append(Violation(ref.domain, ref.product, "successor-exists",
                                           f"names {successor} as its successor, which "
                                           + ("is itself." if successor == ref else "no domain in the workspace publishes."),
                                           "name the product that replaces it, as domain.product."))
                if ref.domain != location.name:
                    found.append(Violation(location.name, ref.product, "location-is-domain",
                                           f"is declared in domain '{ref.domain}' but served by code location '{location.name}'.",
                                           "name the code location in workspace.yaml after the domain."))
            for consumer, upstream in location.inputs():
                if upstream not in products and upstream.domain in unavailable:
                    continue
                if upstream not in products:
                    hint = did_you_mean(str(upstream), [str(ref) for ref in products])
                    listed = upstream.domain in {loc.name for loc in self.all_locations}
                    found.append(Violation(consumer.domain, consumer.product, "inputs-exist",
                                           f"reads {upstream}, which no domain in the workspace publishes{hint}.",
                                           (f"fix the reference: domain '{upstream.domain}' has no product "
                                            f"'{upstream.product}'." if listed else
                                            "fix the reference or add the domain that owns it to workspace.yaml."
                                            + unlisted_hint(self.path, upstream.domain))))
                    continue
                metadata = products[upstream][1].metadata
                errors, warned = read_findings(consumer, upstream, metadata["mesh/access"],
                                               Lifecycle.from_metadata(metadata), today)
                found += errors
                warnings += warned
            for consumer, param, spec in location.reads():
                # Another domain's internal product may not be read at all (read-public-only says so);
                # its columns are not published to other domains, so there is no reliance to judge.
                if spec.ref in products and (spec.ref.domain == consumer.domain
                                             or products[spec.ref][1].metadata["mesh/access"] == "public"):
                    errors, warned = _reliance_findings(consumer, param, spec, products[spec.ref][1].metadata, today)
                    found += errors
                    warnings += warned
            for ref, spec in location.products.items():  # a producer's older majors past their window
                for item in meta_value(spec.metadata, "mesh/previous_majors") or []:
                    if date.fromisoformat(item["until"]) <= today:
                        warnings.append(Violation(ref.domain, ref.product, "previous-major-ended",
                                                  f"still declares major {item['major']}, whose window ended on {item['until']}; "
                                                  "it is no longer published.",
                                                  f"remove PreviousMajor('{item['version']}', ...) and its snapshot."))
        return found, warnings

    def domain_order(self, *, remote: bool = False) -> list["Location | RegistryLocation"]:
        """The local domains (with `remote`, the remote ones too) in dependency order: every domain
        after the domains it reads from, through remote domains too (a cycle through one is a cycle)."""
        graph = {loc.name: {up.domain for _, up in loc.inputs() if up.domain != loc.name} for loc in self.all_locations}
        try:
            order = list(TopologicalSorter(graph).static_order())
        except CycleError as exc:
            cycle = exc.args[1][:-1]  # from the first-named domain, so the message is the same whichever is loaded first
            start = cycle.index(min(cycle))
            cycle = cycle[start:] + cycle[:start] + [cycle[start]]
            raise WorkspaceError(
                f"Domains read from each other in a cycle: {' -> '.join(cycle)}. "
                "Break the cycle: a consumer-aligned domain should read source-aligned ones, not the reverse."
            ) from None
        located = {loc.name: loc for loc in (self.all_locations if remote else self.locations)}
        return [located[name] for name in order if name in located]


def did_you_mean(name: str, known: Iterable[str]) -> str:
    known = list(known)
    started = sorted(k for k in known if k.startswith(str(name)))  # an abbreviation: 'penguins.obs'
    close = started or difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unlisted_hint(workspace: Path, domain: str) -> str:
    """A domain folder beside the workspace that workspace.yaml does not list (said only when it
    does not: a misspelled product of a listed domain is not a missing entry)."""
    folder = workspace.parent / "domains" / str(domain)
    if (folder / "definitions.py").exists() and not _lists(workspace, str(domain)):
        return (f" The folder {folder} exists but {workspace.name} does not list it: add `- python_module: "
                f"{{module_name: domains.{domain}.definitions, location_name: {domain}, working_directory: .}}`.")
    return ""


def _lists(workspace: Path, domain: str) -> bool:
    """Whether workspace.yaml has an entry for the domain, by location name or by its module."""
    try:
        entries = read_entries(workspace)
    except WorkspaceError:
        return False
    return any(entry.name == domain or entry.module == f"domains.{domain}.definitions" for entry in entries)


def published_columns(metadata, major: int | None) -> tuple[int | None, list[str] | None, dict | None]:
    """(major read, its columns, the older major's record) of a producer for a reader pinned to
    `major`; columns None when the producer does not publish that major."""
    current = major_of(meta_value(metadata, "mesh/version") or "")
    if major is None or major == current:
        schema = metadata["dagster/column_schema"]
        return current, [c.name for c in getattr(schema, "schema", schema).columns], None
    older = next((item for item in meta_value(metadata, "mesh/previous_majors") or [] if item["major"] == major), None)
    return major, ([c["name"] for c in older["columns"]] if older else None), older


def _reliance_findings(consumer: ProductRef, param: str, spec: Input, metadata, today: date
                       ) -> tuple[list[Violation], list[Violation]]:
    """A reader's pin and the columns it relies on, against what the producer publishes."""
    def violation(rule: str, message: str, fix: str) -> Violation:
        return Violation(consumer.domain, consumer.product, rule, message, fix)

    current = major_of(meta_value(metadata, "mesh/version") or "")
    major, columns, older = published_columns(metadata, spec.major)
    if columns is None:
        return [violation("reads-published-major",
                          f"input '{param}' pins {spec}, but {spec.ref} publishes major {current} only"
                          + "".join(f", and {item['major']} until {item['until']}" for item in meta_value(metadata, "mesh/previous_majors") or [])
                          + ".", f"check the product against major {current} and pin '{spec.ref}@{current}' (or drop the pin).")], []
    errors, warnings = [], []
    if older is not None:
        until = date.fromisoformat(older["until"])
        found = violation("reads-current-major",
                          f"input '{param}' reads {spec}, published beside major {current} "
                          + (f"until {until.isoformat()}." if today < until else f"only until {until.isoformat()}."),
                          f"check the product against major {current} of {spec.ref}, then pin '{spec.ref}@{current}' (or drop the pin).")
        (warnings if today < until else errors).append(found)
    missing = sorted(spec.named_columns() - set(columns))
    if missing:
        errors.append(violation("relies-on-published-columns",
                                f"input '{param}' relies on column(s) {', '.join(missing)} of {spec}, which "
                                f"{spec.ref} does not publish at major {major} (its columns: {', '.join(columns)}).",
                                f"rely only on published columns, or ask the '{spec.ref.domain}' owners to publish them."))
    return errors, warnings


class WorkspaceEntry(NamedTuple):
    """One python_module entry of workspace.yaml."""

    name: str
    module: str
    working_directory: str
    executable_path: str | None  # Dagster's key: the interpreter (another virtualenv) that loads it; None: this one


def read_entries(path: Path) -> list[WorkspaceEntry]:
    """Each load_from entry; every mistake in the file is reported at once, naming the file and
    how to write the entry."""
    example = ("write each entry as `- python_module: {module_name: domains.<name>.definitions, "
               "location_name: <name>, working_directory: .}`")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkspaceError(f"No workspace file at {path}; run from the repository root or pass --workspace.") from None
    except UnicodeDecodeError:
        raise WorkspaceError(f"{path} is not a text file; a workspace file is YAML listing code locations under load_from.") from None
    except OSError as exc:
        raise WorkspaceError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise WorkspaceError(f"{path} is not valid YAML{at}: {getattr(exc, 'problem', None) or exc}. "
                             "Fix the syntax (see the repository's workspace.yaml).") from None
    items = document.get("load_from") if isinstance(document, dict) else None
    if not isinstance(items, list) or not items:
        raise WorkspaceError(f"{path} lists no code locations: it needs a `load_from:` list; {example}.")
    entries, problems, seen = [], [], {}
    for number, item in enumerate(items, 1):
        target = item.get("python_module") if isinstance(item, dict) else None
        if not isinstance(target, dict) or not isinstance(target.get("module_name"), str):
            problems.append(f"entry {number} ({item!r}) is not a python_module with a module_name")
            continue
        module = target["module_name"]
        name = target.get("location_name", module)
        # Like Dagster: a python_module's working_directory is relative to where the command runs.
        working_dir = Path(str(target.get("working_directory", "."))).resolve()
        executable = _executable_path(target.get("executable_path"))
        if not isinstance(name, str) or not name:
            problems.append(f"entry {number} ({module}) has location_name {name!r}, not a name")
        elif name in seen:
            problems.append(f"entries {seen[name]} and {number} are both named '{name}': name each code location "
                            "after its own domain")
        elif not working_dir.is_dir():
            problems.append(f"entry {number} ('{name}') has working_directory {working_dir}, which is not a folder "
                            "(it is relative to where the command runs)")
        elif executable is not None and not (os.path.isfile(executable) and os.access(executable, os.X_OK)):
            problems.append(f"entry {number} ('{name}') has executable_path {executable}, which is not "
                            + ("an executable file" if os.path.isfile(executable) else "a file")
                            + " (name the python of the domain's own virtualenv, e.g. <its folder>/.venv/bin/python; "
                            "it is relative to where the command runs)")
        else:
            seen[name] = number
            entries.append(WorkspaceEntry(name, module, str(working_dir), executable))
    if problems:
        raise WorkspaceError(f"{path}: " + "; ".join(problems) + f". {example[0].upper()}{example[1:]}.")
    return entries


def _executable_path(value) -> str | None:
    """Like Dagster: `~` expanded, relative to where the command runs. Not resolved: a virtualenv's
    python is a symlink to the base interpreter, and resolving it would leave the virtualenv."""
    if value is None or value == "":
        return None
    return os.path.abspath(os.path.expanduser(str(value)))


def load_location(name: str, module: str, workspace: Path) -> "Location | LoadFailure":
    """Import one code location (its working directory already on sys.path), or say what stopped it."""
    try:
        return Location(name, module, _find_definitions(module))
    except DefinitionError as exc:
        return LoadFailure(name, module, str(exc), exc.violations)
    except WorkspaceError as exc:
        return LoadFailure(name, module, str(exc))
    except ModuleNotFoundError as exc:
        fix = (f"check module_name in {workspace.name}, or create {module.replace('.', '/')}.py"
               if exc.name and module.startswith(exc.name) else f"install {exc.name} or fix the import")
        return LoadFailure(name, module, f"ModuleNotFoundError: {exc}. Fix: {fix}.")
    except SyntaxError as exc:
        return LoadFailure(name, module, f"SyntaxError in {exc.filename}, line {exc.lineno}: {exc.msg}. "
                                         "Fix: correct the Python syntax there.")
    except Exception as exc:  # an import error in a domain's own code
        return LoadFailure(name, module, f"{type(exc).__name__}: {exc}. Fix: run `mesh lint -v` for the traceback.")


def _remote_location(entry: WorkspaceEntry) -> "RegistryLocation | LoadFailure":
    """A location of another interpreter, rebuilt from the entry that interpreter prints."""
    source = f"executable:{entry.executable_path}"
    try:
        document = entry_from_interpreter(entry.executable_path, entry.module, entry.name, entry.working_directory)
        if document.get("domain") != entry.name:
            raise WorkspaceError(f"{entry.executable_path} printed the entry of domain {document.get('domain')!r}, not "
                                 f"'{entry.name}'. Fix: name the code location after its domain.")
        return RegistryLocation.from_entry(document, source)
    except DefinitionError as exc:
        return LoadFailure(entry.name, entry.module, f"in {entry.executable_path}: {exc}", exc.violations)
    except WorkspaceError as exc:
        return LoadFailure(entry.name, entry.module, str(exc))


def _find_definitions(module_name: str) -> dg.Definitions:
    module = importlib.import_module(module_name)
    found = [value for value in vars(module).values() if isinstance(value, dg.Definitions)]
    if len(found) != 1:
        raise WorkspaceError(f"module {module_name} must define exactly one dagster Definitions (found {len(found)}).")
    return found[0]
