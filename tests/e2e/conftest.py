"""Fixtures the end-to-end tests share."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """mesh-core's wheel, built once per run (test_standalone*.py scaffold domain repositories that install it)."""
    from tests.e2e.standalone_repos import build_wheel

    return build_wheel(tmp_path_factory.mktemp("wheel"))
