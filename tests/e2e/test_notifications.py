"""What the owners are told when a transform fails, through `mesh materialize` as a user runs it:
on a terminal, with its log sent to a file (`mesh materialize 2> run.log`)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import pytest

from tests.support import FIXTURES, MESH, WORKSPACES, make_dagster_home, mesh_env

PRICING = FIXTURES / "fixture_domains" / "pricing.py"


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    """One `mesh materialize` of the pricing domain, both of whose transforms raise: stdout is a
    terminal (a pseudo-terminal), stderr a file."""
    home = make_dagster_home(tmp_path_factory.mktemp("pricing"))
    log = home.parent / "run.log"
    leader, follower = pty.openpty()
    with open(log, "wb") as stderr:
        process = subprocess.Popen([str(MESH), "materialize", "-w", str(WORKSPACES / "pricing.yaml")], cwd=FIXTURES,
                                   env=mesh_env(home), stdout=follower, stderr=stderr)
    os.close(follower)
    shown = b""
    while True:  # read the terminal as it fills, or the command blocks on a full one
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the command closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert process.wait(timeout=300) == 1, shown.decode(errors="replace") + log.read_text(errors="replace")
    notices = [json.loads(line) for line in (home / "mesh" / "notifications.jsonl").read_text().splitlines()]
    return shown.decode(), log.read_bytes(), (home / "mesh" / "notifications.jsonl").read_bytes(), {
        n["product"]: n for n in notices}


def line_of(text: str, path: Path = PRICING) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_a_transform_error_names_its_type_message_and_line_in_the_product_code(failed_run):
    shown, _, _, notices = failed_run
    line = line_of('"pe_ratio"')
    where = f"fixture_domains/pricing.py:{line}, in valuations"
    expected = f"KeyError: 'pe_ratio' (at {where})"  # the product's line, not pandas' get_loc
    assert notices["pricing.valuations"]["message"] == expected
    assert notices["pricing.valuations"]["outcome"] == "failed"
    assert expected in shown  # the run summary says the same


def test_no_colour_codes_reach_the_notification_log_or_file(failed_run):
    shown, log, notifications, notices = failed_run
    assert b"pricing.quotes was failed" in log  # the notification was logged to the file
    assert b"\x1b" not in log
    assert b"\x1b" not in notifications
    where = f"fixture_domains/pricing.py:{line_of('raise RuntimeError')}, in quotes"
    assert notices["pricing.quotes"]["message"] == (
        f"RuntimeError: quote feed refused the request (try again later) (at {where})")
