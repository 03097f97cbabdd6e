"""Consumer-driven contracts: what consumers rely on, checked against producers, run by producers.

A consumer declares, per input, the columns it reads and expectations of its own
(`Input("operations.flights", columns=[...], expectations=[...])`). Three things use that:

- `mesh lint` fails when a consumer relies on a column the producer (at the pinned major)
  does not publish, naming both sides;
- the breaking-change gate counts only the consumers that rely on what changed;
- the producer's write-audit-publish runs its consumers' expectations, at the level
  `governance.yaml` sets (`consumer_expectations: warn` by default; `error` blocks the publish).

Domains never import each other, so the producer learns its consumers' expectations from a
committed file in its own folder, `snapshots/<domain>.consumers.yaml`, which
`mesh contracts update` writes and `mesh lint` keeps current (like a Pact file). `mesh preview
--registry` reads them from the contract registry instead (`substituted`), so a producer sees what
its consumers registered today even when the committed file is behind.
"""

from __future__ import annotations

import hashlib
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import yaml

from mesh_core.declare.expectation import Expectation, Severity
from mesh_core.declare.inputs import Input
from mesh_core.declare.ref import ProductRef
from mesh_core.governance.policies import Level

HEADER = ("# Written by `mesh contracts update` from the consumers' code: who reads each product of this\n"
          "# domain and what they rely on. Its publishes run these expectations and refuse breaking changes\n"
          "# to what is read. Do not edit.\n")


def file_name(domain: str) -> str:
    return f"{domain}.consumers.yaml"


def reliance_document(reads: Sequence[tuple[ProductRef, str, Input]], domain: str,
                      owners: Mapping[ProductRef, Sequence[str]]) -> dict:
    """{producer product: [{consumer, owners, input, major, columns, expectations}]} for one
    producing domain, from every (consumer, parameter, Input) of the mesh. Every reader is listed,
    so the publish gate can name who relies on a change without importing the readers' code."""
    document: dict[str, list] = {}
    for consumer, param, spec in sorted(reads, key=lambda item: (str(item[2].ref), str(item[0]), item[1])):
        if spec.ref.domain != domain:
            continue
        document.setdefault(spec.ref.product, []).append({
            "consumer": str(consumer), "owners": list(owners.get(consumer, ())), "input": param, "major": spec.major,
            "columns": None if spec.columns is None else list(spec.columns),
            # The level is the mesh's (governance.yaml), not the consumer's: no severity here.
            "expectations": [{k: v for k, v in item.as_dict().items() if k != "severity"} for item in spec.expectations],
        })
    return document


def expectations_of(document: dict) -> dict:
    """Only what the producer's audits run: the entries with expectations, without owners."""
    kept = {product: [{k: v for k, v in entry.items() if k != "owners"} for entry in entries if entry.get("expectations")]
            for product, entries in document.items() if isinstance(entries, list)}
    return {product: entries for product, entries in kept.items() if entries}


def render(document: dict) -> str:
    return HEADER + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


class Substitution:
    """While `substituted` is active: the registry's domains that stand in for the committed files'
    readers, and per local domain whose reliance was asked for, its committed file and the
    document used instead (a domain whose code was imported before never asks)."""

    def __init__(self, registry_domains: Mapping[str, Mapping], local: Sequence[str]):
        self.registry_domains, self.local = registry_domains, tuple(local)
        self.committed: dict[str, dict] = {}
        self.documents: dict[str, dict] = {}

    def document(self, committed: dict, domain: str) -> dict:
        self.committed[domain] = committed
        self.documents[domain] = registry_reliance(committed, domain, self.registry_domains, self.local)
        return self.documents[domain]


# A plain global, not a ContextVar: Dagster may run a step in another thread of the same process.
_substitution: Substitution | None = None


@contextmanager
def substituted(registry_domains: Mapping[str, Mapping], local: Sequence[str]) -> Iterator[Substitution]:
    """For the block, `read_reliance` of a `local` domain (one this workspace lists) takes its readers
    from the registry's entries (`registry_reliance`): code locations loaded meanwhile run those
    expectations as their products' checks, and their runs' breaking-change gate counts those readers."""
    global _substitution
    previous, _substitution = _substitution, Substitution(registry_domains, local)
    try:
        yield _substitution
    finally:
        _substitution = previous


