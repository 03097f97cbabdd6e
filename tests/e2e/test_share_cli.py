"""`mesh share`: recipients' tokens through the real CLI, and reads recorded by the sharing server's
own API (`record_read`) showing up in `mesh share usage`, `mesh status` and `mesh catalog`."""

from __future__ import annotations

import json
import stat
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from mesh_core.declare.majors import major_of
from mesh_core.declare.metadata import meta_value
from mesh_core.governance.workspace import MeshWorkspace
from mesh_core.instance.usage import record_read
from mesh_core.share.recipients import KEY, Recipients
from tests.support import REPO, make_dagster_home, run_mesh

pytestmark = pytest.mark.workspace

PARTNER = "acme-bi"  # a hyphen: no domain can be named so, hence an outsider in any mesh


@pytest.fixture(scope="module")
def workspace() -> MeshWorkspace:
    return MeshWorkspace.load(REPO / "workspace.yaml")


@pytest.fixture(scope="module")
def published(tmp_path_factory, workspace):
    """A home where the first source domain published once (the only materialization of the module)."""
    home = make_dagster_home(tmp_path_factory.mktemp("share"))
    source = workspace.domain_order()[0]
    run = run_mesh("materialize", "-d", source.name, home=home)
    assert run.returncode == 0, run.stdout + run.stderr
    return home, source


def test_tokens_are_created_listed_rotated_and_revoked_through_the_cli(tmp_path, workspace):
    home = make_dagster_home(tmp_path)
    domain = workspace.domain_order()[-1].name
    profile = tmp_path / "acme.share"
    run = run_mesh("share", "token", "create", PARTNER, "--profile", str(profile), "--expires", "30", home=home)
    assert run.returncode == 0, run.stderr
    token = json.loads(profile.read_text())["bearerToken"]
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600 and token not in run.stdout + run.stderr
    assert "outsider" in run.stdout and str(profile) in run.stdout
    document = json.loads(profile.read_text())
    assert document["shareCredentialsVersion"] == 1 and document["endpoint"] == "http://127.0.0.1:8080/delta-sharing"
    expires = datetime.fromisoformat(document["expirationTime"].replace("Z", "+00:00"))
    assert timedelta(days=29, hours=23) < expires - datetime.now(timezone.utc) <= timedelta(days=30)

    run = run_mesh("share", "token", "create", domain, "--profile", str(tmp_path / "d.share"),
                   "--endpoint", "https://mesh.example.org/delta-sharing/", home=home)
    assert run.returncode == 0 and f"reads as domain '{domain}'" in run.stdout
    assert json.loads((tmp_path / "d.share").read_text())["endpoint"] == "https://mesh.example.org/delta-sharing"

    # A second create refuses and leaves the profile and the token alone; --rotate replaces the token.
    run = run_mesh("share", "token", "create", PARTNER, "--profile", str(profile), home=home)
    assert run.returncode == 2 and "--rotate" in run.stderr and json.loads(profile.read_text())["bearerToken"] == token
    run = run_mesh("share", "token", "create", PARTNER, "--profile", str(profile), "--rotate", home=home)
    assert run.returncode == 0, run.stderr
    rotated = json.loads(profile.read_text())["bearerToken"]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert Recipients(instance).authenticate(rotated).name == PARTNER
        with pytest.raises(Exception, match="Unknown bearer token"):
            Recipients(instance).authenticate(token)
        stored = instance.run_storage.get_cursor_values({KEY})[KEY]
        assert token not in stored and rotated not in stored

    run = run_mesh("share", "token", "revoke", PARTNER, home=home)
    assert run.returncode == 0, run.stderr
    listed = json.loads(run_mesh("share", "token", "list", "--json", home=home).stdout)
    assert {(r["name"], r["kind"], r["state"]) for r in listed} == {(PARTNER, "outsider", "revoked"), (domain, "domain", "active")}
    assert not any("hash" in r or rotated in json.dumps(r) for r in listed)
    table = run_mesh("share", "token", "list", home=home).stdout
    assert PARTNER in table and "revoked" in table and rotated not in table


def test_an_expired_recipient_is_listed_expired_and_may_get_a_new_token(tmp_path):
    home = make_dagster_home(tmp_path)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        Recipients(instance).create(PARTNER, domains=[], expires_days=1, now=datetime.now(timezone.utc) - timedelta(days=2))
    [listed] = json.loads(run_mesh("share", "token", "list", "--json", home=home).stdout)
    assert listed["state"] == "expired"
    run = run_mesh("share", "token", "create", PARTNER, "--profile", str(tmp_path / "p.share"), home=home)
    assert run.returncode == 0, run.stderr
    [listed] = json.loads(run_mesh("share", "token", "list", "--json", home=home).stdout)
    assert listed["state"] == "active"


