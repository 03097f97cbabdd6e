import random
import re
import shutil

import numpy as np
import pyarrow as pa
import pytest

from mesh_core import IntegrityError, OutputPort, ProductNotPublishedError, ProductRef, StorageError, VersionNotFoundError

REF = ProductRef("operations", "flights")


def publish(port, table, run_id="run1"):
    return port.publish(table, run_id=run_id, product_version="1.0.0", contract_fingerprint="f00d", access="public")


@pytest.fixture
def table():
    rng = np.random.default_rng(7)
    return pa.table({"flight": np.arange(5_000), "delay": rng.normal(size=5_000), "carrier": ["UA", "AA"] * 2_500})


def test_every_flipped_byte_in_a_data_file_is_detected_and_named(tmp_path, table):
    original = tmp_path / "original"
    published = publish(OutputPort(REF, str(original)), table)
    [name] = published.files
    size = (original / name).stat().st_size
    rng = random.Random(2013)
    offsets = sorted(rng.sample(range(size), 40))
    for offset in offsets:
        copy = tmp_path / f"flipped_{offset}"
        shutil.copytree(original, copy)
        data = bytearray((copy / name).read_bytes())
        data[offset] ^= 1 << rng.randrange(8)
        (copy / name).write_bytes(bytes(data))
        with pytest.raises(IntegrityError) as caught:
            OutputPort(REF, str(copy)).read(published.version)
        message = str(caught.value)
        assert f"{copy / name} of operations.flights version 0 is corrupt" in message, message
        assert "mesh materialize --domain operations" in message
        shutil.rmtree(copy)
    print(f"flipped one bit at {len(offsets)} offsets of a {size}-byte file: {len(offsets)} detected, 0 read")
    assert OutputPort(REF, str(original)).read(published.version).equals(table)


def test_commits_by_other_engines_are_not_published_versions(tmp_path, table):
    from deltalake import write_deltalake

    port = OutputPort(REF, str(tmp_path))
    publish(port, table)
    write_deltalake(str(tmp_path), table.slice(0, 3), mode="overwrite")  # e.g. a Spark job
    assert [v.version for v in port.history()] == [0] and port.latest().version == 0
    with pytest.raises(VersionNotFoundError, match=r"operations\.flights has no published version 1 .*`mesh history"):
        port.read(1)
    assert port.read(0).equals(table)


def test_a_log_that_names_other_files_than_the_publish_recorded_is_refused(tmp_path, table):
    port = OutputPort(REF, str(tmp_path))
    first, second = publish(port, table), publish(port, table.slice(0, 3), run_id="run2")
    commit = tmp_path / "_delta_log" / f"{second.version:020d}.json"
    [old_name], [new_name] = first.files, second.files
    commit.write_text(commit.read_text().replace(f'"add":{{"path":"{new_name}"', f'"add":{{"path":"{old_name}"'))
    with pytest.raises(IntegrityError, match=r"says version 1 holds .* but its publish recorded .*changed outside Mesh"):
        port.read(second.version)


def test_an_empty_or_garbled_commit_file_is_named_instead_of_renumbering_versions(tmp_path, table):
    port = OutputPort(REF, str(tmp_path))
    for run in ("run1", "run2", "run3"):
        publish(port, table.slice(0, 5), run_id=run)
    middle = tmp_path / "_delta_log" / f"{1:020d}.json"
    for damage in (b"", b"\x00\xff garbage"):
        middle.write_bytes(damage)
        with pytest.raises(StorageError, match=rf"Delta log of operations\.flights is damaged: the commit file of version 1, {middle}, "
                                                 r"is (empty|not valid JSON)"):
            port.history()
    assert port.latest().version == 2  # the newest commits are intact and still name themselves


def test_versions_that_do_not_exist_say_how_to_list_the_ones_that_do(tmp_path, table):
    port = OutputPort(REF, str(tmp_path))
    with pytest.raises(ProductNotPublishedError, match="no published version yet"):
        port.read(0)
    publish(port, table)
    with pytest.raises(VersionNotFoundError, match=r"operations\.flights has no published version 9 .*`mesh history operations\.flights`"):
        port.read(9)


def test_an_unusable_port_location_names_the_path_and_the_cause(tmp_path, table):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the port's folder should be")
    with pytest.raises(StorageError, match=rf"{blocker}/flights.*(Not a directory|File exists|exists)"):
        publish(OutputPort(REF, str(blocker / "flights")), table)
    assert blocker.read_text().startswith("a file")


def test_history_skips_retention_commits_and_reads_commit_metadata(tmp_path, table):
    port = OutputPort(REF, str(tmp_path))
    first = publish(port, table, run_id="run1")
    second = publish(port, table.slice(0, 10), run_id="run2")
    port.vacuum(keep=[second.version])
    history = port.history()
    assert [v.version for v in history] == [second.version, first.version]
    assert history[0].rows == 10 and history[0].run_id == "run2" and history[0].contract_fingerprint == "f00d"
    assert history[0].columns == ("flight", "delay", "carrier")
    with pytest.raises(VersionNotFoundError, match="removed by retention"):
        port.read(first.version)


