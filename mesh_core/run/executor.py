"""Where a domain's steps run: in the run's own process (the default), or on Celery workers.

One machine runs every step of a run in its process: a multiprocess executor costs seconds per
step here, and a domain's steps share its storage lock anyway. A deployment with many domains
may instead queue each step on a Celery broker (Redis, RabbitMQ) and run it on any worker:
`MESH_EXECUTOR=celery` and `MESH_CELERY_BROKER=redis://host:6379/0` in the environment of the
code servers (the run workers they start inherit it). The choice is made when a run starts,
never when a code location loads, so listing assets costs no Celery import.
"""

from __future__ import annotations

import os

import dagster as dg
from dagster._core.definitions.executor_definition import IN_PROC_CONFIG
from dagster._core.definitions.reconstruct import ReconstructableJob

from mesh_core.errors import MeshError

EXECUTOR_ENV = "MESH_EXECUTOR"
CELERY_BROKER_ENV = "MESH_CELERY_BROKER"
CELERY_BACKEND_ENV = "MESH_CELERY_BACKEND"
EXECUTORS = ("in_process", "celery")


def executor_kind() -> str:
    """The executor the environment selects: in_process unless MESH_EXECUTOR says otherwise."""
    kind = os.environ.get(EXECUTOR_ENV, "").strip() or "in_process"
    if kind not in EXECUTORS:
        raise MeshError(f"{EXECUTOR_ENV}={kind!r} is not an executor Mesh knows: use one of {', '.join(EXECUTORS)} "
                        "(or leave it unset to run every step in the run's process).")
    return kind


# Same config as Dagster's in_process executor, so run config written for it still applies.
@dg.executor(name="mesh", config_schema=IN_PROC_CONFIG)
def mesh_executor(init_context: dg.InitExecutorContext):
    """In process by default; on Celery workers with MESH_EXECUTOR=celery (see the module docstring)."""
    if executor_kind() == "in_process":
        return dg.in_process_executor.executor_creation_fn(init_context)
    broker = os.environ.get(CELERY_BROKER_ENV, "").strip()
    if not broker:
        raise MeshError(f"{EXECUTOR_ENV}=celery needs the broker the workers listen to: set {CELERY_BROKER_ENV}, "
                        "e.g. redis://127.0.0.1:6379/0 (docs/deploy.md, 'Executor').")
    # A worker imports the job again and reports to the same instance: neither may live only here.
    if not isinstance(init_context.job, ReconstructableJob) or init_context.instance.is_ephemeral:
        raise MeshError(f"{EXECUTOR_ENV}=celery runs steps on other machines: launch the run from the webserver, "
                        "the daemon or `dagster job launch` against a persistent instance (not execute_in_process).")
    from dagster._core.execution.retries import RetryMode
    from dagster_celery.executor import CeleryExecutor

    retries = RetryMode.from_config(init_context.executor_config["retries"])
    return CeleryExecutor(retries=retries, broker=broker,
                          backend=os.environ.get(CELERY_BACKEND_ENV, "").strip() or broker)
