"""A plan of file changes is applied whole or not at all: what it did is taken back on any failure."""

from __future__ import annotations

import pytest

from mesh_core import MeshError
from mesh_core.selfserve import plan as plan_module
from mesh_core.selfserve.plan import Plan


def snapshot(root):
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "domains" / "gone" / "data").mkdir(parents=True)
    (tmp_path / "domains" / "gone" / "data" / "rows.csv").write_text("a\n1\n")
    (tmp_path / "workspace.yaml").write_text("load_from: []\n")
    return tmp_path


def test_a_plan_creates_changes_and_removes_then_commit_leaves_no_trace(tree):
    plan = Plan(create={tree / "new" / "file.py": b"x = 1\n"}, change={tree / "workspace.yaml": "load_from: [a]\n"},
                remove=[tree / "domains" / "gone"])
    plan.apply()
    plan.commit()
    assert snapshot(tree) == {"domains": None, "new": None, "new/file.py": b"x = 1\n", "workspace.yaml": b"load_from: [a]\n"}


def test_a_failure_half_way_puts_every_file_back(tree):
    before = snapshot(tree)
    plan = Plan(create={tree / "new" / "file.py": b"x = 1\n"}, change={tree / "workspace.yaml": "load_from: [a]\n"},
                remove=[tree / "domains" / "gone", tree / "domains" / "never-there"])
    with pytest.raises(MeshError, match="never-there: No such file or directory. Nothing was changed"):
        plan.apply()
    assert snapshot(tree) == before  # the removed folder is back whole, the new file gone, the change undone


def test_an_interrupt_after_a_removal_is_taken_back(tree, monkeypatch):
    before = snapshot(tree)
    plan = Plan(remove=[tree / "domains" / "gone", tree / "workspace.yaml"])
    import os
    real = os.replace
    calls = []

    def interrupted(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C between the two moves
        return real(src, dst)
    monkeypatch.setattr("mesh_core.selfserve.plan.os.replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        plan.apply()
    monkeypatch.undo()
    assert snapshot(tree) == before


def test_a_file_that_cannot_be_written_puts_back_what_was_done_before_it(tree, monkeypatch):
    (tree / "values.yaml").write_text("deployments: []\n")
    before = snapshot(tree)
    real = plan_module.replace_file

    def read_only(path, data):
        if path.name == "values.yaml":
            raise PermissionError(1, "Operation not permitted", str(path))
        return real(path, data)
    monkeypatch.setattr(plan_module, "replace_file", read_only)
    plan = Plan(change={tree / "workspace.yaml": "load_from: [a]\n", tree / "values.yaml": "deployments: [a]\n"},
                remove=[tree / "domains" / "gone"])
    with pytest.raises(MeshError, match="values.yaml: Operation not permitted. Nothing was changed"):
        plan.apply()
    assert snapshot(tree) == before


def test_ctrl_c_during_the_undo_waits_until_everything_is_back(tree, monkeypatch):
    import os
    import signal

    before = snapshot(tree)
    real = os.replace
    moves = []

    def step(src, dst):
        moves.append(src)
        if len(moves) == 2:
            raise OSError(28, "No space left on device", str(src))  # the second removal fails: undo starts
        if len(moves) == 3:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the first removal is put back
        return real(src, dst)
    monkeypatch.setattr("mesh_core.selfserve.plan.os.replace", step)
    plan = Plan(remove=[tree / "domains" / "gone", tree / "workspace.yaml"])
    with pytest.raises(KeyboardInterrupt):
        plan.apply()
    monkeypatch.undo()
    assert snapshot(tree) == before  # the interrupt arrived only once the tree was whole