@pytest.mark.parametrize("column, match", [
    (pa.array([2**63 + 5], pa.uint64()), r"without changing values in column 'c' \(Integer value 9223372036854775813 not in range"),
    (pa.array([1_000_000_001], pa.timestamp("ns")), r"without changing values in column 'c'"),
    (pa.array([5], pa.duration("s")), r"column 'c' is a duration\[s\], which Delta Lake cannot store"),
])
def test_values_delta_cannot_hold_exactly_are_refused_before_anything_is_written(tmp_path, column, match):
    from mesh_core import ProductOutputError

    with pytest.raises(ProductOutputError, match=match):
        publish(OutputPort(REF, str(tmp_path / "port")), pa.table({"c": column}))
    assert not (tmp_path / "port").exists()


def test_time_zones_categories_and_coarse_timestamps_round_trip(tmp_path):
    import pandas as pd
    from deltalake import DeltaTable

    frame = pd.DataFrame({
        "local": pd.to_datetime(["2013-01-01 05:15"]).tz_localize("America/New_York"),
        "seconds": pd.Series(pd.to_datetime(["2013-01-01 05:15:07"])).astype("datetime64[s]"),
        "carrier": pd.Categorical(["UA"]),
        "small": pd.Series([7], dtype="uint8"),
    })
    port = OutputPort(REF, str(tmp_path))
    published = publish(port, pa.Table.from_pandas(frame, preserve_index=False))
    back = port.read(published.version).to_pandas()
    assert back["local"].dt.tz.zone == "America/New_York" and back["local"].iloc[0] == frame["local"].iloc[0]
    assert back["seconds"].iloc[0] == frame["seconds"].iloc[0] and back["carrier"].dtype == "category"
    assert back["small"].tolist() == [7]
    # Other engines see a plain Delta table: instants in UTC, values not categories.
    declared = {field.name: field.type.type for field in DeltaTable(str(tmp_path)).schema().fields}
    assert declared == {"local": "timestamp", "seconds": "timestamp_ntz", "carrier": "string", "small": "long"}


def staged_names(folder):
    return sorted(p.name for p in folder.glob("part-*.parquet"))


