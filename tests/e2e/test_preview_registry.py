"""`mesh preview --registry` in a domain's own repository: its consumers' code is elsewhere, their
registered expectations are in the contract registry.

On a temp git copy of the example mesh, materialized once for real: every domain's entry is written
to a registry folder, then a reader of the producer's flights republishes its entry with one more
expectation (minutes of delay stay within a day), as its own repository's CI would after a change.
The producer's committed consumers file is now behind the registry, so that check can only come
from the registry. A repository holding only the producer's domain (no folder of any consumer's)
previews a change of the producer against the real instance and ports.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mesh_core import Expectation, ProductRef
from tests.e2e.test_preview import real_state
from tests.support import commit_on_main, copy_repository, make_dagster_home, needs_example, run_mesh, workspace_domains

# The example's producer, and a column of it that a reader in another domain relies on (edited below).
pytestmark = needs_example("operations", "insights")
FLIGHTS, DELAY = ProductRef("operations", "flights"), "dep_delay"
# What the reader registers anew: a delay in minutes stays within a day.
NEW = Expectation("ExpectColumnValuesToBeBetween", column=DELAY, min_value=-120, max_value=24 * 60,
                  name="delay_within_a_day", description="a delay, in minutes, stays within a day")

def _publish(repo: Path, home: Path, registry: Path, domain: str) -> None:
    """`mesh registry publish` of one domain, as its repository's CI runs it."""
    done = run_mesh("registry", "publish", "-d", domain, "--by", f"{domain}-ci", "--registry", str(registry),
                    home=home, cwd=repo)
    assert done.returncode == 0, done.stdout + done.stderr


def _register_expectation(repo: Path, home: Path, registry: Path) -> dict:
    """A reader of FLIGHTS' DELAY in another domain adds the NEW expectation to that input in its code and
    publishes its domain again; its read record, as now registered."""
    from mesh_core.storage.registry import Registry

    state = Registry.at(registry).read()
    readers = [(domain, record) for domain, entry in state.domains.items() if domain != FLIGHTS.domain
               for record in entry["reads"] if record["product"] == str(FLIGHTS) and DELAY in (record["columns"] or ())]
    assert readers, f"no domain relies on {FLIGHTS}'s {DELAY} in the registry: the example changed"
    domain, read = readers[0]
    code = repo / "domains" / domain / "products.py"
    old = f'expectations=[Expectation("ExpectColumnValuesToNotBeNull", column="{DELAY}"'
    assert code.read_text().count(old) == 1, f"the example's {read['consumer']} code changed: {old!r} not found once"
    params = ", ".join(f"{key}={value!r}" for key, value in NEW.params.items())
    code.write_text(code.read_text().replace(old, f'expectations=[Expectation({NEW.type!r}, column={DELAY!r}, {params}, '
                                                  f'name={NEW.name!r}, description={NEW.description!r}), '
                                                  + old.removeprefix("expectations=[")))
    _publish(repo, home, registry, domain)
    [record] = [r for r in Registry.at(registry).read().domains[domain]["reads"]
                if (r["consumer"], r["input"]) == (read["consumer"], read["input"])]
    assert NEW.name in {item["name"] for item in record["expectations"]}
    return record


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    """The real mesh (materialized), the registry, and the producer's one-domain repository."""
    root = tmp_path_factory.mktemp("preview_registry")
    repo = copy_repository(root / "mesh")
    commit_on_main(repo)
    home = make_dagster_home(root)
    done = run_mesh("materialize", home=home, cwd=repo)
    assert done.returncode == 0, done.stdout + done.stderr
    registry = root / "registry"
    for domain in workspace_domains(repo / "workspace.yaml"):
        _publish(repo, home, registry, domain)
    reader = _register_expectation(repo, home, registry)
    domains = json.loads(sorted((registry / "log").glob("*.json"))[-1].read_text())["domains"]
    # The readers that registered expectations on the producer's product, from the registry.
    relied = [record for entry in domains.values() for record in entry["reads"]
              if record["product"] == str(FLIGHTS) and record["expectations"]
              and ProductRef.parse(record["consumer"]).domain != FLIGHTS.domain]
    producer = _producer_repository(repo, root / FLIGHTS.domain, FLIGHTS.domain)
    return {"repo": repo, "home": home, "registry": registry, "domains": domains, "relied": relied,
            "reader": reader, "producer": producer}


