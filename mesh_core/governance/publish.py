"""`mesh registry publish`: a domain's entry into the contract registry, past the same gate lint applies.

A domain publishes what the others need from it (mesh_core.governance.registry.domain_entry): each
public product's contract per major, owners, access, lifecycle, and what its own products read. The
registry is the promise other repositories build on, so a publish is refused, with nothing written,
when:

- the domain's own lint, against the registry, has errors (`mesh lint -d DOMAIN --registry URI`);
- a public product's contract breaks the registered contract of the same major, and a registered
  reader relies on what broke (a reader that declared its columns relies on those only; one that
  pins no major reads the current one);
- a product registered readers read is removed or made internal, or a major they pin is dropped
  before its PreviousMajor window ends;
- a product's major goes below one already registered.

The readers are the "reads" every domain registered; the publishing domain's own are those of the
entry being published (its consumers change with it, in one commit). A write is based on the state it
judged: when another domain's write lands first (StaleRegistryWrite), the registry is read again and
the publish judged again, up to `retries` times.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date
from typing import Mapping, Sequence

from mesh_core.declare.majors import major_of
from mesh_core.declare.ref import ProductRef
from mesh_core.errors import MeshError, StaleRegistryWrite, Violation
from mesh_core.governance.snapshots import Reader, _impact, _relied_on, compare
from mesh_core.storage.registry import Registry, RegistryState


@dataclass(frozen=True)
class PublishResult:
    domain: str
    uri: str
    seq: int | None  # the entry this publish wrote; None: nothing written (unchanged, or refused)
    base: int  # the registry entry it was judged against
    changes: tuple[str, ...]  # what changed, one line each ("operations.flights: column 'x' was added")
    refused: tuple[Violation, ...] = ()
    attempts: int = 1  # reads of the registry it took: more than 1 when another write landed first (then re-judged)

    @property
    def unchanged(self) -> bool:
        return self.seq is None and not self.refused

    def as_dict(self) -> dict:
        return {"domain": self.domain, "registry": self.uri, "seq": self.seq, "base": self.base,
                "written": self.seq is not None, "unchanged": self.unchanged, "changes": list(self.changes),
                "refused": [asdict(v) for v in self.refused], "attempts": self.attempts}


def publish_domain(workspace, domain: str, registry: Registry, *, by: str, retries: int = 3) -> PublishResult:
    """Write `domain`'s entry (from its code in `workspace`) into `registry`, or say why not."""
    from mesh_core.governance.lint import lint_mesh
    from mesh_core.governance.registry import domain_entry

    if not isinstance(by, str) or not by.strip():
        raise MeshError(f"A publish to the registry at {registry.uri} must say who publishes: pass --by NAME "
                        "(or set $MESH_PUBLISHED_BY).")
    entry = canonical(domain_entry(workspace.location(domain)))
    for attempt in range(retries + 1):
        state = registry.read(missing_ok=True)
        report = lint_mesh(workspace.path, domains=[domain], registry=state)
        refused = list(report.violations) + [
            Violation(domain, None, "workspace-loads", error, f"fix it; `mesh lint -d {domain} --registry {registry.uri}` "
                                                               "shows the same") for error in report.load_errors]
        changes, gate = judge(state, domain, entry)
        refused += gate
        if refused:
            return PublishResult(domain, registry.uri, None, state.seq, tuple(changes), tuple(refused), attempt + 1)
        if not changes:
            return PublishResult(domain, registry.uri, None, state.seq, (), attempts=attempt + 1)
        try:
            written = registry.write(state, domain, entry, by=by, changes=changes)
        except StaleRegistryWrite:
            if attempt == retries:
                break
            continue
        return PublishResult(domain, registry.uri, written.seq, state.seq, tuple(changes), attempts=attempt + 1)
    newest = registry.read(missing_ok=True)
    winner = newest.written or {}
    raise StaleRegistryWrite(
        f"{domain} was not published to the registry at {registry.uri}: {retries + 1} attempt(s), each judged against "
        f"the newest entry, lost to another write landing first; the newest is entry {newest.seq}, written by "
        f"{winner.get('by')} at {winner.get('at')} (domain {winner.get('domain')}). Nothing was written. "
        f"Fix: run `mesh registry publish -d {domain}` again.")


def canonical(entry: dict) -> dict:
    """The entry as the registry holds it (JSON), its reads in one order: the same code gives the same
    entry, whatever order Dagster resolved its assets in, so an unchanged domain writes nothing."""
    entry = json.loads(json.dumps(entry))
    entry["reads"] = sorted(entry.get("reads", []), key=lambda read: (read["consumer"], read["input"]))
    return entry


