"""Monorepo parity: one domain's repository, with only its own code and the contract registry, gets
exactly the findings the monorepo gets for it.

On a temp copy of the example repository: lint the whole workspace; write every domain's entry
into a registry folder (the log format the store documents, written here by hand so the reader is
checked against the format, not against its own writer); then for each domain D of workspace.yaml
lint a workspace that lists D alone, with the registry. D's findings must be the same, on the
unchanged mesh and on a copy that breaks rules across domains (so the sets compared are not empty).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone

import pytest
import yaml

from tests.support import copy_repository, make_dagster_home, needs_example, run_mesh

# Run in a fresh interpreter in the copy: the copy's `domains` package is imported, not the repository's.
LINT_BOTH_WAYS = r"""
import json, sys
from pathlib import Path
import yaml
from mesh_core.governance.lint import lint_mesh
from mesh_core.governance.registry import domain_entry
from mesh_core.governance.workspace import MeshWorkspace
from mesh_core.storage.registry import Registry

folder, out = Path(sys.argv[1]), Path(sys.argv[2])
workspace_path = Path("workspace.yaml").resolve()

def findings(report):
    found = [["error", v.domain, v.product, v.rule, v.message] for v in report.violations]
    found += [["warning", v.domain, v.product, v.rule, v.message] for v in report.warnings]
    found += [["waived", v.domain, v.product, v.rule, v.message] for v, _ in report.waived]
    return found, list(report.load_errors)

monorepo = findings(lint_mesh(workspace_path))
workspace = MeshWorkspace.load(workspace_path)
entries = {location.name: domain_entry(location) for location in workspace.locations}
(folder / "entries.json").write_text(json.dumps(entries))
print("entries written", flush=True)
sys.stdin.read()  # the test writes the registry's log from entries.json, then closes stdin
state = Registry.at(folder / "registry").read()
per_domain = {}
for item in yaml.safe_load(workspace_path.read_text())["load_from"]:
    target = dict(item["python_module"])
    name = target["location_name"]
    # The domain's code where it is (relative to where the command runs, here the copy's root).
    target["working_directory"] = str((workspace_path.parent / target.get("working_directory", ".")).resolve())
    only = folder / "only" / name / "workspace.yaml"
    only.parent.mkdir(parents=True)
    only.write_text(yaml.safe_dump({"load_from": [{"python_module": target}]}))
    per_domain[name] = findings(lint_mesh(only, registry=state))