@pytest.mark.parametrize("args, message", [
    (("create", "Acme", "--profile", "{tmp}/a.share"), "Invalid recipient name 'Acme'"),
    (("create", PARTNER, "--profile", "{tmp}/missing/a.share"), "does not exist"),
    (("create", PARTNER, "--profile", "{tmp}/a.share", "--expires", "3651"), "from 1 to 3650"),
    (("create", PARTNER, "--profile", "{tmp}/a.share", "--endpoint", "ftp://x"), "is not the server's URL"),
    (("revoke", "nobody"), "No recipient 'nobody'"),
])
def test_bad_token_commands_exit_2_and_change_nothing(tmp_path, args, message):
    home = make_dagster_home(tmp_path)
    run = run_mesh("share", "token", *(a.format(tmp=tmp_path) for a in args), home=home)
    assert run.returncode == 2 and message in run.stderr, run.stderr
    assert not list(tmp_path.glob("*.share")) and not (tmp_path / "missing").exists()
    assert json.loads(run_mesh("share", "token", "list", "--json", home=home).stdout) == []


def test_reads_show_in_usage_status_and_catalog_and_do_not_change_the_scores(published, workspace):
    home, source = published
    ref, spec = next(iter(sorted(source.products.items())))
    current = major_of(meta_value(spec.metadata, "mesh/version"))
    other = current + 1  # a major no consumer pins: only the reads recorded for it answer "who reads it?"
    consumers = {str(consumer): major for location in workspace.locations
                 for consumer, _, input_ in location.reads() if input_.ref == ref for major in [input_.major]}
    before = _scores(home, source.name)
    n = 5
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for _ in range(n):
            record_read(instance, ref, recipient=PARTNER, table=ref.product, major=current, version=0, files=1, rows=7)
        record_read(instance, ref, recipient="insights-team", table=f"{ref.product}_v{other}", major=other, version=0,
                    files=1, rows=3)
    after = _scores(home, source.name)
    unchanged = lambda score: {k: v for k, v in score.items() if k not in ("age_hours", "readers", "reads", "reads_by")}  # noqa: E731
    assert {p: unchanged(s) for p, s in after.items()} == {p: unchanged(s) for p, s in before.items()}
    assert after[str(ref)]["reads"] == n + 1 and after[str(ref)]["reads_by"] == {PARTNER: n, "insights-team": 1}
    assert set(after[str(ref)]["readers"]) == set(consumers) | {PARTNER, "insights-team"}
    assert all(s["reads"] == 0 for p, s in after.items() if p != str(ref))

    run = run_mesh("share", "usage", str(ref), "--json", home=home)
    assert run.returncode == 0, run.stderr
    [usage] = json.loads(run.stdout)
    assert usage["product"] == str(ref) and usage["major"] == current and usage["reads"] == n + 1
    recipients = {(r["name"], r["major"]): r for r in usage["readers"] if r["kind"] == "recipient"}
    assert (recipients[(PARTNER, current)]["reads"], recipients[(PARTNER, current)]["rows"]) == (n, 7 * n)
    assert {r["name"]: r["major"] for r in usage["readers"] if r["kind"] == "product"} == {
        c: current if major is None else major for c, major in consumers.items()}
    # "Who still reads major N?": only its readers.
    [of_other] = json.loads(run_mesh("share", "usage", f"{ref}@{other}", "--json", home=home).stdout)
    assert [(r["name"], r["reads"]) for r in of_other["readers"]] == [("insights-team", 1)]
    table = run_mesh("share", "usage", f"{ref}@{current}", home=home).stdout
    assert PARTNER in table and f"{n:>7}" in table and "insights-team" not in table
    every = json.loads(run_mesh("share", "usage", "-d", source.name, "--json", home=home).stdout)
    assert [u["product"] for u in every] == sorted(str(r) for r in source.products)

    entries = {e["product"]: e for e in json.loads(run_mesh("catalog", "--json", "-d", source.name, home=home).stdout)}
    assert entries[str(ref)]["reads_30d"] == n + 1
    assert {(r["recipient"], r["major"], r["reads"]) for r in entries[str(ref)]["shared_with"]} == {
        (PARTNER, current, n), ("insights-team", other, 1)}
    status = run_mesh("status", "-d", source.name, home=home).stdout
    assert f"shared: {PARTNER} {n} read(s), insights-team 1 read(s)" in status  # by name


def test_usage_of_an_unknown_product_is_a_usage_error_with_a_suggestion(published, workspace):
    home, source = published
    ref = next(iter(sorted(source.products)))
    run = run_mesh("share", "usage", str(ref)[:-1], home=home)
    assert run.returncode == 2 and f"did you mean '{ref}'" in run.stderr, run.stderr


def _scores(home, domain: str) -> dict[str, dict]:
    run = run_mesh("status", "--json", "-d", domain, home=home)
    assert run.returncode in (0, 1), run.stderr
    [reported] = json.loads(run.stdout)["domains"]
    return {score["product"]: score for score in reported["products"]}