def judge(state: RegistryState, domain: str, entry: dict) -> tuple[list[str], list[Violation]]:
    """(what changed, one line each; what is refused) of writing `entry` as `domain`'s over `state`.
    No line: the entry is what the registry holds already."""
    try:
        old = canonical(state.domains[domain]) if domain in state.domains else None
        if old == entry:
            return [], []
        return _judge(state, domain, entry, old)
    except _UNREADABLE as exc:  # an entry mesh-core never wrote (hand-edited, another tool): nothing can be judged
        return [], [Violation(domain, None, "registry-compatible",
                              f"the registry at {state.uri} (entry {state.seq}) holds an entry that cannot be read "
                              f"({type(exc).__name__}: {exc}), so no change of {domain} can be judged against it.",
                              "restore the registry's newest entry from a backup, or delete it so the entry before it is "
                              "current again (`mesh registry history` shows who wrote which).")]


_UNREADABLE = (KeyError, IndexError, TypeError, AttributeError, ValueError)


def _judge(state: RegistryState, domain: str, entry: dict, old: dict | None) -> tuple[list[str], list[Violation]]:
    readers = registered_readers(state, domain, entry)
    changes, refused = [], []
    old_products, new_products = (old or {}).get("products", {}), entry.get("products", {})
    for product in sorted(set(old_products) | set(new_products)):
        ref = ProductRef(domain, product)
        found, stopped = _judge_product(ref, old_products.get(product), new_products.get(product),
                                        readers.get(ref, []), state.uri)
        changes += found
        refused += stopped
    changes += _reads_changes((old or {}).get("reads", []), entry.get("reads", []))
    if not changes:
        changes.append(f"{domain}: entry rewritten by mesh-core {entry.get('mesh_core')}"
                       + (f" (was {old.get('mesh_core')})" if old and old.get("mesh_core") != entry.get("mesh_core") else "")
                       if old else f"{domain}: registered, with no product")
    return changes, refused


def registered_readers(state: RegistryState, domain: str, entry: dict) -> dict[ProductRef, list[Reader]]:
    """{product: its readers}: the reads every other domain registered, and `entry`'s own."""
    reads = [read for name in state.domains if name != domain for read in state.domains[name].get("reads", [])]
    found: dict[ProductRef, list[Reader]] = {}
    for read in reads + list(entry.get("reads", [])):
        columns = read.get("columns")
        found.setdefault(ProductRef.parse(read["product"]), []).append(Reader(
            ProductRef.parse(read["consumer"]), tuple(read.get("owners") or ()), read.get("major"),
            None if columns is None else frozenset(columns)))
    return found


def _judge_product(ref: ProductRef, old: Mapping | None, new: Mapping | None, readers: list[Reader], uri: str
                   ) -> tuple[list[str], list[Violation]]:
    if old is None:
        return [f"{ref}: added ({new.get('access')}, version {new.get('version')})"], []
    if new is None or (old.get("access") == "public" and new.get("access") != "public"):
        what = "the product was removed" if new is None else f"the product was made {new.get('access')}"
        if old.get("access") != "public" or not readers:
            return [f"{ref}: {what}"], []
        return [f"{ref}: {what}"], [Violation(
            ref.domain, ref.product, "registry-compatible",
            f"{what}, but registered readers read it: {_impact(readers)} (registry {uri}).",
            "keep it public and published (deprecate it and name a successor, then retire it once no reader is left), "
            f"or ask {_owners(readers)} to stop reading it first.")]
    changes, refused = [], []
    current = major_of(str(new.get("version")))
    registered = {m for m in (*map(_int, old.get("contracts", {})), major_of(str(old.get("version")))) if m is not None}
    if current is not None and registered and current < max(registered):
        refused.append(Violation(ref.domain, ref.product, "registry-compatible",
                                 f"is at major {current}, below major {max(registered)}, already registered at {uri}: "
                                 "a major never goes back.", f"set the version to major {max(registered)} or higher."))
    if old.get("version") != new.get("version"):
        changes.append(f"{ref}: version {old.get('version')} -> {new.get('version')}")
    if old.get("access") != new.get("access"):
        changes.append(f"{ref}: access {old.get('access')} -> {new.get('access')}")
    old_contracts, new_contracts = old.get("contracts", {}), new.get("contracts", {})
    ended = {str(item["major"]) for item in old.get("previous_majors", [])
             if date.fromisoformat(str(item["until"])) <= date.today()}
    for number in sorted(set(old_contracts) | set(new_contracts), key=lambda m: (_int(m) is None, _int(m) or 0, m)):
        label = ref if str(current) == number else f"{ref}@{number}"
        if number not in old_contracts:
            changes.append(f"{label}: contract of major {number} registered")
            continue
        # A reader that pins no major reads the current one.
        of_major = [r for r in readers if (str(r.major) == number if r.major is not None else str(current) == number)]
        if number not in new_contracts:
            changes.append(f"{label}: contract of major {number} no longer registered")
            pinned = [r for r in readers if r.major is not None and str(r.major) == number]
            if pinned and number not in ended:
                refused.append(Violation(
                    ref.domain, ref.product, "registry-compatible",
                    f"no longer publishes major {number}, which registered readers pin: {_impact(pinned)} (registry {uri}).",
                    f"keep major {number} published beside major {current} with PreviousMajor('{old_contracts[number].get('version')}', "
                    f"until=...) while they move, or ask {_owners(pinned)} to pin major {current}."))
            continue
        try:
            found = compare(old_contracts[number], new_contracts[number])
        except (KeyError, IndexError, TypeError, AttributeError) as exc:  # an entry some other tool wrote
            refused.append(Violation(ref.domain, ref.product, "registry-compatible",
                                     f"its registered contract of major {number} cannot be read ({type(exc).__name__}: "
                                     f"{exc}) in the registry at {uri}, so no change to it can be judged.",
                                     "restore the registry's newest entry from a backup (`mesh registry history` "
                                     "shows who wrote it)."))
            continue
        breaks, affected = _relied_on([c for c in found if c.breaking], of_major)
        changes += [f"{label}: {c.what}" + (" (breaking; no registered reader relies on it)"
                                            if c.breaking and c not in breaks else "") for c in found]
        if breaks:
            refused.append(Violation(
                ref.domain, ref.product, "registry-compatible",
                f"breaks the registered contract of major {number}: {'; '.join(c.what for c in breaks)}. Registered "
                f"readers rely on it: {_impact(affected)} (registry {uri}).",
                _fix(ref, number, current, old_contracts[number], affected)))
    old_major = major_of(str(old.get("version")))
    if current is not None and old_major is not None and current > old_major:
        kept = str(old_major) in new_contracts
        of_old = [r for r in readers if r.major in (None, old_major)]
        following = sorted({str(r.consumer) for r in readers if r.major is None})
        changes.append(f"{ref}: major {old_major} -> {current} (major {old_major} "
                       + ("still published beside it" if kept else "no longer published")
                       + f"); readers of major {old_major}: {_impact(of_old)}"
                       + (f"; {', '.join(following)} pin(s) no major, so read(s) major {current} now" if following else ""))
    changes += _field_changes(ref, old, new)
    return changes, refused


