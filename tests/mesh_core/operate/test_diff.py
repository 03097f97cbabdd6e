"""The data diff between two published versions of a real port, computed in DuckDB."""

import json
import os
import re

import dagster as dg
import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
from pandera.typing import Series

from mesh_core import DomainStorage, IntegrityError, ProductRef, VersionNotFoundError
from mesh_core.declare.contract import column_schema, contract_key, specs_from_metadata, table_key
from mesh_core.declare.metadata import meta_value
from mesh_core.operate.diff import PortSide, diff_versions
from mesh_core.governance.workspace import MeshWorkspace
from tests.support import REPO

REF = ProductRef("sales", "orders")


def flights(rows: int = 200) -> pd.DataFrame:
    ids = np.arange(rows)
    return pd.DataFrame({
        "flight_id": ids,
        "carrier": np.where(ids % 3 == 0, "AA", np.where(ids % 3 == 1, "DL", "UA")),
        "price": (ids % 50) * 1.5 + 10.25,
        "status": np.where(ids % 10 == 0, "cancelled", "flown"),
        "departed": pd.date_range("2024-01-01", periods=rows, freq="h"),
    })


class Ports:
    """Publishes versions of one product to a real port in a temp folder."""

    def __init__(self, root, ref=REF):
        self.storage = DomainStorage(root, ref.domain)
        self.ref = ref
        self.uri = self.storage.port(ref).uri
        self.runs = 0

    def publish(self, frame: pd.DataFrame) -> PortSide:
        self.runs += 1
        published = self.storage.publish(self.ref.product, frame, version="1.0.0", access="public",
                                         run_id=f"run{self.runs:05d}-test")
        return PortSide(self.uri, published.version.version)


def changes(diff):
    return {c.name: c for c in diff.columns}


def test_identical_data_republished_gives_an_empty_diff(tmp_path):
    ports = Ports(tmp_path)
    frame = flights()
    before, after = ports.publish(frame), ports.publish(frame.sample(frac=1, random_state=1))  # order is no change
    assert after.version == before.version + 1
    for key in (("flight_id",), None):
        diff = diff_versions(before, after, key=key)
        assert diff.is_empty, diff.as_dict()
        assert (diff.rows_before, diff.rows_after, diff.added, diff.removed, diff.changed) == (200, 200, 0, 0, 0)
        assert diff.columns == () and diff.schema.is_empty
        assert diff.key == key
        json.dumps(diff.as_dict())  # plain values only


def test_float_noise_is_no_change_but_a_real_difference_is(tmp_path):
    ports = Ports(tmp_path)
    frame = flights()
    before = ports.publish(frame)
    noisy = ports.publish(frame.assign(price=frame.price * (1 + 1e-15)))  # summed in another order, say
    assert diff_versions(before, noisy, key=("flight_id",)).is_empty
    moved = frame.price.copy()
    moved.iloc[7] += 1e-6
    diff = diff_versions(before, ports.publish(frame.assign(price=moved)), key=("flight_id",))
    assert diff.changed == 1 and diff.sample_changed == ({"flight_id": 7},)


def test_rows_dropped_by_a_filter_are_counted_removed_with_their_keys(tmp_path):
    ports = Ports(tmp_path)
    frame = flights()
    kept = frame[frame.status != "cancelled"]
    gone = sorted(frame.loc[frame.status == "cancelled", "flight_id"])
    diff = diff_versions(ports.publish(frame), ports.publish(kept), key=("flight_id",))
    assert (diff.rows_before, diff.rows_after) == (len(frame), len(kept))
    assert (diff.added, diff.removed, diff.changed) == (0, len(gone), 0)
    assert [row["flight_id"] for row in diff.sample_removed] == gone[:5]
    assert diff.sample_added == () and diff.sample_changed == ()
    status = changes(diff)["status"]
    assert status.after.top == (("flown", len(kept)),)
    assert dict(status.before.top) == {"flown": len(kept), "cancelled": len(gone)}
    assert status.before.distinct == 2 and status.after.distinct == 1
    assert not diff.is_empty
    # the same without a key: a row-hash diff finds the same rows gone
    by_hash = diff_versions(PortSide(ports.uri, 0), PortSide(ports.uri, 1), key=None)
    assert (by_hash.added, by_hash.removed, by_hash.changed, by_hash.key) == (0, len(gone), 0, None)
    assert len(by_hash.sample_removed) == 5 and {row["status"] for row in by_hash.sample_removed} == {"cancelled"}
    assert {row["flight_id"] for row in by_hash.sample_removed} <= set(gone)