out.write_text(json.dumps({"monorepo": monorepo, "per_domain": per_domain, "registry_seq": state.seq}))
"""


def write_registry(folder, entries: dict) -> None:
    """The registry as the store documents it: `log/<seq:012d>.json`, one write per domain, each the
    whole state after it."""
    (folder / "log").mkdir(parents=True)
    domains = {}
    for seq, (domain, entry) in enumerate(sorted(entries.items()), 1):
        domains[domain] = entry
        (folder / "log" / f"{seq:012d}.json").write_text(json.dumps({
            "format": "mesh-registry/1", "seq": seq,
            "written": {"domain": domain, "by": "parity-test", "at": datetime.now(timezone.utc).isoformat(),
                        "changes": ["entry"], "removed": False},
            "domains": domains}))


def lint_both_ways(repo, tmp_path) -> dict:
    tmp_path.mkdir()
    process = subprocess.Popen([sys.executable, "-c", LINT_BOTH_WAYS, str(tmp_path), str(tmp_path / "out.json")],
                               cwd=repo, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "entries written", process.communicate()[1]
    write_registry(tmp_path / "registry", json.loads((tmp_path / "entries.json").read_text()))
    _, stderr = process.communicate("", timeout=900)
    assert process.returncode == 0, stderr
    return json.loads((tmp_path / "out.json").read_text())


def compare(result: dict, domains: list[str]) -> dict[str, int]:
    """Per domain, its findings in the monorepo and from its own code plus the registry: equal.
    Only the domain's own findings are compared: the monorepo also reports the other domains', and
    the one-domain workspace lies in another folder (no Helm values beside it, so no `*` finding
    about the deployment config, which belongs to the monorepo's layout, not to any domain)."""
    mono, mono_errors = result["monorepo"]
    assert mono_errors == [], mono_errors
    compared = {}
    for domain in domains:
        alone, load_errors = result["per_domain"][domain]
        assert load_errors == [], load_errors
        # With only its code here, a domain is told about itself and about nobody else.
        assert {f[1] for f in alone} <= {domain, "*"}, alone
        expected = Counter(tuple(f) for f in mono if f[1] == domain)
        assert Counter(tuple(f) for f in alone if f[1] == domain) == expected, domain
        assert Counter(tuple(f) for f in alone if f[1] == "*") == Counter(
            tuple(f) for f in mono if f[1] == "*" and f[3] == "no-domain-cycles")
        compared[domain] = sum(expected.values())
    return compared


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def break_rules_across_domains(repo) -> None:
    """A producer removes a column a consumer relies on; a producer makes a product other domains read
    internal; a consumer pins a major its producer does not publish; a producer is deprecated past its
    date; a consumer changes the expectation its producer's audits run."""
    operations, insights = repo / "domains" / "operations", repo / "domains" / "insights"
    edit(operations / "contracts.py", "air_time:", "air_minutes:")
    edit(operations / "products.py", 'air_time="air_time"', 'air_minutes="air_time"')
    edit(repo / "domains" / "weather" / "products.py", 'access="public",', 'access="internal",')
    edit(insights / "products.py", '"airlines": "reference.airlines"', '"airlines": "reference.airlines@3"')
    edit(repo / "domains" / "fleet" / "products.py", 'access="public",',
         'access="public", status="deprecated", deprecated_on="2020-01-01", successor="reference.airlines",')
    edit(insights / "products.py", 'name="departed_have_delay"', 'name="departed_with_a_delay"')


@pytest.fixture
def repo(tmp_path):
    return copy_repository(tmp_path / "repo")


def test_each_domain_alone_with_the_registry_gets_the_monorepo_findings_of_the_unchanged_mesh(repo, tmp_path):
    domains = [item["python_module"]["location_name"] for item in yaml.safe_load((repo / "workspace.yaml").read_text())["load_from"]]
    result = lint_both_ways(repo, tmp_path / "run")
    assert result["registry_seq"] == len(domains)
    compared = compare(result, domains)
    assert set(compared) == set(domains)


@needs_example()
def test_each_domain_alone_with_the_registry_gets_the_monorepo_findings_of_rules_broken_across_domains(repo, tmp_path):
    break_rules_across_domains(repo)
    domains = [item["python_module"]["location_name"] for item in yaml.safe_load((repo / "workspace.yaml").read_text())["load_from"]]
    result = lint_both_ways(repo, tmp_path / "run")
    compared = compare(result, domains)
    rules = {(f[1], f[3]) for f in result["monorepo"][0] if f[0] == "error"}
    # Every rule broken above is found (so the sets compared are not empty), each in its own domain.
    assert {("operations", "contract-compatible"), ("insights", "relies-on-published-columns"),
            ("weather", "contract-compatible"), ("insights", "read-public-only"),
            ("insights", "reads-published-major"), ("insights", "reads-no-deprecated"),
            ("operations", "consumer-expectations-current")} <= rules, rules
    # The producer's own repository names the reader it has never seen the code of, with its owners.
    [gate] = [f[4] for f in result["per_domain"]["operations"][0] if f[3] == "contract-compatible"]
    assert "column 'air_time' was removed" in gate and "insights.fleet_utilisation (team:network-insights)" in gate
    print("parity:", json.dumps(compared))  # the closing note reports these counts

    # The CLI path: `mesh lint --registry` in the insights domain's folder gives what lint_mesh gave.
    home = make_dagster_home(tmp_path)
    alone = tmp_path / "run" / "only" / "insights" / "workspace.yaml"
    done = run_mesh("lint", "-w", str(alone), "--registry", str(tmp_path / "run" / "registry"), "--json",
                    home=home, cwd=alone.parent)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    found = {("error", v["domain"], v["product"], v["rule"], v["message"]) for v in report["violations"]}
    found |= {("warning", v["domain"], v["product"], v["rule"], v["message"]) for v in report["warnings"]}
    expected = {tuple(f) for f in result["per_domain"]["insights"][0] if f[0] in ("error", "warning")}
    assert found == expected and compared["insights"] > 0

    # `mesh contracts check` in the producer's folder, the registry from $MESH_REGISTRY_URI: the same gate.
    producer = tmp_path / "run" / "only" / "operations" / "workspace.yaml"
    done = run_mesh("contracts", "check", "-w", str(producer), home=home, cwd=producer.parent,
                    env_extra={"MESH_REGISTRY_URI": str(tmp_path / "run" / "registry")})
    assert done.returncode == 1 and gate in done.stdout, done.stdout + done.stderr

    # A registry that is not there is a usage error naming it, before any rule runs.
    done = run_mesh("lint", "-w", str(alone), "--registry", str(tmp_path / "nowhere"), home=home, cwd=alone.parent)
    assert done.returncode == 2 and str(tmp_path / "nowhere") in done.stderr, done.stderr
