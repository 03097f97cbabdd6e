"""The readers a producer's audits run: its committed consumers file, or (in `mesh preview --registry`) the registry's."""

from __future__ import annotations

import yaml

from mesh_core.governance.consumers import file_name, read_reliance, registry_reliance, render, substituted


def reader(consumer: str, expectations=(), columns=("a",)) -> dict:
    return {"consumer": consumer, "owners": [f"team:{consumer.split('.')[0]}"], "input": "up", "major": None,
            "columns": list(columns), "expectations": [{"type": "ExpectColumnValuesToNotBeNull", "column": name,
                                                          "name": f"{name}_known"} for name in expectations]}


def read_record(consumer: str, product: str, expectations=()) -> dict:
    return {**reader(consumer, expectations), "product": product}


# The producer 'supply': its file lists a local reader, an old expectation of a registry reader, and a
# reader of a domain that never published; the registry holds the registry reader's current reads.
COMMITTED = {"parts": [reader("supply.stock"), reader("buyers.orders", ["a"]), reader("legacy.report", ["a"])]}
REGISTRY = {
    "supply": {"reads": [read_record("supply.stock", "supply.parts", ["zz"])]},  # listed here: its code wins
    "buyers": {"reads": [read_record("buyers.orders", "supply.parts", ["b"]),
                         read_record("buyers.prices", "supply.parts"),
                         read_record("buyers.orders", "elsewhere.items", ["c"])]},
}


def test_registry_readers_replace_the_committed_ones_and_the_others_stay():
    document = registry_reliance(COMMITTED, "supply", REGISTRY, local=["supply"])
    found = {(e["consumer"], tuple(x["name"] for x in e["expectations"])) for e in document["parts"]}
    assert found == {("supply.stock", ()), ("legacy.report", ("a_known",)),  # local code; never published
                     ("buyers.orders", ("b_known",)), ("buyers.prices", ())}  # what the registry holds today
    assert list(document) == ["parts"]  # another producer's reads are not this one's
    assert [e["consumer"] for e in document["parts"]] == sorted(e["consumer"] for e in document["parts"])


def test_substituted_applies_to_local_domains_for_the_block_only(tmp_path):
    (tmp_path / file_name("supply")).write_text(render(COMMITTED))
    (tmp_path / file_name("other")).write_text(render(COMMITTED))
    with substituted(REGISTRY, ["supply"]) as substitution:
        assert read_reliance(tmp_path, "supply") == registry_reliance(COMMITTED, "supply", REGISTRY, ["supply"])
        assert read_reliance(tmp_path, "other") == COMMITTED  # not listed here: its own file
        assert set(substitution.documents) == {"supply"} and substitution.committed["supply"] == COMMITTED
    assert read_reliance(tmp_path, "supply") == yaml.safe_load((tmp_path / file_name("supply")).read_text())
