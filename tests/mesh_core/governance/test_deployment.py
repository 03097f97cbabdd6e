"""Helm user deployments derived from the workspace: only that list changes, the rest of the file is kept."""

from __future__ import annotations

import difflib

import kubernetes.client as k8s
import pytest
import yaml
from dagster_k8s.models import k8s_model_from_dict

from mesh_core import MeshError
from mesh_core.governance.deployment import derived_values, grpc_args, helm_values, stale_deployments
from mesh_core.governance.workspace import read_entries
from tests.support import REPO

VALUES = """\
# Mesh on Kubernetes.
global:
  dagsterHome: /opt/dagster/dagster_home   # a comment the user wrote

dagster-user-deployments:
  enabled: true
  deployments:
    - name: a
      image: {repository: registry.example.com/mesh, tag: "1.0", pullPolicy: IfNotPresent}
      dagsterApiGrpcArgs: ["--module-name", "domains.a.definitions", "--location-name", "a"]
      port: 3030
      resources: {requests: {cpu: 250m, memory: 512Mi}, limits: {memory: 1Gi}}   # a's own
    - name: b
      image: {repository: registry.example.com/mesh, tag: "1.0", pullPolicy: IfNotPresent}
      dagsterApiGrpcArgs: ["--module-name", "domains.b.definitions", "--location-name", "b"]
      port: 3030
      resources: {requests: {cpu: "2", memory: 8Gi}}   # b is big

# Runs are Kubernetes Jobs.
runLauncher:
  type: K8sRunLauncher
"""
A, B, C = ("a", "domains.a.definitions"), ("b", "domains.b.definitions"), ("c", "domains.c.definitions")