def test_a_unit_change_counts_every_changed_row_and_moves_mean_min_and_max(tmp_path):
    ports = Ports(tmp_path)
    frame = flights()
    cents = frame.assign(price=frame.price * 100)
    diff = diff_versions(ports.publish(frame), ports.publish(cents), key=("flight_id",))
    assert (diff.added, diff.removed, diff.changed) == (0, 0, len(frame))
    assert [c.name for c in diff.columns] == ["price"]  # nothing else moved
    price = diff.columns[0]
    assert price.changed_values == len(frame)
    assert {"values", "min", "max", "mean"} <= set(price.changes)
    assert price.before.min == pytest.approx(frame.price.min()) and price.after.min == pytest.approx(frame.price.min() * 100)
    assert price.after.max == pytest.approx(frame.price.max() * 100)
    assert price.after.mean == pytest.approx(frame.price.mean() * 100)
    assert [row["flight_id"] for row in diff.sample_changed] == [0, 1, 2, 3, 4]


def test_renamed_codes_in_a_text_column_change_its_top_values(tmp_path):
    ports = Ports(tmp_path)
    frame = flights()
    renamed = frame.assign(carrier=frame.carrier.replace({"DL": "DAL"}))
    diff = diff_versions(ports.publish(frame), ports.publish(renamed), key=("flight_id",))
    carrier = changes(diff)["carrier"]
    assert diff.changed == (frame.carrier == "DL").sum() == carrier.changed_values
    assert "DL" in dict(carrier.before.top) and "DL" not in dict(carrier.after.top)
    assert dict(carrier.after.top)["DAL"] == dict(carrier.before.top)["DL"]
    assert "top" in carrier.changes and carrier.before.distinct == carrier.after.distinct == 3


def test_a_join_that_duplicates_rows_shows_as_rows_added_by_hash(tmp_path):
    ports = Ports(tmp_path)
    frame = flights(50)
    doubled = pd.concat([frame, frame[frame.carrier == "UA"]], ignore_index=True)
    diff = diff_versions(ports.publish(frame), ports.publish(doubled), key=None)
    copies = (frame.carrier == "UA").sum()
    assert (diff.rows_after, diff.added, diff.removed, diff.changed, diff.key) == (50 + copies, copies, 0, 0, None)
    assert {row["carrier"] for row in diff.sample_added} == {"UA"} and len(diff.sample_added) == 5
    # the contract's key, now duplicated, cannot match rows: the diff says so and falls back to hashes
    keyed = diff_versions(PortSide(ports.uri, 0), PortSide(ports.uri, 1), key=("flight_id",))
    assert (keyed.added, keyed.removed, keyed.key) == (copies, 0, None)
    assert "not unique after" in keyed.note


def test_schema_changes_name_added_removed_and_retyped_columns_and_stats_use_common_columns(tmp_path):
    ports = Ports(tmp_path)
    frame = flights()
    changed = frame.drop(columns=["status"]).assign(price=frame.price.round().astype("int64"), gate="A1")
    diff = diff_versions(ports.publish(frame), ports.publish(changed), key=("flight_id",))
    assert diff.schema.added == (("gate", "string"),)
    assert diff.schema.removed == (("status", "string"),)
    assert diff.schema.retyped == (("price", "double", "int64"),)
    assert {c.name for c in diff.columns} == {"price"}  # compared as numbers: 11.5 -> 12 differs, 13.0 -> 13 does not
    assert changes(diff)["price"].changed_values == (frame.price != frame.price.round()).sum()
    assert diff.changed == changes(diff)["price"].changed_values
    assert diff.as_dict()["schema"]["retyped"] == [{"column": "price", "before": "double", "after": "int64"}]


def test_nulls_compare_as_values(tmp_path):
    ports = Ports(tmp_path)
    frame = pd.DataFrame({"id": [1, 2, 3, 4], "note": ["a", None, None, "d"], "score": [1.0, None, 3.0, None]})
    same = ports.publish(frame)
    again = ports.publish(frame)
    assert diff_versions(same, again, key=("id",)).is_empty  # NULL = NULL here, unlike SQL's =
    assert diff_versions(same, again, key=None).is_empty
    filled = frame.assign(note=["a", "b", None, "d"], score=[1.0, None, None, None])
    diff = diff_versions(same, ports.publish(filled), key=("id",))
    assert diff.changed == 2 and [r["id"] for r in diff.sample_changed] == [2, 3]
    assert changes(diff)["note"].changed_values == 1 and changes(diff)["score"].changed_values == 1
    assert changes(diff)["note"].before.null_share == 0.5 and changes(diff)["note"].after.null_share == 0.25
    # a NULL key is a key like any other
    keyed = pd.DataFrame({"id": pd.array([1, None], dtype="Int64"), "v": [1, 2]})
    first = ports.publish(keyed)
    diff = diff_versions(first, ports.publish(keyed.assign(v=[1, 3])), key=("id",))
    assert (diff.added, diff.removed, diff.changed, diff.sample_changed) == (0, 0, 1, ({"id": None},))
    # NULLs in different columns hash differently
    swapped = pd.DataFrame({"x": pd.array([1, None], dtype="Int64"), "y": pd.array([None, 1], dtype="Int64")})
    flipped = pd.DataFrame({"x": pd.array([None, 1], dtype="Int64"), "y": pd.array([1, None], dtype="Int64")})
    assert diff_versions(ports.publish(swapped), ports.publish(flipped), key=None).is_empty
    diff = diff_versions(ports.publish(swapped), ports.publish(swapped.iloc[:1]), key=None)
    assert (diff.removed, diff.sample_removed) == (1, ({"x": None, "y": 1},))


