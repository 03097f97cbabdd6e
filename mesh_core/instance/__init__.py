"""The Dagster instance the mesh runs on: its home (created once, safely), and its SQLite storage."""

from mesh_core.instance.postgres_driver import use_psycopg2_for_postgresql

use_psycopg2_for_postgresql()  # before any process that imports Mesh opens a PostgreSQL instance
