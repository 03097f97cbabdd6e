"""A domain with its own interpreter (workspace.yaml's executable_path): which entries are delegated,
and what a run by an interpreter that fails says. (tests/e2e/test_standalone.py runs real ones.)"""

import sys

import yaml

from mesh_core.governance.workspace import WorkspaceEntry
from mesh_core.run.delegated import delegated_entries, run_delegated


def entry(name: str, tmp_path, executable=None) -> dict:
    location = {"module_name": f"{name}.definitions", "location_name": name, "working_directory": str(tmp_path)}
    return {"python_module": {**location, **({"executable_path": str(executable)} if executable else {})}}


def test_only_entries_with_another_interpreter_are_delegated(tmp_path):
    other = tmp_path / "venv" / "bin" / "python"
    other.parent.mkdir(parents=True)
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [entry("here", tmp_path), entry("same", tmp_path, sys.executable),
                                                       entry("own", tmp_path, other)]}))
    assert list(delegated_entries(workspace)) == ["own"]


def test_an_interpreter_that_cannot_run_the_domain_is_reported_with_what_it_said(tmp_path):
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'No module named mesh_core' >&2\nexit 1\n")
    broken.chmod(0o755)
    run = run_delegated(WorkspaceEntry("tides", "tides.definitions", str(tmp_path), str(broken)),
                        dagster_home=str(tmp_path), data_dir=str(tmp_path / "data"))
    assert run.summary is None
    assert f"{broken} (the domain's own interpreter) did not run it (exit code 1)" in run.error
    assert "No module named mesh_core" in run.error


def test_a_missing_interpreter_says_how_to_fix_it(tmp_path):
    run = run_delegated(WorkspaceEntry("tides", "tides.definitions", str(tmp_path), str(tmp_path / "absent")),
                        dagster_home=str(tmp_path), data_dir=str(tmp_path / "data"))
    assert f"could not start {tmp_path / 'absent'}" in run.error and "make" in run.error


def test_the_registry_this_run_names_is_passed_down_not_only_through_the_environment(tmp_path, monkeypatch):
    # `mesh materialize --registry URI` sets no $MESH_REGISTRY_URI: the domain's interpreter must be told.
    monkeypatch.delenv("MESH_REGISTRY_URI", raising=False)
    recorder = tmp_path / "python"
    recorder.write_text("#!/bin/sh\nprintf '{\"domains\": [{\"domain\": \"tides\", \"argv\": \"%s\"}]}' \"$*\"\n")
    recorder.chmod(0o755)
    entry = WorkspaceEntry("tides", "tides.definitions", str(tmp_path), str(recorder))
    run = run_delegated(entry, dagster_home=str(tmp_path), data_dir=str(tmp_path / "data"), registry="s3://reg/mesh")
    assert run.error == "" and "--delegated --registry s3://reg/mesh" in run.summary["argv"], run
    plain = run_delegated(entry, dagster_home=str(tmp_path), data_dir=str(tmp_path / "data"))
    assert "--registry" not in plain.summary["argv"]
