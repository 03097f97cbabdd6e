"""The contract registry between domain repositories that never see each other's code.

Two repositories written by `mesh new domain --standalone` (tests/e2e/standalone_repos.py), each
with its own virtualenv from its own lock (the consumer on another numpy), and a registry that is a
folder, or a bucket of the S3-protocol server: every command runs from a domain's own `.venv/bin/mesh`
in the domain's own folder, as its CI would.

1. The producer publishes; the consumer, with none of the producer's code, lints clean against the
   registry, writes no snapshot of the producer's, publishes its reads and materializes from the
   producer's port in the shared Dagster home and data folder.
2. The producer learns its consumer's expectations from the registry, runs them in its write-audit-
   publish (warn, or error with governance.yaml), and cannot drop a column the consumer relies on:
   lint and publish name the consumer and its owners, the registry is unchanged.
3. (test_standalone_race.py) Both repositories publish at the same moment, round after round.
4. A corrupt and an unreachable registry: exit 2, one line naming the URI.

Slow: the scaffolding of test_standalone.py (two locks, two virtualenvs), then one `mesh` process
per step.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.servers import s3_server
from tests.e2e.standalone_repos import (CONSUMER, OTHER_NUMPY, PRODUCER, Mesh, numpy_of, ok, report_timings,
                                        scaffold_domains)
from tests.support import free_port

BUCKET = "registries"
EXPECTATION_CHECK = f"{CONSUMER}__seen__source__names_are_words"  # consumers.py's name of its check at the producer


@pytest.fixture(scope="module", autouse=True)
def timings(request):
    yield
    report_timings(request, "test_standalone_registry")


@pytest.fixture(scope="module")
def domains(wheel, tmp_path_factory) -> dict[str, Path]:
    return scaffold_domains(wheel, tmp_path_factory.mktemp("repositories"))


@pytest.fixture(autouse=True)
def pristine(domains, tmp_path):
    """Each test starts from the repositories as scaffold_domains left them (tests change their code)."""
    saved = tmp_path / "pristine"
    for name, folder in domains.items():
        shutil.copytree(folder / name, saved / name, ignore=shutil.ignore_patterns("__pycache__"))
    yield
    for name, folder in domains.items():
        shutil.rmtree(folder / name)
        shutil.copytree(saved / name, folder / name)
        (folder / "governance.yaml").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def s3():
    with s3_server(bucket=BUCKET) as (env, client):
        yield {k: v for k, v in env.items() if k != "MESH_PORTS_URI"}, client  # the ports stay in MESH_DATA_DIR


@pytest.fixture(params=["folder", "s3"])
def mesh(request, domains, tmp_path) -> Mesh:
    """On a folder and on the S3 server: the consumer's whole path. The producer's, the race (its own
    module) and the store's races (tests/mesh_core/storage) cover S3 otherwise; each module here costs minutes."""
    if request.param == "folder":
        return Mesh(domains, str(tmp_path / "registry"), {}, tmp_path)
    env, _ = request.getfixturevalue("s3")
    return Mesh(domains, f"s3://{BUCKET}/{tmp_path.name}", env, tmp_path)


@pytest.fixture
def folder_mesh(domains, tmp_path) -> Mesh:
    return Mesh(domains, str(tmp_path / "registry"), {}, tmp_path)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path} no longer holds {old!r}"
    path.write_text(text.replace(old, new))


def imports(folder: Path, module: str) -> bool:
    done = subprocess.run([str(folder / ".venv" / "bin" / "python"), "-c", f"import {module}"], cwd=folder,
                          capture_output=True, text=True)
    return done.returncode == 0


def test_each_repository_has_only_its_own_code(domains):
    producer, consumer = domains[PRODUCER], domains[CONSUMER]
    assert numpy_of(consumer) == OTHER_NUMPY != numpy_of(producer)
    assert not imports(consumer, PRODUCER) and not (consumer / PRODUCER).exists()
    assert not imports(producer, CONSUMER) and not (producer / CONSUMER).exists()


