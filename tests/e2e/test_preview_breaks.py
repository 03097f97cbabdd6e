"""`mesh preview` attacked: interrupted half-way (SIGTERM, Ctrl-C), on a temp git copy of the example mesh
materialized once. An interrupted preview leaves no git worktree, no sandbox folder and no verdict behind,
and the real mesh unchanged.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.test_preview import PRODUCTS, real_state
from tests.support import MESH, commit_on_main, copy_repository, make_dagster_home, mesh_env, needs_example, run_mesh

pytestmark = needs_example("operations")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    """(repository, DAGSTER_HOME) of the example mesh, committed on main and materialized for real."""
    root = tmp_path_factory.mktemp("preview_breaks")
    repo = root / "mesh"
    repo.mkdir()
    copy_repository(repo)
    commit_on_main(repo)
    home = make_dagster_home(root)
    done = run_mesh("materialize", "-d", "operations", home=home, cwd=repo)
    assert done.returncode == 0, done.stdout + done.stderr
    return repo, home


@pytest.fixture
def edited(mesh):
    """Apply an edit to the flights code in the working tree; restored after, the real mesh checked unchanged."""
    repo, home = mesh
    before = real_state(home)
    original = (repo / PRODUCTS).read_text()

    def apply(old: str, new: str) -> None:
        assert old in original, f"the example's flights code changed: {old!r} not found"
        (repo / PRODUCTS).write_text(original.replace(old, new, 1))

    yield apply
    (repo / PRODUCTS).write_text(original)
    assert real_state(home) == before, "a preview changed the real ports, stores or instance"


def _stall(marker: Path) -> str:
    """Code that says it got there (a marker file), then waits to be interrupted."""
    return f"open({str(marker)!r}, 'w').close(); __import__('time').sleep(120)"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("where", ["base worktree", "sandbox run"])
def test_an_interrupted_preview_leaves_nothing_behind_and_no_verdict(mesh, edited, tmp_path, signum, where):
    repo, home = mesh
    marker, tmp = tmp_path / "reached", tmp_path / "tmp"
    tmp.mkdir()
    if where == "base worktree":  # while the working tree loads (the base's worktree exists then)
        edited("ON_TIME_MINUTES = 15", f"ON_TIME_MINUTES = 15\nif __import__('os').environ.get('STALL'): {_stall(marker)}")
    else:  # in the flights product's code, in the sandbox's run
        edited("    raw = scan_zipped_csv(", f"    {_stall(marker)}\n    raw = scan_zipped_csv(")
    env = {**mesh_env(home), "TMPDIR": str(tmp), **({"STALL": "1"} if where == "base worktree" else {})}
    process = subprocess.Popen([str(MESH), "preview"], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), process.communicate()
    if where == "base worktree":
        assert len(subprocess.run(["git", "worktree", "list"], cwd=repo, capture_output=True, text=True).stdout.splitlines()) == 2
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, (process.returncode, out, err)
    assert "OK:" not in out and "FAIL:" not in out, out  # an interrupted preview has no verdict
    worktrees = subprocess.run(["git", "worktree", "list", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert worktrees.count("worktree ") == 1, worktrees
    assert list(tmp.iterdir()) == [], "the sandbox or the base worktree's folder was left behind"


@pytest.mark.parametrize("where", ["base worktree", "sandbox run"])
def test_a_killed_preview_s_worktree_and_sandbox_are_removed_by_the_next_preview(mesh, edited, tmp_path, where):
    repo, home = mesh
    marker, tmp = tmp_path / "reached", tmp_path / "tmp"
    tmp.mkdir()
    if where == "base worktree":
        edited("ON_TIME_MINUTES = 15", f"ON_TIME_MINUTES = 15\nif __import__('os').environ.get('STALL'): {_stall(marker)}")
    else:
        edited("    raw = scan_zipped_csv(", f"    {_stall(marker)}\n    raw = scan_zipped_csv(")
    env = {**mesh_env(home), "TMPDIR": str(tmp), **({"STALL": "1"} if where == "base worktree" else {})}
    process = subprocess.Popen([str(MESH), "preview"], cwd=repo, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists()
    os.killpg(process.pid, signal.SIGKILL)  # nothing of it can clean up
    process.wait()
    assert list(tmp.iterdir()), "a killed preview leaves its folder (the test would prove nothing)"
    (repo / PRODUCTS).write_text(subprocess.run(["git", "show", f"HEAD:{PRODUCTS}"], cwd=repo, capture_output=True,
                                                text=True, check=True).stdout)
    done = run_mesh("preview", home=home, cwd=repo, env_extra={"TMPDIR": str(tmp)})  # the next one, nothing changed
    assert done.returncode == 0, done.stdout + done.stderr
    worktrees = subprocess.run(["git", "worktree", "list", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert worktrees.count("worktree ") == 1, worktrees
    assert list(tmp.iterdir()) == [], list(tmp.iterdir())


def test_a_markdown_file_that_cannot_be_written_is_refused_before_anything_runs(mesh, tmp_path):
    repo, home = mesh
    for target in (tmp_path / "missing" / "comment.md", tmp_path):
        done = run_mesh("preview", "--markdown", str(target), home=home, cwd=repo, env_extra={"TMPDIR": str(tmp_path)})
        assert done.returncode == 2 and "--markdown" in done.stderr and "Name a file in an existing folder" in done.stderr
        assert "Sandbox run" not in done.stderr and "Changed:" not in done.stderr, done.stderr
