import copy

import pytest

from mesh_core import ProductRef
from mesh_core.governance.snapshots import compare
from mesh_core.governance.workspace import MeshWorkspace
from tests.support import WORKSPACES


def document(access="public", **columns):
    properties = [{"name": name, "physicalType": kind, "description": "d", "required": required, "unique": False,
                   "quality": [{"type": "custom", "engine": "pandera", "implementation": check} for check in checks]}
                  for name, (kind, required, checks) in columns.items()]
    return {"description": {"purpose": "One row per item."}, "schema": [{"name": "t", "properties": properties}],
            "customProperties": [{"property": "access", "value": access}]}


BASE = document(item_id=("int64", True, ["greater_than_or_equal_to(0)"]), label=("str", False, []))


def changed(**edit):
    new = copy.deepcopy(BASE)
    columns = {c["name"]: c for c in new["schema"][0]["properties"]}
    for name, fields in edit.items():
        if fields is None:
            new["schema"][0]["properties"].remove(columns[name])
        elif name in columns:
            columns[name].update(fields)
        else:
            new["schema"][0]["properties"].append({"name": name, "physicalType": "str", "description": "", "required": False,
                                                   "unique": False, "quality": []})
    return new


@pytest.mark.parametrize("new, expected", [
    (changed(label=None), [("column 'label' was removed", True)]),
    (changed(item_id={"physicalType": "float64"}), [("column 'item_id' changed type int64 -> float64", True)]),
    (changed(item_id={"required": False}), [("column 'item_id' may now be null", True)]),
    (changed(label={"required": True}), [("column 'label' may no longer be null", False)]),
    (changed(item_id={"unique": True}), [("column 'item_id' is now unique", False)]),
    (changed(item_id={"quality": []}), [("column 'item_id' lost check greater_than_or_equal_to(0)", True)]),
    (changed(label={"quality": [{"implementation": "str_length(2, 2)"}]}), [("column 'label' gained check str_length(2, 2)", False)]),
    (changed(extra={}), [("column 'extra' was added", False)]),
    (changed(label={"description": "new words"}), [("column 'label' description changed", False)]),
    (document(access="internal", item_id=("int64", True, ["greater_than_or_equal_to(0)"]), label=("str", False, [])),
     [("the product was made internal", True)]),
    (None, [("the product was removed", True)]),
    (BASE, []),
])
def test_every_kind_of_change_is_classified(new, expected):
    assert [(c.what, c.breaking) for c in compare(BASE, new)] == expected


def test_table_checks_are_part_of_the_contract():
    with_check = copy.deepcopy(BASE)
    with_check["schema"][0]["quality"] = [{"type": "custom", "engine": "pandera", "implementation": "unique(item_id, label)"}]
    assert [(c.what, c.breaking) for c in compare(with_check, BASE)] == [("the table lost check unique(item_id, label)", True)]
    assert [(c.what, c.breaking) for c in compare(BASE, with_check)] == [("the table gained check unique(item_id, label)", False)]


def test_a_breaking_change_counts_only_readers_that_rely_on_it(tmp_path):
    import yaml

    from mesh_core.governance.snapshots import Reader, _gate, contract_document

    workspace = MeshWorkspace.load(WORKSPACES / "supplier_buyer.yaml")
    parts = ProductRef("supplier", "parts")
    document = contract_document(parts, workspace.products()[parts][1])
    snapshot = tmp_path / "supplier.parts.v2.odcs.yaml"
    snapshot.write_text(yaml.safe_dump(document))
    without_status = {**document, "schema": [{**document["schema"][0], "properties": [
        column for column in document["schema"][0]["properties"] if column["name"] != "status"]}]}
    priced = Reader(ProductRef("buyer", "prices"), ("team:buyer",), None, frozenset({"part_id", "price"}))
    everything = Reader(ProductRef("audit", "all_parts"), ("team:audit",), None, None)

    [error], warnings = _gate(parts, snapshot, without_status, [priced], "2.1.0")  # a break stops every run
    assert warnings == [] and error.rule == "contract-compatible" and "Read by: no product in this mesh." in error.message
    assert error.fix.startswith("no reader relies on it, so `mesh contracts update` writes it into the snapshot")
    [error], warnings = _gate(parts, snapshot, without_status, [priced, everything], "2.1.0")
    assert warnings == [] and error.message.endswith("Read by: audit.all_parts (team:audit).")
    made_internal = {**document, "customProperties": [{"property": "access", "value": "internal"}]}
    [error], _ = _gate(parts, snapshot, made_internal, [priced], "2.1.0")  # the whole product: every reader
    assert "the product was made internal" in error.message and "buyer.prices (team:buyer)" in error.message


def test_a_key_that_may_now_repeat_is_breaking():
    keyed = copy.deepcopy(BASE)
    keyed["schema"][0]["properties"][0]["unique"] = True
    assert [(c.what, c.breaking) for c in compare(keyed, BASE)] == [("column 'item_id' may now repeat (no longer unique)", True)]


@pytest.mark.parametrize("text", ["schema: [\n  - {name: flights", "{}\n", "- just\n- a list\n"])
def test_a_damaged_snapshot_is_named_in_lint_and_in_the_run_never_a_crash(tmp_path, text):
    from mesh_core.governance.snapshots import contract_document, publish_refusal

    workspace = MeshWorkspace.load(WORKSPACES / "supplier_buyer.yaml")
    parts = ProductRef("supplier", "parts")
    spec = workspace.products()[parts][1]
    (tmp_path / "supplier.parts.v2.odcs.yaml").write_text(text)
    refusal = publish_refusal(parts, spec, tmp_path, {})
    assert refusal.startswith(f"supplier.parts was not published: the contract snapshot {tmp_path / 'supplier.parts.v2.odcs.yaml'} "
                              "cannot be read"), refusal
    assert "git checkout -- " in refusal
    assert contract_document(parts, spec)  # the code's own contract is fine


def test_a_major_never_goes_back(tmp_path):
    import yaml

    from mesh_core.governance.snapshots import contract_document, publish_refusal

    workspace = MeshWorkspace.load(WORKSPACES / "supplier_buyer.yaml")
    parts = ProductRef("supplier", "parts")
    spec = workspace.products()[parts][1]
    (tmp_path / "supplier.parts.v3.odcs.yaml").write_text(yaml.safe_dump(contract_document(parts, spec)))
    refusal = publish_refusal(parts, spec, tmp_path, {})
    assert "is at major 2, below major 3, whose contract is already published: a major never goes back" in refusal
    assert "Fix: set version='4.0.0'" in refusal
