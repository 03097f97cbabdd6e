import random
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


def test_a_file_not_written_by_mesh_is_refused(tmp_path, table):
    from deltalake import write_deltalake

    write_deltalake(str(tmp_path), table)
    with pytest.raises(IntegrityError, match=r"has no checksum in its name: it was not written by Mesh"):
        OutputPort(REF, str(tmp_path)).read(0)


def test_versions_that_do_not_exist_say_how_to_list_the_ones_that_do(tmp_path, table):
    port = OutputPort(REF, str(tmp_path))
    with pytest.raises(ProductNotPublishedError, match="no published version yet"):
        port.read(0)
    publish(port, table)
    with pytest.raises(VersionNotFoundError, match=r"operations\.flights has no version 9 .*`mesh history operations\.flights`"):
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