def _fix(ref: ProductRef, number: str, current: int | None, promised: Mapping, affected: Sequence[Reader]) -> str:
    if str(current) == number:
        return (f"bump the major (version='{int(number) + 1}.0.0') and keep major {number} published beside it with "
                f"PreviousMajor('{promised.get('version')}', ...) while readers move, or ask {_owners(affected)} to stop "
                "relying on it, or undo the change.")
    return (f"give PreviousMajor('{promised.get('version')}', ...) a contract that keeps major {number} as registered, "
            f"or ask {_owners(affected)} to pin major {current}.")


def _field_changes(ref: ProductRef, old: Mapping, new: Mapping) -> list[str]:
    changes = []
    if list(old.get("owners", [])) != list(new.get("owners", [])):
        changes.append(f"{ref}: owners {', '.join(old.get('owners', []))} -> {', '.join(new.get('owners', []))}")
    before, after = old.get("lifecycle") or {}, new.get("lifecycle") or {}
    if before.get("status") != after.get("status"):
        changes.append(f"{ref}: status {before.get('status')} -> {after.get('status')}")
    elif before != after:
        changes.append(f"{ref}: lifecycle changed ({', '.join(k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k))})")
    for key in ("description", "tags", "objectives", "previous_majors"):
        if old.get(key) != new.get(key):
            changes.append(f"{ref}: {key.replace('_', ' ')} changed")
    if not changes and old != new and all(old.get(k) == new.get(k) for k in ("version", "access", "contracts")):
        changes.append(f"{ref}: metadata changed")
    return changes


def _reads_changes(old: Sequence[Mapping], new: Sequence[Mapping]) -> list[str]:
    key = lambda read: (read["consumer"], read["input"])  # noqa: E731
    before, after = {key(r): r for r in old}, {key(r): r for r in new}
    pinned = lambda read: read["product"] + (f"@{read['major']}" if read.get("major") is not None else "")  # noqa: E731
    changes = []
    for consumer, param in sorted(set(before) | set(after)):
        was, now = before.get((consumer, param)), after.get((consumer, param))
        if was is None:
            changes.append(f"{consumer}: reads {pinned(now)} (input '{param}')")
        elif now is None:
            changes.append(f"{consumer}: no longer reads {pinned(was)} (input '{param}')")
        elif was != now:
            what = [name for name in ("product", "major", "columns", "expectations", "owners") if was.get(name) != now.get(name)]
            changes.append(f"{consumer}: input '{param}' now reads {pinned(now)} (changed: {', '.join(what) or 'details'})")
    return changes


def _owners(readers: Sequence[Reader]) -> str:
    owners = sorted({owner for r in readers for owner in r.owners})
    return ", ".join(owners) if owners else "their owners"


def _int(text) -> int | None:
    return int(text) if str(text).isdigit() else None

