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
Dagster builds any storage (a run worker opens the instance before it loads a domain).
"""

from __future__ import annotations

from pathlib import Path

from mesh_core.errors import MeshError

BARE_SCHEME = "postgresql"


def use_psycopg2_for_postgresql() -> None:
    """Register `postgresql://` as psycopg2 with SQLAlchemy, unless something already registered it."""
    from sqlalchemy.dialects import registry

    if BARE_SCHEME not in registry.impls:
        registry.register(BARE_SCHEME, "sqlalchemy.dialects.postgresql.psycopg2", "PGDialect_psycopg2")


_MESH_INSTANCE_CLASS = "mesh_core.instance.pooled_sqlite"
_STORAGES = ("run_storage", "event_log_storage", "schedule_storage")


def check_dagster_processes_can_open(config: Path) -> None:
    """Refuse to start Dagster's own processes (webserver, daemon, run workers) on a dagster.yaml they could not
    open: PostgreSQL storage on the bare scheme, and no Mesh `instance_class` to register it in them."""
    import yaml

    try:
        document = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return  # no file yet (Mesh writes its own), or one the instance check reports
    named = document.get("instance_class") if isinstance(document, dict) else None
    if not isinstance(document, dict) or (isinstance(named, dict) and named.get("module") == _MESH_INSTANCE_CLASS):
        return
    bare = [where for where, settings in _postgres_settings(document) if _bare(settings)]
    if bare:
        raise MeshError(
            f"{config} keeps {', '.join(bare)} in PostgreSQL with Dagster's default scheme 'postgresql', which "
            "SQLAlchemy 2.1 opens with psycopg 3 (not installed): the webserver, the daemon and run workers, which "
            "do not import Mesh, would fail with \"No module named 'psycopg'\". Add Mesh's instance class to it "
            f"(instance_class: {{module: {_MESH_INSTANCE_CLASS}, class: MeshInstance}}), or set "
            "scheme: postgresql+psycopg2 in each postgres_db (docs/deploy.md).")


def _postgres_settings(document: dict) -> list[tuple[str, dict]]:
    """Each PostgreSQL storage of a parsed dagster.yaml: where it is, and its `postgres_db`/`postgres_url` settings."""
    found = []
    storage = document.get("storage") or {}
    if isinstance(storage, dict) and isinstance(storage.get("postgres"), dict):
        found.append(("storage", storage["postgres"]))
    for name in _STORAGES:
        section = document.get(name) or {}
        if isinstance(section, dict) and str(section.get("module", "")).startswith("dagster_postgres"):
            found.append((name, section.get("config") or {}))
    return found


def _bare(settings: dict) -> bool:
    url = settings.get("postgres_url")
    if isinstance(url, str):
        return url.startswith(f"{BARE_SCHEME}://")
    database = settings.get("postgres_db")
    return isinstance(database, dict) and database.get("scheme", BARE_SCHEME) == BARE_SCHEME
