"""Contract snapshots and the breaking-change gate.

Each public product's contract is kept as an ODCS v3 YAML document in its domain's folder,
one per major version: `<domain folder>/snapshots/<domain>.<product>.v<major>.odcs.yaml`,
committed and reviewed like code. `mesh contracts check` (and `mesh lint`) compares the code
with the snapshot of the same major: a breaking change without a major bump is an error that
names every product of every domain that relies on what changed, with its owners. A reader that
declares its columns (`Input(..., columns=[...])`) relies on those only; one that does not relies
on every column. A column-level breaking change no reader relies on only leaves the snapshot behind.

Breaking: a column removed, its type changed, a required column made nullable, a column or
table check removed or changed (a changed check counts as removed: Mesh does not judge whether
it was loosened), the product removed or made internal. Not breaking: a column added, a
nullable column made required, a check added, documentation changed. After a major bump the
old major can stay published beside the new one (`PreviousMajor`): its snapshot stays, is
checked against the old contract, and lint lists who still pins it.

The same gate runs where data is published: a run refuses to publish a contract that breaks
the snapshot of a major it publishes (`publish_refusal`), whatever launched it. The only way to
absorb a break that readers rely on without a major bump is `mesh contracts update
--accept-breaking --by NAME --reason TEXT`, which records who accepted it.

A draft promises nothing yet (no other domain may read it): it gets its first snapshot when it is
made active. A draft that already has one (it was active before) is gated like any other product.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import dagster as dg
import yaml

from mesh_core.declare.lifecycle import Lifecycle, Status
from mesh_core.declare.majors import major_of
from mesh_core.declare.metadata import meta_value
from mesh_core.declare.ref import ProductRef
from mesh_core.errors import MeshError, Violation
from mesh_core.governance import consumers
from mesh_core.governance.odcs_contract import ODCS_VERSION, contract_document  # noqa: F401  # re-exported: callers name it here
from mesh_core.governance.workspace import Location, MeshWorkspace

_SNAPSHOT_NAME = re.compile(r"^(?P<ref>[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\.v(?P<major>[^.]+)\.odcs\.yaml$")


@dataclass(frozen=True)
class Change:
    what: str
    breaking: bool
    column: str | None = None  # the column it is about; None: the whole product


@dataclass(frozen=True)
class Reader:
    """A product that reads another: its owners, the major it pins, the columns it relies on."""

    consumer: ProductRef
    owners: tuple[str, ...]
    major: int | None
    relied: frozenset[str] | None  # None: it has not said, so it relies on every column

    def affected_by(self, change: Change) -> bool:
        return change.column is None or self.relied is None or change.column in self.relied


def major(version: str) -> str:
    """The major of a version as snapshots name it: '01.2.0' and '1.2.0' are both major '1'."""
    number = major_of(version)
    return str(number) if number is not None else version.split(".", 1)[0]


def snapshot_folder(location: Location) -> Path:
    """`snapshots/` beside the module that defines the domain's code location: as its Definitions
    record it (the folder its runs check against), else beside the module workspace.yaml names."""
    recorded = meta_value(location.defs.metadata or {}, "mesh/snapshots")
    if recorded:
        return Path(recorded)
    spec = importlib.util.find_spec(location.module)
    return (Path(spec.origin).parent if spec and spec.origin else Path.cwd()) / "snapshots"


def snapshot_path(location: Location, ref: ProductRef, version: str) -> Path:
    return snapshot_folder(location) / snapshot_name(ref, version)


def snapshot_name(ref: ProductRef, version: str) -> str:
    return f"{ref}.v{major(version)}.odcs.yaml"


def promises_nothing_yet(location: Location, ref: ProductRef, spec: dg.AssetSpec) -> bool:
    """No snapshot of its current major, and none needed: internal from the start, or a draft never
    snapshotted (deleting one, e.g. a scaffold's placeholder, leaves nothing behind). Made internal,
    or back to draft, after a snapshot, a product stays gated."""
    if snapshot_path(location, ref, spec.metadata["mesh/version"]).exists():
        return False
    if spec.metadata["mesh/access"] != "public":
        return True
    return (Lifecycle.from_metadata(spec.metadata).status is Status.DRAFT
            and not any(snapshot_folder(location).glob(f"{ref}.v*.odcs.yaml")))


def compare(old: dict, new: dict | None) -> list[Change]:
    """Every difference between a snapshot and the code, each marked breaking or not."""
    if new is None:
        return [Change("the product was removed", True)]
    changes = []
    access = lambda doc: next((p["value"] for p in doc.get("customProperties", []) if p["property"] == "access"), "public")  # noqa: E731
    if access(old) == "public" and access(new) != "public":
        changes.append(Change(f"the product was made {access(new)}", True))
    old_table, new_table = ({q["implementation"] for q in doc["schema"][0].get("quality", [])} for doc in (old, new))
    changes += [Change(f"the table lost check {check}", True) for check in sorted(old_table - new_table)]
    changes += [Change(f"the table gained check {check}", False) for check in sorted(new_table - old_table)]
    before, after = ({c["name"]: c for c in doc["schema"][0]["properties"]} for doc in (old, new))
    for name, was in before.items():
        now = after.get(name)
        if now is None:
            changes.append(Change(f"column '{name}' was removed", True, name))
            continue
        if was["physicalType"] != now["physicalType"]:
            changes.append(Change(f"column '{name}' changed type {was['physicalType']} -> {now['physicalType']}", True, name))
        if was.get("unique") and not now.get("unique"):
            changes.append(Change(f"column '{name}' may now repeat (no longer unique)", True, name))
        elif now.get("unique") and not was.get("unique"):
            changes.append(Change(f"column '{name}' is now unique", False, name))
        if was["required"] and not now["required"]:
            changes.append(Change(f"column '{name}' may now be null", True, name))
        elif now["required"] and not was["required"]:
            changes.append(Change(f"column '{name}' may no longer be null", False, name))
        old_checks = {q["implementation"] for q in was.get("quality", [])}
        new_checks = {q["implementation"] for q in now.get("quality", [])}
        changes += [Change(f"column '{name}' lost check {check}", True, name) for check in sorted(old_checks - new_checks)]
        changes += [Change(f"column '{name}' gained check {check}", False, name) for check in sorted(new_checks - old_checks)]
        if was.get("description") != now.get("description"):
            changes.append(Change(f"column '{name}' description changed", False, name))
    changes += [Change(f"column '{name}' was added", False, name) for name in after if name not in before]
    if old.get("description") != new.get("description"):
        changes.append(Change("the description changed", False))
    return changes


def check_contracts(workspace: MeshWorkspace, *, unavailable: Sequence[str] = ()) -> tuple[list[Violation], list[Violation]]:
    """(errors, warnings) of every public product's contracts, current and older majors, against
    their snapshots; and of every domain's consumers file against its consumers' code. Readers in
    `unavailable` domains (listed, but failed to load) cannot be known: the messages say so."""
    readers = _readers(workspace)
    unknown = tuple(sorted(unavailable))
    errors, warnings = [], []
    current = workspace.products()
    # A remote domain's snapshots are its own repository's to check; its readers count here.
    for ref, (location, spec) in workspace.products(remote=False).items():
        version = spec.metadata["mesh/version"]
        previous = meta_value(spec.metadata, "mesh/previous_majors") or []
        path = snapshot_path(location, ref, version)
        if promises_nothing_yet(location, ref, spec):
            continue  # internal from the start, or a draft never snapshotted (made so later: the gate below says so)
        went_back = _went_back(path.parent, ref, version)
        if went_back:
            errors.append(went_back)
        if not path.exists():
            errors.append(Violation(ref.domain, ref.product, "contract-snapshotted",
                                    f"has no contract snapshot for major version {major(version)} ({path}).",
                                    "run `mesh contracts update` and commit the file it writes."))
            continue
        of_current = _reading(readers.get(ref, []), version)
        found_errors, found_warnings = _gate(ref, path, contract_document(ref, spec), of_current, version, current=True, unknown=unknown)
        errors += found_errors
        warnings += found_warnings
        for item in previous:  # each older major still declared keeps its own promise
            old_path = snapshot_path(location, ref, item["version"])
            pinned = _reading(readers.get(ref, []), item["version"], pinned=True)
            if not old_path.exists():
                errors.append(Violation(ref.domain, ref.product, "contract-snapshotted",
                                        f"publishes major {item['major']} beside major {major(version)}, but has no snapshot "
                                        f"for it ({old_path}).", "restore the snapshot of that major from version control."))
                continue
            found_errors, found_warnings = _gate(ref, old_path, contract_document(ref, spec, item), pinned, item["version"],
                                                 current=False, unknown=unknown)
            errors += found_errors
            warnings += found_warnings
            warnings.append(Violation(ref.domain, ref.product, "old-major-readers",
                                      f"publishes major {item['major']} beside major {major(version)} until {item['until']}; "
                                      f"still pinned to it: {_impact(pinned, unknown)}.",
                                      f"ask them to move to major {major(version)}; remove the PreviousMajor once none is left."))
        declared = {str(item["major"]) for item in previous} | {major(version)}
        for old in sorted(path.parent.glob(f"{ref}.v*.odcs.yaml")):
            old_major = old.name[len(f"{ref}.v"):-len(".odcs.yaml")]
            if old_major in declared:
                continue
            pinned = [r for r in readers.get(ref, []) if str(r.major) == old_major]
            warnings.append(Violation(
                ref.domain, ref.product, "contract-major-migrated",
                f"is at major version {major(version)} and no longer publishes major {old_major}, but {old.name} "
                f"remains. Pinned to major {old_major}: {_impact(pinned, unknown)}.",
                "delete the old snapshot (publish it beside the new major with previous_majors=[PreviousMajor(...)] "
                "while readers migrate).",
            ))
    for location in workspace.locations:  # snapshots whose product is gone
        for path in sorted(snapshot_folder(location).glob(f"{location.name}.*.odcs.yaml")):
            named = _SNAPSHOT_NAME.fullmatch(path.name)
            if named is None:
                continue
            ref = ProductRef.parse(named["ref"])
            if ref not in current:
                errors.append(Violation(ref.domain, ref.product, "contract-compatible",
                                        f"was removed, but its contract {path.name} is still published. "
                                        f"Read by: {_impact(readers.get(ref, []), unknown)}.",
                                        "delete the snapshot once no domain reads the product."))
    if not unavailable:  # the consumers of a domain that did not load are unknown
        found_errors, found_warnings = _consumers_files_current(workspace)
        errors += found_errors
        warnings += found_warnings
    return errors, warnings


def _gate(ref: ProductRef, path: Path, document: dict, readers: list[Reader], version: str, *, current: bool = True,
          unknown: Sequence[str] = ()) -> tuple[list[Violation], list[Violation]]:
    """One major's snapshot against the code. Every breaking change is an error, as it stops every
    run; the fix says whether readers rely on it (bump the major, or accept it by name) or not
    (`mesh contracts update` writes it). Other changes only leave the snapshot behind."""
    try:
        changes = compare(load_snapshot(path), document)
    except MeshError as exc:
        return [Violation(ref.domain, ref.product, "contract-snapshotted", str(exc), _RESTORE.format(path=path))], []
    breaking = [c for c in changes if c.breaking]
    if breaking:
        breaks, affected = _relied_on(breaking, readers, unknown)
        return [Violation(ref.domain, ref.product, "contract-compatible",
                          _break_message(ref, path, version, breaking, affected, current, unknown),
                          _break_fix(ref, path, version, breaks, current))], []
    if changes:
        return [], [Violation(ref.domain, ref.product, "contract-snapshot-current",
                              f"the snapshot {path.name} is behind the code: {'; '.join(c.what for c in changes)}.",
                              "run `mesh contracts update` and commit the file.")]
    return [], []


_RESTORE = "restore {path} from version control (git checkout -- {path}); `mesh contracts update` cannot judge a change against it."


def load_snapshot(path: Path) -> dict:
    """A committed snapshot, or a MeshError naming the file."""
    try:
        document = yaml.safe_load(path.read_text())
        document["schema"][0]["properties"]  # noqa: B018  # what compare() reads
    except (OSError, yaml.YAMLError, KeyError, TypeError, IndexError) as exc:
        raise MeshError(f"the contract snapshot {path} cannot be read ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:200]}).") from None
    return document


def _break_message(ref: ProductRef, path: Path, version: str, breaking: list[Change], affected: list[Reader],
                   current: bool, unknown: Sequence[str] = ()) -> str:
    what = "; ".join(c.what for c in breaking)
    if current:
        return (f"breaking change(s) to major {major(version)} without a major version bump: {what}. "
                f"Read by: {_impact(affected, unknown)}.")
    return (f"the contract it publishes as major {major(version)} (PreviousMajor('{version}')) breaks {path.name}: "
            f"{what}. Pinned to it: {_impact(affected, unknown)}.")


def _break_fix(ref: ProductRef, path: Path, version: str, breaks: list[Change], current: bool) -> str:
    """`breaks`: the breaking changes some reader relies on (or the whole product's)."""
    if not breaks:
        return ("no reader relies on it, so `mesh contracts update` writes it into the snapshot: run it and "
                "commit the file (or undo the change).")
    if not current:
        return f"give PreviousMajor('{version}', ...) a contract and adapt() that keep {path.name}."
    accept = f"or, if they agreed, `mesh contracts update --accept-breaking {ref} --by NAME --reason TEXT`"
    if any(c.what.startswith("the product was made") for c in breaks):
        return (f"bump the major version (version='{_next_major(version)}') with no PreviousMajor (readers in other "
                f"domains lose it either way) and run `mesh contracts update`, {accept}.")
    return (f"bump the major version (version='{_next_major(version)}') and run `mesh contracts update` (readers "
            f"that need the old contract pin '{ref}@{major(version)}' while PreviousMajor keeps it published), "
            f"{accept}, or undo the change.")


def _reading(readers: list[Reader], version: str, *, pinned: bool = False) -> list[Reader]:
    """The readers of the major of `version`: those pinned to it, and (for the current major) those
    that pin none."""
    return [r for r in readers if (r.major is None and not pinned) or (r.major is not None and str(r.major) == major(version))]


def _relied_on(breaking: list[Change], readers: list[Reader], unknown: Sequence[str] = ()) -> tuple[list[Change], list[Reader]]:
    """The breaking changes that count (a whole-product change, or one a reader relies on) and
    the readers they touch. With a domain that did not load, its readers are unknown: every
    breaking change counts."""
    affected = sorted({r for c in breaking for r in readers if r.affected_by(c)}, key=lambda r: r.consumer)
    return [c for c in breaking if c.column is None or unknown or any(r.affected_by(c) for r in readers)], affected


def _consumers_files_current(workspace: MeshWorkspace) -> tuple[list[Violation], list[Violation]]:
    """(errors, warnings): stale expectations are an error (audits would run the wrong ones); a stale
    list of readers is a warning, since it only changes whom a refused publish names, never
    whether it is refused."""
    reads, owners = _reads(workspace)
    errors, warnings = [], []
    for location in workspace.locations:
        path = snapshot_folder(location) / consumers.file_name(location.name)
        wanted = consumers.reliance_document(reads, location.name, owners)
        try:
            committed = yaml.safe_load(path.read_text()) or {} if path.exists() else {}
        except (OSError, yaml.YAMLError):
            committed = None
        if committed == wanted:
            continue
        if not isinstance(committed, dict) or consumers.expectations_of(committed) != consumers.expectations_of(wanted):
            errors.append(Violation(location.name, None, "consumer-expectations-current",
                                    f"{path.name} is behind what consumers of the '{location.name}' domain rely on, so "
                                    "its audits would run stale expectations.",
                                    "run `mesh contracts update` and commit the file."))
        else:
            warnings.append(Violation(location.name, None, "consumer-expectations-current",
                                      f"{path.name} is behind who reads the '{location.name}' domain's products, so a "
                                      "publish it refuses would not name every reader.",
                                      "run `mesh contracts update` and commit the file."))
    return errors, warnings


@dataclass(frozen=True)
class Acceptance:
    """Who accepts the breaking changes of which products without a major bump, and why: recorded
    beside the snapshots."""

    products: frozenset[ProductRef]
    by: str
    reason: str

    def __post_init__(self):
        if not self.products:
            raise MeshError("Name the product whose breaking change is accepted: --accept-breaking DOMAIN.PRODUCT.")
        if not self.by.strip() or not self.reason.strip():
            raise MeshError("Accepting a breaking change needs who accepts it and why: "
                            "pass --by NAME and --reason TEXT.")


@dataclass(frozen=True)
class Updated:
    written: list[Path]
    removed: list[Path]  # snapshots of products made internal, with the change accepted
    refused: list[Violation]  # snapshots kept: the change breaks what readers rely on, or cannot be judged


def update_snapshots(workspace: MeshWorkspace, domains: Sequence[str] | None = None, *,
                     accept: Acceptance | None = None, now: datetime | None = None) -> Updated:
    """Write the current contract of every public product to its major's snapshot (and an older
    major's), and each domain's consumers file.

    A snapshot is its major's promise: a change that breaks what a reader relies on is not written
    into it (bump the major instead) unless `accept` names the product and says who accepted it;
    each accepted change is appended to `snapshots/<domain>.accepted.yaml`."""
    written, removed, refused = [], [], []
    reads, owners = _reads(workspace)
    readers = _readers(workspace)
    if accept is not None:
        unknown = sorted(str(ref) for ref in accept.products if ref not in workspace.products(remote=False))
        if unknown:
            raise MeshError(f"--accept-breaking names {', '.join(unknown)}, which this mesh does not declare "
                            "(a remote domain accepts its own breaking changes, in its repository).")

    def write(path: Path, text: str) -> None:
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)

    def relied_breaks(ref: ProductRef, path: Path, document: dict, of_major: list[Reader]
                      ) -> tuple[list[Change], list[Reader]] | None:
        """The breaks of `document` against `path` that readers rely on, and those readers; None
        (refused) if the snapshot cannot be read."""
        try:
            promised = load_snapshot(path)
        except MeshError as exc:
            refused.append(Violation(ref.domain, ref.product, "contract-snapshotted", str(exc), _RESTORE.format(path=path)))
            return None
        return _relied_on([c for c in compare(promised, document) if c.breaking], of_major)

    for location in workspace.locations:
        if domains and location.name not in domains:
            continue
        accepted = []
        for ref, spec in location.products.items():
            version = spec.metadata["mesh/version"]
            if promises_nothing_yet(location, ref, spec):
                continue
            path, document = snapshot_path(location, ref, version), contract_document(ref, spec)
            went_back = _went_back(path.parent, ref, version)
            if went_back:
                refused.append(went_back)
                continue
            if path.exists():
                judged = relied_breaks(ref, path, document, _reading(readers.get(ref, []), version))
                if judged is None:
                    continue
                breaks, affected = judged
                if breaks and (accept is None or ref not in accept.products):
                    refused.append(Violation(
                        ref.domain, ref.product, "contract-compatible",
                        f"not written: {path.name} is what readers of major {major(version)} rely on, and the code "
                        f"breaks it: {'; '.join(c.what for c in breaks)}. Read by: {_impact(affected)}.",
                        _break_fix(ref, path, version, breaks, True)))
                    continue
                if breaks:
                    accepted.append({"product": ref.product, "major": major(version), "changes": [c.what for c in breaks],
                                     "readers": sorted({str(r.consumer) for r in affected}),
                                     "by": accept.by, "reason": accept.reason,
                                     "at": (now or datetime.now(timezone.utc)).isoformat()})
            if spec.metadata["mesh/access"] != "public":  # made internal, and accepted: it promises nothing now
                path.unlink()
                removed.append(path)
                continue
            write(path, _render(document))
            for item in meta_value(spec.metadata, "mesh/previous_majors") or []:
                path = snapshot_path(location, ref, item["version"])
                document = contract_document(ref, spec, item)
                # An older major's snapshot is its promise: never rewritten for a break a pinned reader relies on.
                judged = relied_breaks(ref, path, document, _reading(readers.get(ref, []), item["version"], pinned=True)
                                       ) if path.exists() else ([], [])
                if judged is None:
                    continue
                breaks, affected = judged
                if breaks:
                    refused.append(Violation(ref.domain, ref.product, "contract-compatible",
                                             _break_message(ref, path, item["version"], breaks, affected, False),
                                             _break_fix(ref, path, item["version"], breaks, False)))
                else:
                    write(path, _render(document))
        if accepted:
            record = snapshot_folder(location) / accepted_file_name(location.name)
            history = (yaml.safe_load(record.read_text()) or []) if record.exists() else []
            write(record, ACCEPTED_HEADER + _render([*history, *accepted]))
        document = consumers.reliance_document(reads, location.name, owners)
        path = snapshot_folder(location) / consumers.file_name(location.name)
        if document or path.exists():
            write(path, consumers.render(document))
    return Updated(written, removed, refused)


ACCEPTED_HEADER = ("# Written by `mesh contracts update --accept-breaking`: breaking changes published without a\n"
                   "# major version bump, who accepted them and why. Keep it; do not edit.\n")


def accepted_file_name(domain: str) -> str:
    return f"{domain}.accepted.yaml"


def publish_refusal(ref: ProductRef, spec: dg.AssetSpec, folder: Path, reliance: dict) -> str | None:
    """Why a run may not publish `spec`: lint's judgement of a major it publishes (the current one,
    or an older one kept beside it) against its committed snapshot, or a major that went back;
    None when there is none. Readers come from the domain's consumers file, which lint keeps current."""
    readers = readers_from_reliance(ref, reliance)
    version = spec.metadata["mesh/version"]
    went_back = _went_back(folder, ref, version)
    if went_back:
        return f"{ref} was not published: {went_back.message} The port keeps its current version. Fix: {went_back.fix}"
    targets = [(version, contract_document(ref, spec), _reading(readers, version), True)]
    for item in meta_value(spec.metadata, "mesh/previous_majors") or []:
        targets.append((item["version"], contract_document(ref, spec, item), _reading(readers, item["version"], pinned=True), False))
    for published, document, of_major, current in targets:
        path = folder / snapshot_name(ref, published)
        if not path.exists():  # a major never snapshotted has no promise yet (lint asks for the snapshot)
            continue
        errors, _ = _gate(ref, path, document, of_major, published, current=current)
        if errors:
            found = errors[0]
            return (f"{ref} was not published: {found.message} The port keeps its current version. Fix: {found.fix} "
                    f"(Readers as {consumers.file_name(ref.domain)} records them; `mesh lint` judges against the "
                    "code of every domain.)")
    return None


def _went_back(folder: Path, ref: ProductRef, version: str) -> Violation | None:
    """A major lower than one already snapshotted: readers of the higher one would get an older contract."""
    number = major_of(version)
    if number is None:
        return None
    higher = sorted(n for n in (major_of(p.name[len(f"{ref}.v"):-len(".odcs.yaml")]) for p in folder.glob(f"{ref}.v*.odcs.yaml"))
                    if n is not None and n > number)
    if not higher:
        return None
    return Violation(ref.domain, ref.product, "contract-compatible",
                     f"is at major {number}, below major {higher[-1]}, whose contract is already published: a major "
                     "never goes back.", f"set version='{_next_major(str(higher[-1]))}' (or higher).")


def readers_from_reliance(ref: ProductRef, reliance: dict) -> list[Reader]:
    """The readers of `ref` as its domain's consumers file records them."""
    return [Reader(ProductRef.parse(entry["consumer"]), tuple(entry.get("owners") or ()), entry.get("major"),
                   None if entry.get("columns") is None else frozenset(entry["columns"]))
            for entry in reliance.get(ref.product, [])]


def _next_major(version: str) -> str:
    return f"{int(major(version)) + 1}.0.0" if major(version).isdigit() else "N.0.0"


def _reads(workspace: MeshWorkspace) -> tuple[list, dict[ProductRef, tuple[str, ...]]]:
    """Every (consumer, parameter, Input) of the mesh, remote readers' as their entries registered
    them, and each consumer's owners."""
    reads, owners = [], {}
    for location in workspace.all_locations:
        for item in location.reads():
            reads.append(item)
            owners[item[0]] = location.owners_of(item[0])
    return reads, owners


def _render(document: dict) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def _readers(workspace: MeshWorkspace) -> dict[ProductRef, list[Reader]]:
    readers: dict[ProductRef, list[Reader]] = {}
    for location in workspace.all_locations:  # a remote reader is named like a local one
        for consumer, _, spec in location.reads():
            relied = spec.relied_on()
            readers.setdefault(spec.ref, []).append(Reader(
                consumer, location.owners_of(consumer), spec.major,
                None if relied is None else frozenset(relied)))
    return readers


def _impact(readers: list[Reader], unknown: Sequence[str] = ()) -> str:
    note = f" (and any in domain(s) {', '.join(unknown)}, which did not load)" if unknown else ""
    if not readers:
        return "no product in this mesh" + note
    return ", ".join(sorted({f"{r.consumer} ({', '.join(r.owners)})" for r in readers})) + note
