"""Turning declarations into Dagster and running them.

A domain's `Definitions` (assets, checks, schedules, sensors, executor), the write-audit-publish
asset, the IO manager and the version pins it reads at (provenance), validation (Pandera, Great
Expectations), OpenLineage events, notifications, stream sensors, objectives scored at publish, and
headless materialization of the whole mesh.
"""
