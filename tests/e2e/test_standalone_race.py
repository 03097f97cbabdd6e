"""Both domain repositories publish to the contract registry at the same moment, round after round,
through their own `mesh registry publish`: no entry is lost, each write lands once, seqs stay
contiguous. The counts are printed (how many publishes landed first, how many were judged again).
A folder registry here; the store's own races (tests/mesh_core/storage/test_registry.py) force a
collision every round, on a folder and on the S3 server. Its own module, so it runs beside
test_standalone_registry.py (each costs minutes: two virtualenvs, a `mesh` process per step).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.standalone_repos import CONSUMER, PRODUCER, Mesh, ok, report_timings, scaffold_domains

RACE_ROUNDS = 20


@pytest.fixture(scope="module", autouse=True)
def timings(request):
    yield
    report_timings(request, "test_standalone_race")


@pytest.fixture(scope="module")
def domains(wheel, tmp_path_factory) -> dict[str, Path]:
    return scaffold_domains(wheel, tmp_path_factory.mktemp("repositories"))


@pytest.fixture
def mesh(domains, tmp_path) -> Mesh:
    return Mesh(domains, str(tmp_path / "registry"), {}, tmp_path)


def _change(folder: Path, domain: str, round_: int) -> None:
    """A real change of the domain's entry: its product's description names the round."""
    products = folder / domain / "products.py"
    text = products.read_text()
    marker = "description=\"One row per"
    start = text.rindex(marker)
    end = text.index("\",\n", start)
    products.write_text(text[:start] + f"{marker} record (round {round_})." + text[end:])


def test_publishes_racing_from_both_repositories_lose_no_entry(mesh, capsys):
    mesh.publish_both()
    ok(mesh.run(PRODUCER, "contracts", "update"))  # its consumers' file, as its lint against the registry asks
    counts = {"rounds": RACE_ROUNDS, "first_try": 0, "retried": 0, "rounds_with_a_retry": 0, "seconds": 0.0}
    started = time.perf_counter()
    for round_ in range(1, RACE_ROUNDS + 1):
        base = mesh.state().seq
        for domain, folder in mesh.domains.items():
            _change(folder, domain, round_)
        processes = {domain: subprocess.Popen(
            [str(folder / ".venv" / "bin" / "mesh"), "registry", "publish", "-d", domain, "--json"], cwd=folder,
            env={**mesh.env, "MESH_PUBLISHED_BY": f"ci-{domain}"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True) for domain, folder in mesh.domains.items()}
        results = {}
        for domain, process in processes.items():
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, f"round {round_}, {domain}: {out}\n{err}"
            results[domain] = json.loads(out)
        for result in results.values():
            counts["first_try" if result["attempts"] == 1 else "retried"] += 1
        counts["rounds_with_a_retry"] += any(result["attempts"] > 1 for result in results.values())
        assert sorted(r["seq"] for r in results.values()) == [base + 1, base + 2], results
        state = mesh.state()
        assert state.seq == base + 2
        for domain in mesh.domains:
            products = state.domains[domain]["products"]
            assert any(f"(round {round_})" in item["description"] for item in products.values()), (round_, domain)
        records = mesh.history()
        assert [r["seq"] for r in records] == list(range(1, base + 3))  # contiguous, each write once
        assert sorted(r["domain"] for r in records[base:]) == sorted(mesh.domains)
    counts["seconds"] = round(time.perf_counter() - started, 1)
    with capsys.disabled():  # shown in every run, not only with -s
        print(f"\nrace of two repositories' mesh registry publish on a folder registry: {counts}")
    assert counts["first_try"] + counts["retried"] == 2 * RACE_ROUNDS
