"""The Dagster instance the mesh runs on: its home (created once, safely), and its SQLite storage."""