def test_a_consumer_lints_publishes_and_materializes_from_the_registry_alone(mesh):
    consumer = mesh.domains[CONSUMER]
    # Without a registry, the consumer's input is nowhere: that is what the registry is for.
    alone = mesh.run(CONSUMER, "lint", env={"MESH_REGISTRY_URI": ""})
    assert alone.returncode == 1 and f"{PRODUCER}.records" in alone.stdout, alone.stdout + alone.stderr

    published = ok(mesh.make(PRODUCER, "publish"))
    assert f"{PRODUCER} published to {mesh.uri} as entry 1 by ci-{PRODUCER}" in published.stdout, published.stdout

    lint = ok(mesh.run(CONSUMER, "lint", "--registry", mesh.uri))
    assert "0 violation(s)" in lint.stdout, lint.stdout
    # The scaffold's own tests (which run `mesh lint`) pass with $MESH_REGISTRY_URI set, as the README says.
    ok(mesh.make(CONSUMER, "test"))

    snapshots = consumer / CONSUMER / "snapshots"
    files = lambda: {p.relative_to(consumer): p.read_bytes() for p in consumer.rglob("*")  # noqa: E731
                     if p.is_file() and ".venv" not in p.parts and "__pycache__" not in p.parts}
    before = files()
    ok(mesh.run(CONSUMER, "contracts", "update", "--registry", mesh.uri))
    written = {path for path, data in files().items() if before.get(path) != data}
    # Only the consumer's own snapshots (its product is a draft: maybe none); nothing of the producer's.
    assert all(path.parent == Path(CONSUMER, "snapshots") and path.name.startswith(f"{CONSUMER}.") for path in written), written
    assert not any(PRODUCER in path.read_text() for path in snapshots.glob("*")), sorted(snapshots.glob("*"))

    done = ok(mesh.make(CONSUMER, "publish"))
    assert f"{CONSUMER} published to {mesh.uri} as entry 2" in done.stdout, done.stdout
    shown = json.loads(ok(mesh.run(PRODUCER, "registry", "show", CONSUMER, "--json")).stdout)
    assert shown == mesh.state().domains[CONSUMER]
    [read] = shown["reads"]
    assert read["consumer"] == f"{CONSUMER}.seen" and read["product"] == f"{PRODUCER}.records"
    assert read["columns"] == ["record_id", "name"] and read["owners"] == [f"team:{CONSUMER}"]
    assert [e["name"] for e in read["expectations"]] == ["names_are_words"]

    ok(mesh.make(PRODUCER, "materialize"))
    run = mesh.run(CONSUMER, "materialize", "--registry", mesh.uri)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"ok      {CONSUMER}.seen: published 3 rows" in run.stdout, run.stdout
    assert f"{PRODUCER}:" not in run.stdout  # the producer is the registry's: never run here
    seen = ok(subprocess.run(
        [str(consumer / ".venv" / "bin" / "python"), "-c",
         "from mesh_core import MeshIOManager, ProductRef; "
         f"print(MeshIOManager(domain='{CONSUMER}').storage().read(ProductRef('{CONSUMER}', 'seen')).to_json())"],
        cwd=consumer, env=mesh.env, capture_output=True, text=True))
    table = json.loads(seen.stdout.strip().splitlines()[-1])
    assert set(table["numpy_version"].values()) == {OTHER_NUMPY}
    assert sorted(table["record_id"].values()) == [1, 2, 3]


