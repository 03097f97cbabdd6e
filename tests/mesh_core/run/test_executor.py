"""Where a run's steps execute: in the run's process unless the deployment selects Celery."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.executor.in_process import InProcessExecutor
from dagster._core.executor.init import InitExecutorContext

from mesh_core import MeshError, mesh_executor


@dg.asset
def numbers() -> int:
    return 1


JOB = dg.define_asset_job("numbers", selection=[numbers]).resolve(asset_graph=dg.Definitions(assets=[numbers]).resolve_asset_graph())


def create(job, instance) -> object:
    config = {"retries": {"enabled": {}}}
    return mesh_executor.executor_creation_fn(InitExecutorContext(job=job, executor_def=mesh_executor,
                                                                  executor_config=config, instance=instance))


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def test_steps_run_in_the_run_process_by_default(monkeypatch, instance):
    monkeypatch.delenv("MESH_EXECUTOR", raising=False)
    assert isinstance(create(dg.reconstructable(_job), instance), InProcessExecutor)


def test_an_unknown_executor_is_named_with_the_choices(monkeypatch, instance):
    monkeypatch.setenv("MESH_EXECUTOR", "multiprocess")
    with pytest.raises(MeshError, match=r"MESH_EXECUTOR='multiprocess' is not an executor Mesh knows: use one of in_process, celery"):
        create(dg.reconstructable(_job), instance)


def test_celery_without_a_broker_names_the_setting(monkeypatch, instance):
    monkeypatch.setenv("MESH_EXECUTOR", "celery")
    monkeypatch.delenv("MESH_CELERY_BROKER", raising=False)
    with pytest.raises(MeshError, match=r"MESH_EXECUTOR=celery needs the broker the workers listen to: set MESH_CELERY_BROKER"):
        create(dg.reconstructable(_job), instance)


def test_celery_refuses_a_run_its_workers_could_not_reconstruct(monkeypatch, instance):
    monkeypatch.setenv("MESH_EXECUTOR", "celery")
    monkeypatch.setenv("MESH_CELERY_BROKER", "redis://127.0.0.1:1/0")
    job = dg.reconstructable(_job)
    assert isinstance(job, ReconstructableJob)
    with pytest.raises(MeshError, match="runs steps on other machines: launch the run from the webserver"):
        create(job, instance)  # an ephemeral instance: the workers could not report to it


def _job():
    return JOB