def write_values(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def deployments(text: str) -> list[dict]:
    return yaml.safe_load(text)["dagster-user-deployments"]["deployments"]


def changed_lines(old: str, new: str) -> list[str]:
    return [line for line in difflib.ndiff(old.splitlines(), new.splitlines()) if line[:1] in "+-"]


@pytest.mark.workspace
def test_the_repositorys_values_are_what_the_workspace_derives():
    entries = [(entry.name, entry.module) for entry in read_entries(REPO / "workspace.yaml")]
    text = (REPO / "deploy" / "helm" / "values.yaml").read_text()
    assert helm_values(entries, text) == text
    assert [d["name"] for d in deployments(text)] == [name for name, _ in entries]


def test_a_new_domain_copies_the_first_entrys_settings_and_changes_nothing_else():
    new = helm_values([A, B, C], VALUES)
    added = changed_lines(VALUES, new)
    assert all(line.startswith("+ ") for line in added) and len(added) == 5, added
    entry = deployments(new)[2]
    assert entry["dagsterApiGrpcArgs"] == grpc_args(*C) == ["--module-name", "domains.c.definitions", "--location-name", "c"]
    assert {k: v for k, v in entry.items() if k not in ("name", "dagsterApiGrpcArgs")} == \
        {k: v for k, v in deployments(VALUES)[0].items() if k not in ("name", "dagsterApiGrpcArgs")}
    assert entry["image"]["tag"] == "1.0"  # a version stays a string
    k8s_model_from_dict(k8s.V1ResourceRequirements, entry["resources"])


def test_a_removed_domain_loses_its_entry_and_the_others_keep_their_text():
    new = helm_values([B], VALUES)
    assert [d["name"] for d in deployments(new)] == ["b"]
    assert "# b is big" in new and "# a's own" not in new
    assert new.startswith(VALUES.split("    - name: a")[0]) and new.endswith(VALUES.split("# b is big\n")[1])


def test_entries_follow_the_workspace_order_and_a_moved_module_is_rewritten():
    new = helm_values([B, ("a", "domains.alpha.definitions")], VALUES)
    assert [(d["name"], d["dagsterApiGrpcArgs"][1]) for d in deployments(new)] == [("b", "domains.b.definitions"),
                                                                                    ("a", "domains.alpha.definitions")]
    assert deployments(new)[1]["resources"] == deployments(VALUES)[0]["resources"]  # a keeps its own settings


def test_a_file_without_the_section_gets_it_and_no_file_gets_a_minimal_one():
    bare = "global: {dagsterHome: /opt/dagster}\n"
    new = helm_values([A], bare)
    assert new.startswith(bare) and [d["name"] for d in deployments(new)] == ["a"]
    fresh = helm_values([A, B], None)
    assert [d["dagsterApiGrpcArgs"] for d in deployments(fresh)] == [grpc_args(*A), grpc_args(*B)]
    assert helm_values([A, B], fresh) == fresh


@pytest.mark.parametrize(("text", "message"), [
    ("global: [unclosed\n", "is not valid YAML"),
    ("- a list\n", "is not a mapping of Helm values"),
])
def test_a_values_file_mesh_cannot_read_is_refused_with_the_fix(text, message):
    with pytest.raises(MeshError, match=message):
        helm_values([A], text, where="deploy/helm/values.yaml")


def test_lint_names_the_missing_and_extra_domains_and_the_command(tmp_path):
    workspace = tmp_path / "workspace.yaml"
    assert stale_deployments(workspace, [A, C]) == []  # no values file: nothing to keep current
    write_values(tmp_path / "deploy" / "helm" / "values.yaml", VALUES)
    [violation] = stale_deployments(workspace, [A, C])
    assert violation.rule == "deployment-current"
    assert "no user deployment for c" in violation.message and "does not list: b" in violation.message
    assert "run `mesh deploy helm`" in violation.fix
    assert stale_deployments(workspace, [A, B]) == []
    assert "modules or order" in stale_deployments(workspace, [B, A])[0].message


def test_derived_values_reads_the_workspace_beside_the_file(tmp_path):
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n  - python_module: {module_name: domains.c.definitions, location_name: c, working_directory: .}\n")
    write_values(tmp_path / "deploy" / "helm" / "values.yaml", VALUES)
    path, old, new = derived_values(tmp_path / "workspace.yaml")
    assert old == VALUES and [d["name"] for d in deployments(new)] == ["c"]
    assert deployments(new)[0]["resources"] == deployments(VALUES)[0]["resources"]


def test_line_endings_are_kept_and_new_entries_use_them():
    crlf = VALUES.replace("\n", "\r\n")
    new = helm_values([A, B, C], crlf)
    assert new.startswith(crlf.split("# Runs are")[0].rstrip("\r\n")) and "\n" not in new.replace("\r\n", "")
    assert helm_values([A, B, C], new) == new


def test_the_users_own_server_arguments_are_kept_and_either_args_key_is_read():
    text = VALUES.replace('"--location-name", "a"]', '"--location-name", "a", "--working-directory", "/opt/app"]')
    assert helm_values([A, B], text) == text  # right already: not stale
    moved = deployments(helm_values([("a", "domains.alpha.definitions"), B], text))[0]["dagsterApiGrpcArgs"]
    assert moved == ["--module-name", "domains.alpha.definitions", "--location-name", "a", "--working-directory", "/opt/app"]
    code_server = VALUES.replace("dagsterApiGrpcArgs", "codeServerArgs")
    assert helm_values([A, B], code_server) == code_server
    assert deployments(helm_values([A, B, C], code_server))[2]["codeServerArgs"] == grpc_args(*C)


def test_a_template_value_yaml_has_a_type_for_is_copied_as_that_type():
    dated = VALUES.replace("      port: 3030\n", "      port: 3030\n      annotations: {since: 2024-01-01, 'on': 'yes'}\n", 1)
    entry = deployments(helm_values([A, B, C], dated))[2]
    assert entry["annotations"] == deployments(dated)[0]["annotations"]


@pytest.mark.parametrize(("text", "message"), [
    (VALUES.replace("    - name: b\n", "    - nom: b\n"), "entry 2 of dagster-user-deployments.deployments .* has no name"),
    ("dagster-user-deployments: {enabled: true}\n", "could not rewrite the user deployments .* safely"),
    ("dagster-user-deployments:\n  deployments: [{name: a, dagsterApiGrpcArgs: []}]\n", "could not rewrite .* safely"),
    (VALUES.replace("    - name: a\n", "    - &base\n      name: a\n").replace("    - name: b\n", "    - <<: *base\n      name: b\n"),
     "could not rewrite .* safely"),
])
def test_a_layout_mesh_cannot_rewrite_safely_is_refused_not_broken(text, message):
    with pytest.raises(MeshError, match=message):
        helm_values([B, C], text)


def test_lint_reports_a_file_it_cannot_rewrite_instead_of_failing(tmp_path):
    write_values(tmp_path / "deploy" / "helm" / "values.yaml", "dagster-user-deployments: {enabled: true}\n")
    [violation] = stale_deployments(tmp_path / "workspace.yaml", [A])
    assert violation.rule == "deployment-current" and "could not rewrite" in violation.message
