"""Run at startup by every Python process `mesh dev` and `mesh up` start (dagster dev, the webserver,
the daemon, code servers, run workers): this folder is first on their PYTHONPATH.

It registers SQLAlchemy's bare `postgresql://` as psycopg2, as `mesh_core.instance.postgres_driver`
does in processes that import Mesh: Dagster's own processes import nothing of Mesh, and this file
imports nothing of it either (`mesh_core` pulls in pandas). Then it runs the `sitecustomize` it
hides, if there is one further on sys.path (Debian's Python has one), as Python would have.
"""

import importlib.machinery
import importlib.util
import os
import sys


def _use_psycopg2_for_postgresql() -> None:
    try:
        from sqlalchemy.dialects import registry
    except ImportError:  # a Python without SQLAlchemy (a tool a run starts): it opens no instance
        return
    if "postgresql" not in registry.impls:
        registry.register("postgresql", "sqlalchemy.dialects.postgresql.psycopg2", "PGDialect_psycopg2")


def _run_the_hidden_sitecustomize() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module  # `import sitecustomize` now finds the one it would have found
    spec.loader.exec_module(module)


_use_psycopg2_for_postgresql()
_run_the_hidden_sitecustomize()
