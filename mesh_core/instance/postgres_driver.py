"""Dagster's standard PostgreSQL settings open with the driver Dagster's storage works with.

`dagster-postgres` builds `postgresql://...` unless a `scheme` is set, and SQLAlchemy 2.1 maps that
bare scheme to psycopg 3, which is not installed ("No module named 'psycopg'"). Installing it would
not help: `dagster-postgres` 0.29 sends `NOTIFY run_events, %(notify_id)s`, which psycopg 3's
server-side parameters reject (`syntax error at or near "$1"`). So the bare scheme is registered
with SQLAlchemy as psycopg2, the driver `dagster-postgres` installs; an explicit
`postgresql+psycopg://` still picks psycopg 3.

This runs when `mesh_core.instance` is imported, which every process that opens a Mesh instance
does first: the `mesh` CLI, code servers (they load the domains, which import Mesh) and, through
the `instance_class` of Mesh's `dagster.yaml`, the webserver, the daemon and run workers before
Dagster builds any storage (a run worker opens the instance before it loads a domain). Dagster's
own processes that `mesh dev` and `mesh up` start register it at startup whatever their
`dagster.yaml` says: `SITE_FOLDER` is first on their PYTHONPATH, and its `sitecustomize` does it.
"""

from __future__ import annotations

import os
from pathlib import Path

BARE_SCHEME = "postgresql"
SITE_FOLDER = Path(__file__).with_name("dagster_site")


def use_psycopg2_for_postgresql() -> None:
    """Register `postgresql://` as psycopg2 with SQLAlchemy, unless something already registered it."""
    from sqlalchemy.dialects import registry

    if BARE_SCHEME not in registry.impls:
        registry.register(BARE_SCHEME, "sqlalchemy.dialects.postgresql.psycopg2", "PGDialect_psycopg2")


def use_psycopg2_in_started_processes() -> None:
    """Every Python process started from here on (and the ones those start) registers `postgresql://` as psycopg2
    when it starts, before Dagster reads its dagster.yaml: SITE_FOLDER goes first on PYTHONPATH."""
    existing = os.environ.get("PYTHONPATH")
    rest = [entry for entry in existing.split(os.pathsep) if entry != str(SITE_FOLDER)] if existing else []
    os.environ["PYTHONPATH"] = os.pathsep.join([str(SITE_FOLDER), *rest])