def _producer_repository(repo: Path, dest: Path, domain: str) -> Path:
    """A repository of `domain` alone: its folder (code, contracts, snapshots and committed consumers
    file), the mesh's governance, a workspace listing it only."""
    (dest / "domains").mkdir(parents=True)
    shutil.copytree(repo / "domains" / domain, dest / "domains" / domain,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(repo / "domains" / "__init__.py", dest / "domains" / "__init__.py")
    shutil.copy(repo / "governance.yaml", dest / "governance.yaml")
    [entry] = [item for item in yaml.safe_load((repo / "workspace.yaml").read_text())["load_from"]
               if item["python_module"]["location_name"] == domain]
    (dest / "workspace.yaml").write_text(yaml.safe_dump({"load_from": [entry]}))
    return commit_on_main(dest)


@pytest.fixture
def edit(mesh):
    """Edit the producer's code in its repository; restored after, the real mesh checked unchanged."""
    path = mesh["producer"] / "domains" / FLIGHTS.domain / "products.py"
    before, original = real_state(mesh["home"]), path.read_text()

    def apply(old: str, new: str) -> None:
        assert old in original, f"the example's {FLIGHTS} code changed: {old!r} not found"
        path.write_text(original.replace(old, new, 1))

    yield apply
    path.write_text(original)
    assert real_state(mesh["home"]) == before, "a preview changed the real ports, stores or instance"


def preview(mesh, *args: str) -> tuple[subprocess.CompletedProcess, str]:
    done = run_mesh("preview", "--registry", str(mesh["registry"]), *args, home=mesh["home"], cwd=mesh["producer"])
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return done, (mesh["producer"].parent / "comment.md").read_text() if "--markdown" in args else ""


def remote_readers(mesh, ref: ProductRef) -> dict[str, list[str]]:
    """{consumer: owners} of every registry domain other than the producer's that reads `ref`."""
    return {r["consumer"]: r["owners"] for domain, entry in mesh["domains"].items() if domain != ref.domain
            for r in entry["reads"] if r["product"] == str(ref)}


def test_a_consumers_registered_expectation_fails_in_the_producers_own_repository_and_exits_1(mesh, edit):
    producer, reader = mesh["producer"], mesh["reader"]
    consumers = {ProductRef.parse(r["consumer"]).domain for r in mesh["relied"]}
    assert not any((producer / "domains" / domain).exists() for domain in consumers)  # no consumer code here
    committed = (producer / "domains" / FLIGHTS.domain / "snapshots" / f"{FLIGHTS.domain}.consumers.yaml").read_text()
    assert NEW.name not in committed  # the producer's file is behind: only the registry knows the expectation
    # A unit change with the schema kept: the delay in seconds, still a float, null exactly when cancelled.
    edit(f'{DELAY}="{DELAY}",', f'{DELAY}=pl.col("{DELAY}") * 60,')
    markdown = mesh["producer"].parent / "comment.md"
    done, comment = preview(mesh, "--json", "--markdown", str(markdown))
    assert done.returncode == 1, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["changed"] == [str(FLIGHTS)]
    # Only local products ran: the producer's domain is the only one with code here.
    assert {ProductRef.parse(p["product"]).domain for p in result["products"]} == {FLIGHTS.domain}
    # The one check newly failing is the reader's registered expectation, named with the reader and its owners.
    [check] = result["newly_failing"]
    assert check["product"] == str(FLIGHTS) and check["check"].endswith(f"__{reader['input']}__{NEW.name}")
    assert (check["consumer"], check["owners"], check["after"]) == (reader["consumer"], reader["owners"], False)
    # Every reader the registry knows is listed, with its owners: affected, not previewed here.
    listed = {c["consumer"]: c for c in result["remote_consumers"]}
    assert {name: c["owners"] for name, c in listed.items()} == remote_readers(mesh, FLIGHTS)
    assert all(not c["previewed"] and "not previewed here (code in its own repository)" in c["note"]
               for c in listed.values())
    assert "its registered expectations ran" in listed[reader["consumer"]]["note"]
    states = {c["check"].rsplit("__", 1)[1]: c["state"] for c in listed[reader["consumer"]]["checks"]}
    assert states[NEW.name] == "newly failing" and len(states) == len(reader["expectations"])
    assert any("behind the registry" in note and reader["consumer"] in note for note in result["notes"])
    assert reader["consumer"] in comment and check["check"] in comment and all(o in comment for o in reader["owners"])
    assert "Affected, not previewed here" in comment

    text = run_mesh("preview", "--registry", str(mesh["registry"]), home=mesh["home"], cwd=producer)
    assert text.returncode == 1, text.stdout + text.stderr
    assert f"NEWLY FAILING: {FLIGHTS} {check['check']}" in text.stdout and reader["consumer"] in text.stdout
    print(text.stdout)  # the closing note pastes this report

    # Without the registry, the producer's own files know nothing of the new expectation: it passes.
    alone = run_mesh("preview", "--json", home=mesh["home"], cwd=producer)
    assert alone.returncode == 0 and json.loads(alone.stdout)["newly_failing"] == [], alone.stdout + alone.stderr


def test_a_harmless_change_exits_0_and_lists_the_remote_consumers_as_affected_not_previewed(mesh, edit):
    edit('    raw = scan_zipped_csv(', '    # Read the flights of 2013 (a comment: no data changes).\n    raw = scan_zipped_csv(')
    done, _ = preview(mesh, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["changed"] == [str(FLIGHTS)] and result["newly_failing"] == []
    for item in result["products"]:
        assert (item["added"], item["removed"], item["changed"]) == (0, 0, 0), item
    listed = {c["consumer"]: c for c in result["remote_consumers"]}
    assert {name: c["owners"] for name, c in listed.items()} == remote_readers(mesh, FLIGHTS)
    for relied in mesh["relied"]:  # the registered expectations ran, and pass (as today, or for the first time)
        assert [c["state"] for c in listed[relied["consumer"]]["checks"]] == ["passing"] * len(relied["expectations"])
    [flights] = [p for p in result["products"] if p["product"] == str(FLIGHTS)]
    assert {c["product"] for c in flights["consumers"] if c["remote"]} == set(remote_readers(mesh, FLIGHTS))


def test_a_product_known_from_the_registry_only_cannot_be_named(mesh):
    reader = next(iter(remote_readers(mesh, FLIGHTS)))
    done = run_mesh("preview", reader, "--registry", str(mesh["registry"]), home=mesh["home"], cwd=mesh["producer"])
    assert done.returncode == 2 and "its code is not here to run" in done.stderr, done.stdout + done.stderr