def test_a_new_product_has_every_row_added(tmp_path):
    ports = Ports(tmp_path)
    frame = flights(30)
    diff = diff_versions(None, ports.publish(frame), key=("flight_id",))
    assert (diff.rows_before, diff.rows_after, diff.added, diff.removed, diff.changed) == (0, 30, 30, 0, 0)
    assert [name for name, _ in diff.schema.added] == list(frame.columns)
    assert [row["flight_id"] for row in diff.sample_added] == [0, 1, 2, 3, 4]
    assert not diff.is_empty


@pytest.mark.parametrize("name", ['unit price', 'say "hi"', "x'); DROP TABLE b; --", 'a"."b', "Ünïcode ✈", "select"])
def test_column_names_from_data_never_reach_sql(tmp_path, name):
    ports = Ports(tmp_path)
    frame = pd.DataFrame({"id [key]": [1, 2, 3], name: [1.0, 2.0, 3.0], "other": ["a", "b", "c"]})
    before = ports.publish(frame)
    diff = diff_versions(before, ports.publish(frame.assign(**{name: [1.0, 2.0, 30.0]})), key=("id [key]",))
    assert (diff.changed, [c.name for c in diff.columns]) == (1, [name])
    assert diff.sample_changed == ({"id [key]": 3},)
    assert diff_versions(before, PortSide(ports.uri, before.version), key=None).is_empty


def test_contract_key_comes_from_the_asset_metadata(tmp_path):
    class Legs(pa.DataFrameModel):
        carrier: Series[str]
        flight: Series[int]
        leg_id: Series[int] = pa.Field(unique=True)

        class Config:
            unique = ["carrier", "flight"]

    class Tails(pa.DataFrameModel):
        tailnum: Series[str] = pa.Field(unique=True)
        serial: Series[str] = pa.Field(unique=True)
        seats: Series[int]

    class Counts(pa.DataFrameModel):
        carrier: Series[str]
        flights: Series[int]

    legs = {"dagster/column_schema": column_schema(Legs), "mesh/key": dg.MetadataValue.json(table_key(Legs))}
    assert contract_key(legs) == ("carrier", "flight")
    assert contract_key({"dagster/column_schema": column_schema(Tails), "mesh/key": []}) == ("tailnum",)
    assert contract_key({"dagster/column_schema": column_schema(Counts)}) is None
    assert contract_key({}) is None


def test_every_product_of_the_workspace_records_its_key():
    workspace = MeshWorkspace.load(REPO / "workspace.yaml")
    assert workspace.products()
    for ref, (_, spec) in workspace.products().items():
        specs = specs_from_metadata(spec.metadata)
        columns = [column["name"] for column in specs]
        recorded = meta_value(spec.metadata, "mesh/key")
        key = contract_key(spec.metadata)
        assert key == (tuple(recorded) or key), ref  # Config.unique wins when declared
        assert key is None or set(key) <= set(columns), ref
        unique = [column["name"] for column in specs if column["unique"]]
        assert key is not None or not unique, ref


def test_a_missing_version_or_a_corrupt_file_is_refused(tmp_path):
    ports = Ports(tmp_path)
    side = ports.publish(flights(10))
    with pytest.raises(VersionNotFoundError, match="Cannot diff version 7"):
        diff_versions(side, PortSide(ports.uri, 7), key=None)
    data = next(name for name in os.listdir(ports.uri) if name.endswith(".parquet"))
    with open(os.path.join(ports.uri, data), "r+b") as handle:
        handle.seek(20)
        handle.write(b"\0\0\0\0")
    with pytest.raises(IntegrityError, match=re.escape(data) + ".*corrupt"):
        diff_versions(None, side, key=None)