def test_the_producer_runs_its_consumers_expectations_and_cannot_drop_what_they_rely_on(folder_mesh):
    mesh = folder_mesh
    producer = mesh.domains[PRODUCER]
    mesh.publish_both()
    ok(mesh.run(PRODUCER, "contracts", "update", "--registry", mesh.uri))
    consumers = yaml.safe_load((producer / PRODUCER / "snapshots" / f"{PRODUCER}.consumers.yaml").read_text())
    [reader] = consumers["records"]
    assert reader["consumer"] == f"{CONSUMER}.seen" and reader["owners"] == [f"team:{CONSUMER}"]
    assert [e["name"] for e in reader["expectations"]] == ["names_are_words"]

    # Data that breaks the consumer's expectation: the producer's own audit says so, as the consumer's.
    data = producer / PRODUCER / "data" / "records.csv"
    rows = data.read_text()
    data.write_text(rows.replace("second", "second-tide"))
    assert data.read_text() != rows
    warned = mesh.make(PRODUCER, "materialize")
    assert warned.returncode == 0, warned.stdout + warned.stderr
    assert f"ok      {PRODUCER}.records: published 3 rows" in warned.stdout, warned.stdout
    assert f"(warnings: {EXPECTATION_CHECK})" in warned.stdout, warned.stdout
    (producer / "governance.yaml").write_text("consumer_expectations: error\n")
    blocked = mesh.run(PRODUCER, "materialize")  # `mesh`'s own exit code (make's is 2 on any failure)
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert f"BLOCKED {PRODUCER}.records" in blocked.stdout and EXPECTATION_CHECK in blocked.stdout, blocked.stdout
    assert f"{CONSUMER}.seen" in blocked.stdout, blocked.stdout  # attributed to the consumer
    (producer / "governance.yaml").unlink()
    data.write_text(rows)

    # The producer drops a column the consumer relies on, with the consumer's code nowhere here.
    seq = mesh.state().seq
    contracts = producer / PRODUCER / "contracts.py"
    kept = [line for line in contracts.read_text().splitlines(keepends=True) if not line.lstrip().startswith("name:")]
    contracts.write_text("".join(kept))
    table = [line.split(",") for line in rows.splitlines()]
    column = table[0].index("name")
    data.write_text("".join(",".join(c for i, c in enumerate(row) if i != column) + "\n" for row in table))
    lint = mesh.run(PRODUCER, "lint", "--registry", mesh.uri)
    assert lint.returncode == 1, lint.stdout + lint.stderr
    assert f"{CONSUMER}.seen" in lint.stdout and f"team:{CONSUMER}" in lint.stdout, lint.stdout
    refused = mesh.run(PRODUCER, "registry", "publish", "-d", PRODUCER)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"{CONSUMER}.seen" in refused.stdout and f"team:{CONSUMER}" in refused.stdout, refused.stdout
    assert f"{PRODUCER} was not published to {mesh.uri} (entry {seq} stays current)" in refused.stdout
    assert mesh.state().seq == seq and len(mesh.history()) == seq


def test_a_corrupt_or_unreachable_registry_is_one_line_naming_it(domains, s3, tmp_path):
    folder = Mesh(domains, str(tmp_path / "registry"), {}, tmp_path / "folder")
    env, client = s3
    bucket = Mesh(domains, f"s3://{BUCKET}/corrupt", env, tmp_path / "s3")
    for mesh in (folder, bucket):
        ok(mesh.make(PRODUCER, "publish"))
    (tmp_path / "registry" / "log" / f"{1:012d}.json").write_text("{not json")
    client.put_object(Bucket=BUCKET, Key=f"corrupt/log/{1:012d}.json", Body=b"\x00garbage")
    closed = free_port()  # nothing listens there
    unreachable = Mesh(domains, f"s3://{BUCKET}/anywhere", {**env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed}"},
                       tmp_path / "unreachable")
    for mesh in (folder, bucket, unreachable):
        for args in (("lint", "--registry", mesh.uri), ("registry", "publish", "-d", PRODUCER)):
            done = mesh.run(PRODUCER, *args)
            lines = done.stderr.strip().splitlines()
            assert done.returncode == 2 and len(lines) == 1, f"{args}: {done.stdout}\n{done.stderr}"
            assert mesh.uri in lines[0] and lines[0].startswith("mesh: error: "), lines
