"""`mesh preview` on a temp git copy of the example mesh, materialized once: the issue's scenarios.

The base is the copy's first commit on main; each test edits the working tree (as a producer's branch
would) and runs the real `mesh preview` against the real instance and ports of the copy, which must
come out of every preview unchanged.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from mesh_core import DomainStorage, ProductRef
from tests.support import commit_on_main, copy_repository, make_dagster_home, needs_example, run_mesh

pytestmark = needs_example("operations", "insights")
FLIGHTS = ProductRef("operations", "flights")
PRODUCTS = Path("domains") / "operations" / "products.py"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    """(repository, DAGSTER_HOME) of the example mesh, committed on main and materialized for real."""
    root = tmp_path_factory.mktemp("preview")
    repo = root / "mesh"
    repo.mkdir()
    copy_repository(repo)
    commit_on_main(repo)
    home = make_dagster_home(root)
    done = run_mesh("materialize", home=home, cwd=repo)
    assert done.returncode == 0, done.stdout + done.stderr
    return repo, home


@pytest.fixture
def edit(mesh):
    """Edit the flights product's code in the working tree; the real mesh is checked unchanged after."""
    repo, home = mesh
    before = real_state(home)
    original = (repo / PRODUCTS).read_text()

    def apply(old: str, new: str) -> None:
        text = (repo / PRODUCTS).read_text()
        assert old in text, f"the example's flights code changed: {old!r} not found"
        (repo / PRODUCTS).write_text(text.replace(old, new, 1))

    yield apply
    (repo / PRODUCTS).write_text(original)
    assert real_state(home) == before, "a preview changed the real ports, stores or instance"


def real_state(home: Path) -> dict:
    """Every file of the real ports (data files, _delta_log) and DuckDB stores with its SHA-256, the
    port versions, and the instance's run count and latest event id."""
    files = {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted((home / "data").rglob("*")) if p.is_file() and not p.name.endswith(".lock")}
    assert any("_delta_log" in name for name in files) and any(name.endswith("warehouse.duckdb") for name in files)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return {"files": files, "runs": len(instance.get_runs()),
                "latest_event": instance.event_log_storage.get_maximum_record_id()}


def preview(mesh, *args: str) -> tuple[subprocess.CompletedProcess, dict, str]:
    repo, home = mesh
    markdown = repo.parent / "comment.md"
    done = run_mesh("preview", "--json", "--markdown", str(markdown), *args, home=home, cwd=repo)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return done, json.loads(done.stdout), markdown.read_text()


def downstream_of(repo: Path, ref: ProductRef) -> set[str]:
    from mesh_core.governance.workspace import MeshWorkspace
    from mesh_core.operate.preview import downstream

    return {str(r) for r in downstream(MeshWorkspace.load(repo / "workspace.yaml"), [ref])} - {str(ref)}


def by_product(result: dict) -> dict[str, dict]:
    return {item["product"]: item for item in result["products"]}


def test_dropping_diverted_flights_names_the_rows_removed_and_the_changed_insights(mesh, edit):
    repo, home = mesh
    published = DomainStorage(home / "data", "operations").read(FLIGHTS, columns=["status"])
    diverted = int((published["status"] == "diverted").sum())
    assert diverted > 0
    edit('    return raw.select(', '    frame = raw.select(')
    (repo / PRODUCTS).write_text((repo / PRODUCTS).read_text().rstrip("\n")
                                 + '\n    return frame.filter(pl.col("status") != "diverted")\n')
    done, result, markdown = preview(mesh)
    assert done.returncode == 0, done.stdout + done.stderr
    products = by_product(result)
    assert result["changed"] == [str(FLIGHTS)]
    flights = products[str(FLIGHTS)]
    assert (flights["removed"], flights["added"], flights["changed"]) == (diverted, 0, 0)
    assert flights["rows_after"] == flights["rows_before"] - diverted
    downstream = downstream_of(repo, FLIGHTS)
    assert downstream and set(products) == downstream | {str(FLIGHTS)}
    for name in downstream:  # every consumer's data changes: counts of diverted flights, delays, flights per group
        item = products[name]
        assert item["status"] == "published"
        assert item["added"] + item["removed"] + item["changed"] > 0, item
    assert str(FLIGHTS) in markdown and all(name in markdown for name in downstream)


def test_renamed_codes_with_the_schema_kept_fail_a_consumer_check_and_exit_1(mesh, edit):
    # Carrier codes in lower case: still two letters (the flights contract holds), but no consumer joins them any more.
    edit('"carrier", "flight",', 'pl.col("carrier").str.to_lowercase(), "flight",')
    done, result, markdown = preview(mesh)
    assert done.returncode == 1, done.stdout + done.stderr
    consumer = by_product(result)["insights.carrier_on_time_performance"]
    assert consumer["status"] == "blocked"
    check = "column_values_to_not_be_null__airline_name"
    [failing] = [item for item in consumer["checks"] if item["check"] == check]
    assert (failing["state"], failing["before"], failing["after"]) == ("newly failing", True, False)
    assert failing["owners"] == ["team:network-insights"]
    assert {(item["product"], item["check"]) for item in result["newly_failing"]} == {(consumer["product"], check)}
    assert "insights.carrier_on_time_performance" in markdown and check in markdown
    assert "team:network-insights" in markdown


def test_a_no_op_change_gives_empty_diffs(mesh, edit):
    edit('    raw = scan_zipped_csv(', '    # Read the flights of 2013 (a comment: no data changes).\n    raw = scan_zipped_csv(')
    done, result, _ = preview(mesh)
    assert done.returncode == 0, done.stdout + done.stderr
    assert result["changed"] == [str(FLIGHTS)]
    for item in result["products"]:
        assert item["status"] == "published"
        assert (item["added"], item["removed"], item["changed"]) == (0, 0, 0), item
        assert item["rows_before"] == item["rows_after"] and not item["columns"], item


def test_nothing_changed_runs_nothing_and_a_bad_base_is_a_usage_error(mesh, edit):
    done, result, _ = preview(mesh)
    assert done.returncode == 0 and result["products"] == [] and result["changed"] == []
    bad = run_mesh("preview", "--base", "no-such-branch", home=mesh[1], cwd=mesh[0])
    assert bad.returncode == 2 and "'no-such-branch' is not a commit" in bad.stderr and "--base" in bad.stderr
