"""What `mesh dev` and `mesh up` put on the PYTHONPATH of the processes they start: a `sitecustomize` that
opens Dagster's bare `postgresql://` with psycopg2, imports nothing of Mesh, and hides no other `sitecustomize`."""

from __future__ import annotations

import os
import subprocess
import sys

from mesh_core.instance.postgres_driver import SITE_FOLDER, use_psycopg2_in_started_processes

PROBE = """
import sys, sitecustomize
from sqlalchemy import create_engine
print(create_engine("postgresql://user:secret@127.0.0.1:1/db").dialect.driver)
print(sitecustomize.__file__)
print(getattr(sitecustomize, "RAN", False))
print(sorted(name for name in ("mesh_core", "pandas") if name in sys.modules))
"""
OTHER_SITECUSTOMIZE = "RAN = True\n"


def started(python: str, code: str) -> list[str]:
    done = subprocess.run([python, "-c", code], env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and not done.stderr, done.stderr
    return done.stdout.splitlines()


def test_a_started_process_opens_the_bare_scheme_with_psycopg2_and_runs_the_sitecustomize_it_hides(tmp_path, monkeypatch):
    (tmp_path / "sitecustomize.py").write_text(OTHER_SITECUSTOMIZE)  # as Debian's Python has one
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    use_psycopg2_in_started_processes()
    assert os.environ["PYTHONPATH"] == os.pathsep.join([str(SITE_FOLDER), str(tmp_path)])
    use_psycopg2_in_started_processes()  # again, as in a `mesh` started under `mesh dev`: not added twice
    assert os.environ["PYTHONPATH"] == os.pathsep.join([str(SITE_FOLDER), str(tmp_path)])

    driver, found, ran, imported = started(sys.executable, PROBE)
    assert driver == "psycopg2"  # without it SQLAlchemy 2.1 picks psycopg 3, which is not installed
    assert (found, ran) == (str(tmp_path / "sitecustomize.py"), "True")
    assert imported == "[]"  # the webserver does not pay for Mesh's imports

    # A Python without SQLAlchemy (a tool a run starts) starts cleanly, and still runs the other sitecustomize.
    without = tmp_path / "without_sqlalchemy" / "sqlalchemy"
    without.mkdir(parents=True)
    (without / "__init__.py").write_text("raise ImportError('no SQLAlchemy in this Python')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(SITE_FOLDER), str(without.parent), str(tmp_path)]))
    assert started(sys.executable, "import sitecustomize; print(sitecustomize.RAN)") == ["True"]
