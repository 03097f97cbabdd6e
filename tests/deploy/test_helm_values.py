"""deploy/helm/values.yaml: Dagster's Helm chart values for Mesh on Kubernetes. No cluster runs here,
so the instance config the chart renders from them (run launcher, run coordinator, storage) is
validated with the libraries' own schemas, and the Kubernetes parts with the kubernetes models
dagster-k8s builds its Jobs from."""

from __future__ import annotations

import kubernetes.client as k8s
import pytest
import yaml
from dagster._config import process_config
from dagster._config.field import resolve_to_config_type
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_k8s import K8sRunLauncher
from dagster_k8s.models import k8s_model_from_dict, k8s_snake_case_dict
from dagster_postgres import DagsterPostgresStorage

from mesh_core.governance.workspace import MeshWorkspace
from tests.support import REPO

pytestmark = pytest.mark.workspace

VALUES = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
RELEASE = "mesh"


def render_instance(values: dict) -> dict:
    """The parts of dagster.yaml the chart's instance ConfigMap renders from `values`
    (templates/helpers/instance/*.tpl of the dagster chart, 1.13), with Mesh's settings in them."""
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    pg = values["postgresql"]
    coordinator = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    run_k8s = {{"containerConfig": "container_config", "podSpecConfig": "pod_spec_config",
                "jobSpecConfig": "job_spec_config", "jobMetadata": "job_metadata",
                "podTemplateSpecMetadata": "pod_template_spec_metadata"}[key]: value
               for key, value in launcher.get("runK8sConfig", {}).items()}
    return {
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": {
            "load_incluster_config": launcher["loadInclusterConfig"],
            "job_namespace": launcher["jobNamespace"],
            "image_pull_policy": launcher["imagePullPolicy"],
            "service_account_name": f"{RELEASE}-dagster-user-deployments-user-deployments",
            "dagster_home": values["global"]["dagsterHome"],
            "instance_config_map": f"{RELEASE}-dagster-instance",
            "postgres_password_secret": values["global"]["postgresqlSecretName"],
            "env_config_maps": [item["name"] for item in launcher.get("envConfigMaps", [])],
            "env_secrets": [item["name"] for item in launcher.get("envSecrets", [])],
            "fail_pod_on_run_failure": launcher.get("failPodOnRunFailure", False),
            "run_k8s_config": run_k8s,
        }},
        "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator", "config": {
            "max_concurrent_runs": coordinator["maxConcurrentRuns"],
            "tag_concurrency_limits": [
                {"key": limit["key"], "value": {"applyLimitPerUniqueValue": limit["value"]["applyLimitPerUniqueValue"]},
                 "limit": limit["limit"]} for limit in coordinator["tagConcurrencyLimits"]],
        }},
        "storage": {"postgres": {"postgres_db": {
            "username": pg["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"},
            "hostname": pg["postgresqlHost"], "db_name": pg["postgresqlDatabase"], "port": pg["service"]["port"],
            **({"scheme": pg["postgresqlScheme"]} if pg.get("postgresqlScheme") else {})}}},
    }


def test_the_charts_processes_open_postgres_with_the_installed_driver():
    # The webserver, daemon and run pods import nothing of Mesh: the scheme must be in the chart's dagster.yaml.
    assert render_instance(VALUES)["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"


def validate(schema, config: dict) -> None:
    result = process_config(resolve_to_config_type(schema), config)
    assert result.success, [error.message for error in result.errors]


@pytest.mark.parametrize(("section", "cls"), [
    ("run_launcher", K8sRunLauncher), ("run_coordinator", QueuedRunCoordinator), ("storage", DagsterPostgresStorage)])
def test_the_rendered_instance_config_passes_the_libraries_own_schema(section, cls, monkeypatch):
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "from-the-secret")
    rendered = render_instance(VALUES)[section]
    assert rendered.get("class", cls.__name__) == cls.__name__
    validate(cls.config_type(), rendered["config"] if "config" in rendered else rendered["postgres"])


def test_a_misspelled_value_is_caught_by_the_same_validation():
    broken = render_instance(VALUES)["run_launcher"]["config"] | {"job_namespaces": "typo"}
    with pytest.raises(AssertionError, match="job_namespaces"):
        validate(K8sRunLauncher.config_type(), broken)


def test_the_run_pods_kubernetes_config_builds_the_models_dagster_k8s_uses():
    run_k8s = render_instance(VALUES)["run_launcher"]["config"]["run_k8s_config"]
    container = k8s_model_from_dict(k8s.V1Container, k8s_snake_case_dict(k8s.V1Container, {"name": "run", **run_k8s["container_config"]}))
    assert container.resources.limits["memory"] == "2Gi"
    job = k8s_model_from_dict(k8s.V1JobSpec, k8s_snake_case_dict(k8s.V1JobSpec, {"template": {}, **run_k8s["job_spec_config"]}))
    assert job.backoff_limit == 0  # a failed run is retried by Dagster's policy, not by Kubernetes


def test_there_is_one_user_deployment_per_domain_serving_its_module():
    workspace = MeshWorkspace.load(REPO / "workspace.yaml")
    deployments = {d["name"]: d for d in VALUES["dagster-user-deployments"]["deployments"]}
    assert sorted(deployments) == sorted(loc.name for loc in workspace.locations), \
        "deploy/helm/values.yaml does not list the workspace's domains: run `mesh deploy helm`"
    for location in workspace.locations:
        args = deployments[location.name]["dagsterApiGrpcArgs"]
        assert args[args.index("--module-name") + 1] == location.module
        assert args[args.index("--location-name") + 1] == location.name
        k8s_model_from_dict(k8s.V1ResourceRequirements, deployments[location.name]["resources"])