def read_reliance(folder: Path, domain: str) -> dict[str, list[dict]]:
    """The committed file of `domain` in `folder`; empty when there is none, or when it cannot be
    read (then the domain still loads, so `mesh contracts update` can rewrite it, and `mesh lint`
    fails until it does). While `substituted` is active: its readers from the registry."""
    committed = _committed(folder, domain)
    if _substitution is not None and domain in _substitution.local:
        return _substitution.document(committed, domain)
    return committed


def _committed(folder: Path, domain: str) -> dict[str, list[dict]]:
    path = folder / file_name(domain)
    if not path.exists():
        return {}
    try:
        document = yaml.safe_load(path.read_text()) or {}
        if not isinstance(document, dict):
            raise ValueError("it is not a mapping of product to consumers")
        for entries in document.values():
            for entry in entries:
                ProductRef.parse(entry["consumer"])
                major = entry.get("major")
                if not isinstance(entry["input"], str) or (major is not None and (type(major) is not int or major < 0)):
                    raise ValueError(f"entry {entry!r} has no valid input or major")
                owners = entry.get("owners", [])
                if not isinstance(owners, list) or not all(isinstance(o, str) for o in owners):
                    raise ValueError(f"entry {entry!r} has owners that are not a list of names")
                [Expectation.from_dict(item) for item in entry["expectations"]]
    except (OSError, yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError) as exc:
        logging.getLogger("mesh").warning(
            "%s cannot be read (%s): %s's audits run without its consumers' expectations until "
            "`mesh contracts update` rewrites it.", path, " ".join(str(exc).split()), domain)
        return {}
    return document


def consumer_expectations(product: str, reliance: Mapping[str, list[dict]], level: Level
                          ) -> tuple[tuple[int | None, Expectation], ...]:
    """The expectations `product`'s consumers rely on, as checks of the producer at `level`, each
    with the major its consumer reads (None: the current one)."""
    if level is Level.OFF:
        return ()
    severity = Severity.ERROR if level is Level.ERROR else Severity.WARNING
    found = []
    for entry in reliance.get(product, []):
        consumer = ProductRef.parse(entry["consumer"])
        for item in map(Expectation.from_dict, entry["expectations"]):
            found.append((entry.get("major"), Expectation.from_dict({
                **item.as_dict(), "severity": severity.value, "name": _check_name(consumer, entry["input"], item.name),
                "description": f"Relied on by {consumer} (input '{entry['input']}'): {item.description or item.summary()}",
            })))
    return tuple(found)


def expectation_consumers(product: str, reliance: Mapping[str, list[dict]]) -> dict[str, tuple[ProductRef, tuple[str, ...]]]:
    """{check name: (consumer, its owners)} of the checks `consumer_expectations` adds to `product`:
    whose expectation a failing check is, and whom it concerns."""
    return {_check_name(ProductRef.parse(entry["consumer"]), entry["input"], item.name):
            (ProductRef.parse(entry["consumer"]), tuple(entry.get("owners", ())))
            for entry in reliance.get(product, []) for item in map(Expectation.from_dict, entry["expectations"])}


def _check_name(consumer: ProductRef, param: str, name: str) -> str:
    full = f"{consumer.domain}__{consumer.product}__{param}__{name}"
    if len(full) <= 100:
        return full
    return f"{full[:83]}_{hashlib.sha256(full.encode()).hexdigest()[:16]}"


def registry_reliance(committed: Mapping[str, list[dict]], producer: str, registry_domains: Mapping[str, Mapping],
                      local: Sequence[str]) -> dict[str, list[dict]]:
    """`producer`'s reliance with every reader whose domain the registry holds and this workspace does
    not list taken from the registry (its entry's "reads": what it relies on today), and the other
    readers (local code, kept current by `mesh lint`; or a domain that never published) from the
    committed file. Ordered like `reliance_document`."""
    registered = {domain for domain in registry_domains if domain not in local}
    found = [(product, entry) for product, entries in committed.items() if isinstance(entries, list)
             for entry in entries if ProductRef.parse(entry["consumer"]).domain not in registered]
    for domain in sorted(registered):
        for record in registry_domains[domain].get("reads") or ():
            ref = ProductRef.parse(record["product"])
            if ref.domain == producer:
                found.append((ref.product, {key: record.get(key) for key in
                                            ("consumer", "owners", "input", "major", "columns", "expectations")}))
    document: dict[str, list[dict]] = {}
    for product, entry in sorted(found, key=lambda item: (item[0], item[1]["consumer"], item[1]["input"])):
        document.setdefault(product, []).append({**entry, "owners": list(entry.get("owners") or ()),
                                                 "expectations": list(entry.get("expectations") or ())})
    return document