def test_a_stream_staged_in_small_files_is_one_commit_that_reads_back_equal(tmp_path):
    from deltalake import DeltaTable

    rows = 60_000
    rng = np.random.default_rng(3)
    table = pa.table({"flight": np.arange(rows), "delay": rng.normal(size=rows),
                      "carrier": pa.array(["UA", "AA", "DL"] * (rows // 3)).dictionary_encode()})
    port = OutputPort(REF, str(tmp_path))
    stream = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=4_000))
    staged = port.stage(stream, access="public", target_file_size=64 * 2**10)
    assert len(staged.files) > 5 and staged.rows == rows and sum(staged.file_rows.values()) == rows
    assert max(staged.sizes.values()) <= 64 * 2**10 and staged_names(tmp_path) == sorted(staged.files)
    assert not port.exists()  # staged is not published
    published = port.commit(staged, run_id="run1", product_version="1.0.0", contract_fingerprint="f00d", access="public")
    assert published.version == 0 and published.rows == rows and dict(published.files) == dict(staged.files)
    assert [v.version for v in port.history()] == [0]  # one commit for every file
    assert port.read(0).combine_chunks().equals(table.combine_chunks())
    assert DeltaTable(str(tmp_path)).to_pyarrow_table().num_rows == rows  # any engine sees every file
    print(f"{rows} rows staged in {len(staged.files)} files of at most {max(staged.sizes.values())} bytes")


def test_a_stream_that_raises_midway_leaves_no_file_and_its_error_unchanged(tmp_path, table):
    port = OutputPort(REF, str(tmp_path))
    publish(port, table)
    before = staged_names(tmp_path)

    class Broken(Exception):
        pass

    def batches():
        yield from table.to_batches(max_chunksize=500)
        raise Broken("row 5001 does not convert")

    stream = pa.RecordBatchReader.from_batches(table.schema, batches())
    with pytest.raises(Broken, match="row 5001 does not convert"):
        port.stage(stream, access="public", target_file_size=8 * 2**10)
    assert staged_names(tmp_path) == before  # the ~20 files written before the error are gone
    assert port.latest().version == 0 and port.read(0).equals(table)


@pytest.mark.parametrize("schema, problem", [
    (pa.schema([]), "it has no columns"),
    (pa.schema([("a", pa.int64()), ("a", pa.int64())]), "column(s) ['a'] appear more than once"),
])
def test_a_stream_no_reader_could_open_is_refused_before_a_byte_is_written(tmp_path, schema, problem):
    from mesh_core import ProductOutputError

    stream = pa.RecordBatchReader.from_batches(schema, [])
    with pytest.raises(ProductOutputError, match=re.escape(f"operations.flights cannot be published: its output is not "
                                                           f"a table a reader can open: {problem}")):
        OutputPort(REF, str(tmp_path / "port")).stage(stream, access="public")
    assert not (tmp_path / "port").exists()


def test_a_table_of_ten_thousand_columns_is_staged_and_committed_in_seconds(tmp_path):
    """The schema checks are linear in the columns (each pyarrow Schema.names builds a new list: quadratic took ~33 s)."""
    import time

    table = pa.table({f"c{i}": [i, i] for i in range(10_000)})
    port = OutputPort(REF, str(tmp_path))
    started = time.perf_counter()
    staged = port.stage(table, access="public")
    published = port.commit(staged, run_id="run1", product_version="1.0.0", contract_fingerprint="", access="public")
    took = time.perf_counter() - started
    print(f"staged and committed 2 rows x 10,000 columns in {took:.1f} s")
    assert port.read(published.version).num_columns == 10_000
    assert took < 15


def test_an_empty_stream_stages_one_empty_file_that_keeps_the_schema(tmp_path):
    schema = pa.schema([("flight", pa.int64()), ("carrier", pa.string())])
    port = OutputPort(REF, str(tmp_path))
    staged = port.stage(pa.RecordBatchReader.from_batches(schema, []), access="public")
    assert len(staged.files) == 1 and staged.rows == 0
    published = port.commit(staged, run_id="run1", product_version="1.0.0", contract_fingerprint="", access="public")
    back = port.read(published.version)
    assert back.num_rows == 0 and back.schema.equals(schema)


def test_discard_deletes_staged_files_but_never_a_committed_one(tmp_path, table):
    port = OutputPort(REF, str(tmp_path))
    staged = port.stage(table, access="public")
    port.discard(staged)
    assert staged_names(tmp_path) == []
    committed = port.stage(table, access="public")
    port.commit(committed, run_id="run1", product_version="1.0.0", contract_fingerprint="", access="public")
    port.discard(committed)  # e.g. after a commit that raised yet landed
    assert staged_names(tmp_path) == sorted(committed.files) and port.read(0).equals(table)


def test_verified_paths_and_dataset_read_a_version_lazily_and_refuse_a_corrupt_file(tmp_path, table):
    port = OutputPort(REF, str(tmp_path))
    staged = port.stage(table, access="public", target_file_size=16 * 2**10)
    published = port.commit(staged, run_id="run1", product_version="1.0.0", contract_fingerprint="", access="public")
    cache = {}
    paths = port.verified_paths(published.version, cache=cache)
    assert paths == [str(tmp_path / name) for name in staged.files]
    dataset = port.dataset(published.version, ["carrier", "flight"], cache=cache)
    assert dataset.schema.names == ["carrier", "flight"]
    assert dataset.to_table().to_pandas().equals(table.select(["carrier", "flight"]).to_pandas())
    victim = tmp_path / list(staged.files)[-1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 1
    victim.write_bytes(bytes(data))
    assert port.verified_paths(published.version, cache=cache) == paths  # remembered: a run hashes a version once
    with pytest.raises(IntegrityError, match=rf"Data file {victim} of operations\.flights version 0 is corrupt"):
        port.verified_paths(published.version)
    with pytest.raises(IntegrityError, match="is corrupt"):
        port.dataset(published.version)


def test_verified_paths_hashes_a_file_in_chunks_never_whole_in_memory(tmp_path):
    import subprocess
    import sys

    size = 96 * 2**20  # several times the budget below: a whole-file read could not stay under it
    budget = 24 * 2**20
    random_bytes = np.random.default_rng(11).integers(0, 256, size=size, dtype=np.uint8)
    table = pa.table({"blob": pa.array([random_bytes[i:i + 2**20].tobytes() for i in range(0, size, 2**20)])})
    port = OutputPort(REF, str(tmp_path))
    published = publish(port, table)
    [name] = published.files
    path = tmp_path / name
    assert path.stat().st_size > size
    with open(path, "r+b") as handle:  # one flipped byte near the end: the whole file must be hashed to see it
        handle.seek(path.stat().st_size - 100)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 1]))
    # A fresh process: Arrow's memory pool high-water mark and tracemalloc's peak then measure the hashing alone.
    child = subprocess.run([sys.executable, "-c", (
        "import sys, tracemalloc, pyarrow as pa; from mesh_core import IntegrityError, OutputPort, ProductRef;"
        "port = OutputPort(ProductRef('operations', 'flights'), sys.argv[1]); port.latest();"
        "pool = pa.default_memory_pool(); before = pool.max_memory(); tracemalloc.start()\n"
        "try:\n port.verified_paths(0); print('not detected', 0, 0)\n"
        "except IntegrityError:\n print('detected', pool.max_memory() - before, tracemalloc.get_traced_memory()[1])"),
        str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    verdict, arrow_peak, python_peak = child.stdout.split()[-3:]
    print(f"verified a {path.stat().st_size}-byte file with one flipped byte: {verdict}; peak memory while hashing: "
          f"Arrow {int(arrow_peak)} bytes, Python {int(python_peak)} bytes (budget {budget})")
    assert verdict == "detected" and int(arrow_peak) + int(python_peak) < budget
