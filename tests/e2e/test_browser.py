"""The README's UI tour in a real headless Chromium against `make run`'s server, and the same facts
through Dagster's GraphQL API, which is what scripts use.

The server is `mesh dev` on the example mesh (temp DAGSTER_HOME, free 127.0.0.1 port). Every
expectation comes from the workspace and the instance: which product reads other domains, its
owners and columns, which of its warning checks failed and by how many rows. Screenshots go to
$MESH_TEST_ARTIFACTS/browser (else a temp folder, printed); with MESH_UPDATE_DOCS_SCREENSHOTS=1 the
lineage screenshot also replaces docs/images/lineage.png.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from mesh_core.declare.metadata import meta_value
from mesh_core.governance.workspace import MeshWorkspace
from tests.support import (EXAMPLE_DOMAINS, MESH, REPO, free_port, graphql, make_dagster_home, mesh_env, stop, wait_for_locations,
                           workspace_domains)

pytestmark = pytest.mark.workspace

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As this machine's probe starts it: no sandbox as root, and no background calls to a closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PAGE_TIMEOUT_MS = 60_000

NODES = """{ assetNodes { assetKey { path } groupName dependencyKeys { path }
  owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
  assetChecksOrError { ... on AssetChecks { checks { name blocking executionForLatestMaterialization {
    status evaluation { severity success metadataEntries { label ... on IntMetadataEntry { intValue } } } } } } } } }"""
RUNS = """{ runsOrError { ... on Runs { results { runId status pipelineName assetSelection { path }
  tags { key value } } } } }"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    home, port = make_dagster_home(root), free_port()
    log_path = root / "dev.log"
    with open(log_path, "w+") as log:
        process = subprocess.Popen([str(MESH), "dev", "--host", "127.0.0.1", "--port", str(port)], cwd=REPO,
                                   env=mesh_env(home), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_locations(port, process, log_path)
            yield port, home
        finally:
            stop(process)


@pytest.fixture(scope="module")
def workspace():
    return MeshWorkspace.load(REPO / "workspace.yaml")


@pytest.fixture(scope="module")
def nodes(server):
    return {tuple(n["assetKey"]["path"]): n for n in graphql(server[0], NODES)["assetNodes"]}


@pytest.fixture(scope="module")
def consumer(nodes, workspace):
    """A product that reads another domain's products and has a warning check that failed."""
    for ref, (_, spec) in sorted(workspace.products().items(), key=lambda item: str(item[0])):
        node = nodes[tuple(ref.asset_key.path)]
        upstream = [dep.asset_key for dep in spec.deps if dep.asset_key.path[0] != ref.domain]
        failed = [c for c in node["assetChecksOrError"]["checks"] if not c["blocking"]
                  and (c["executionForLatestMaterialization"] or {}).get("status") == "FAILED"]
        if upstream and failed:
            return ref, spec, upstream, failed[0]
    if set(EXAMPLE_DOMAINS) <= set(workspace_domains()):
        pytest.fail("The example mesh has no cross-domain product with a failed warning check to show.")
    pytest.skip("this mesh has no cross-domain product with a failed warning check to show (the example mesh's "
                "domains, which have one, were removed)")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    folder = Path(os.environ["MESH_TEST_ARTIFACTS"]) / "browser" if os.environ.get("MESH_TEST_ARTIFACTS") \
        else tmp_path_factory.mktemp("browser-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Chromium is not installed: apt-get install chromium (.ci/run does)."
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def first_visit(browser, server):
    """Dagster's first-visit pop-up ("Join the Dagster community") shows once per instance: skip it."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{server[0]}/runs", wait_until="networkidle")
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=20_000)
        skip.click()
        page.wait_for_load_state("networkidle")
    except Exception:  # noqa: BLE001 - not shown (already seen): nothing to dismiss
        pass
    context.close()


@pytest.fixture
def page(browser, server, first_visit):
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    yield _Page(page, f"http://127.0.0.1:{server[0]}")
    context.close()


class _Page:
    def __init__(self, page, base: str):
        self.page, self.base = page, base

    def open(self, path: str) -> str:
        self.page.goto(self.base + path, wait_until="networkidle")
        return self.text()

    def text(self) -> str:
        return self.page.inner_text("body")

    def wait_for(self, *texts: str) -> str:
        """The page's text once every one of `texts` shows in it (whitespace-insensitive); fails naming the missing."""
        deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
        while True:
            text = self.text()
            flat = " ".join(text.split())
            missing = [t for t in texts if " ".join(t.split()) not in flat]
            if not missing:
                return text
            assert time.monotonic() < deadline, f"never shown on {self.page.url}: {missing}"
            self.page.wait_for_timeout(500)

    def shot(self, folder: Path, name: str) -> Path:
        path = folder / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


# -- the same facts through GraphQL ---------------------------------------------------------------

def test_graphql_serves_every_product_with_its_domain_owners_inputs_and_checks(nodes, workspace, server):
    checks = {}
    for location in workspace.locations:
        for key in location.defs.resolve_asset_graph().asset_check_keys:
            checks.setdefault(tuple(key.asset_key.path), set()).add(key.name)
    for ref, (location, spec) in workspace.products().items():
        node = nodes[tuple(ref.asset_key.path)]
        assert node["groupName"] == location.name
        assert {o.get("team") or o.get("email") for o in node["owners"]} == {o.removeprefix("team:") for o in spec.owners}
        assert {tuple(d["path"]) for d in node["dependencyKeys"]} == {tuple(dep.asset_key.path) for dep in spec.deps}
        assert {c["name"] for c in node["assetChecksOrError"]["checks"]} == checks[tuple(ref.asset_key.path)]


def test_graphql_failed_warning_carries_the_unexpected_count_the_instance_recorded(consumer, server, monkeypatch):
    ref, _, _, check = consumer
    evaluation = check["executionForLatestMaterialization"]["evaluation"]
    assert evaluation["severity"] == "WARN" and evaluation["success"] is False
    shown = {m["label"]: m.get("intValue") for m in evaluation["metadataEntries"]}["unexpected_count"]
    monkeypatch.setenv("DAGSTER_HOME", str(server[1]))
    with dg.DagsterInstance.get() as instance:
        records = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(ref.asset_key, check["name"]), limit=1)
        recorded = records[0].event.dagster_event.event_specific_data.metadata["unexpected_count"].value
    assert shown == recorded > 0


# -- in the browser -------------------------------------------------------------------------------

def test_global_lineage_shows_every_domain_and_product(page, workspace, artifacts):
    browser_page = page.page
    browser_page.set_viewport_size({"width": 1700, "height": 1700})
    page.open("/asset-groups")
    page.wait_for(*(location.name for location in workspace.locations))
    browser_page.locator("button:has([aria-label='settings'])").last.click()  # the graph's settings menu
    browser_page.get_by_role("menuitem", name="Expand all groups").click()
    browser_page.keyboard.press("Escape")
    browser_page.reload(wait_until="networkidle")  # the expanded layout, laid out afresh
    browser_page.get_by_text("Hide navigation").click()
    browser_page.locator("button:has([aria-label='panel_show_right'])").last.click()  # hide the group tree
    for _ in range(6):
        browser_page.locator("button:has([aria-label='zoom_out'])").click()
    browser_page.mouse.move(850, 700)
    browser_page.mouse.down()
    browser_page.mouse.move(950, 760, steps=5)  # pan the whole graph into view
    browser_page.mouse.up()
    browser_page.mouse.move(5, 5)  # no node highlighted under the pointer
    page.wait_for("Global asset lineage")  # every domain was listed above
    shot = page.shot(artifacts, "global_lineage")
    if os.environ.get("MESH_UPDATE_DOCS_SCREENSHOTS") == "1":
        target = REPO / "docs" / "images" / "lineage.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target)
    # Each domain's products, in its group's asset list: a large mesh does not fit one screen, and
    # the graph draws only the nodes in view.
    for location in workspace.locations:
        page.open(f"/locations/__repository__@{location.name}/asset-groups/{location.name}/list")
        page.wait_for(*(ref.product for ref in location.products))


def test_consumer_page_shows_owners_domain_and_column_schema(page, consumer, artifacts):
    ref, spec, _, _ = consumer
    page.open("/assets/" + "/".join(ref.asset_key.path))
    columns = meta_value(spec.metadata, "dagster/column_schema").columns
    page.wait_for("Columns", spec.description, f"mesh/domain: {ref.domain}", "mesh/access: ",
                  *(owner.removeprefix("team:") for owner in spec.owners),
                  *(text for column in columns for text in (column.name, column.description)),
                  *(rule for column in columns for rule in column.constraints.other))  # whole, readable rules
    page.shot(artifacts, "consumer_product")


def test_consumer_lineage_tab_shows_its_upstream_products_of_other_domains(page, consumer, artifacts):
    ref, _, upstream, _ = consumer
    page.open("/assets/" + "/".join(ref.asset_key.path) + "?view=lineage")
    page.wait_for(ref.product, *(key.path[-1] for key in upstream), *(key.path[0] for key in upstream))
    page.shot(artifacts, "consumer_lineage")


def test_checks_tab_shows_the_failed_warning_with_its_unexpected_count(page, consumer, artifacts):
    ref, _, _, check = consumer
    count = {m["label"]: m.get("intValue") for m in
             check["executionForLatestMaterialization"]["evaluation"]["metadataEntries"]}["unexpected_count"]
    page.open("/assets/" + "/".join(ref.asset_key.path) + f"?view=checks&checkDetail={check['name']}")
    text = page.wait_for("non-blocking", "Evaluation result", f"unexpected_count {count}")
    detail = text[text.index("Latest execution"):]
    assert "Failed" in detail.split("Timestamp")[0]  # the evaluation result of the latest execution
    page.shot(artifacts, "consumer_checks")


def test_runs_list_shows_the_products_each_materialize_run_targeted(page, server, artifacts):
    runs = [r for r in graphql(server[0], RUNS)["runsOrError"]["results"]
            if {"key": "mesh/launched_by", "value": "mesh-materialize"} in r["tags"]]
    assert runs, "mesh dev recorded no mesh materialize run"
    page.open("/runs")
    text = page.wait_for(*(run["runId"][:8] for run in runs))
    starts = sorted((text.index(run["runId"][:8]), run) for run in runs)  # the table, a run's row after another's
    for (start, run), (end, _) in zip(starts, [*starts[1:], (len(text), None)]):
        row = text[start:end]
        targets = [" / ".join(s["path"]) for s in run["assetSelection"]]
        assert targets and any(t in row for t in targets), (targets, row)
    page.shot(artifacts, "runs")


def test_a_products_page_shows_its_delta_sharing_reads(page, consumer, server, artifacts):
    """`mesh serve` records each query as an observation on the product: its page shows who read it
    and the product's reads over 30 days, as metadata next to its publishes."""
    from mesh_core.instance.usage import READERS_30D, READS_30D, reads, record_read

    ref = consumer[0]
    with dg.DagsterInstance.from_config(str(server[1])) as instance:
        before = reads(instance, ref, since=0.0)
        for _ in range(3):
            record_read(instance, ref, recipient="ui-tour-partner", table=f"{ref.domain}.{ref.domain}.{ref.product}",
                        major=None, version=0, files=1, rows=7)
    page.open("/assets/" + "/".join(ref.asset_key.path) + "?view=events")
    page.wait_for("read over Delta Sharing by ui-tour-partner", READS_30D, READERS_30D, "ui-tour-partner")
    page.shot(artifacts, "consumer_share_reads")
    # only this test's Delta Sharing reads are shown (a consumer's step records its own reads of the
    # product as observations too, in a mesh where the product has consumers)
    assert before == []
