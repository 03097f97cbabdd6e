import hashlib
import json
import stat
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from mesh_core.share.errors import ShareAuthError, ShareNotFoundError
from mesh_core.share.recipients import KEY, Recipients, RecipientError, write_profile
from tests.support import REPO, workspace_domains

DOMAINS = workspace_domains()
OUTSIDER = "acme-bi"  # a partner: not a domain (checked below), so it reads as an outsider
assert OUTSIDER not in DOMAINS


def test_a_token_is_stored_only_as_its_hash_and_authenticates_its_recipient(instance):
    recipients = Recipients(instance)
    recipient, token = recipients.create(OUTSIDER, domains=DOMAINS)
    stored = instance.run_storage.get_cursor_values({KEY})[KEY]
    assert token not in stored and hashlib.sha256(token.encode()).hexdigest() in stored
    assert recipient.reader == f"recipient:{OUTSIDER}" and recipient.kind == "outsider" and recipient.state == "active"
    assert recipient.expires_at - recipient.created_at == timedelta(days=90)
    assert recipients.authenticate(token) == recipient
    with pytest.raises(ShareAuthError, match="Unknown bearer token"):
        recipients.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B"))
    for bad in ("", None, "x" * 10_000):
        with pytest.raises(ShareAuthError):
            recipients.authenticate(bad)


def test_a_domain_recipient_reads_as_that_domain(instance):
    recipient, _ = Recipients(instance).create(DOMAINS[-1], domains=DOMAINS)
    assert recipient.reader == DOMAINS[-1] and recipient.kind == "domain"


def test_revoked_and_expired_tokens_are_refused_and_revoked_stays_listed(instance):
    recipients = Recipients(instance)
    _, token = recipients.create(OUTSIDER, domains=DOMAINS, expires_days=1)
    assert recipients.authenticate(token, now=datetime.now(timezone.utc) + timedelta(hours=23)).name == OUTSIDER
    with pytest.raises(ShareAuthError, match=f"'{OUTSIDER}' was expired"):
        recipients.authenticate(token, now=datetime.now(timezone.utc) + timedelta(days=1, seconds=1))
    revoked = recipients.revoke(OUTSIDER)
    assert revoked.state == "revoked"
    with pytest.raises(ShareAuthError, match="was revoked"):
        recipients.authenticate(token)
    assert [(r.name, r.state) for r in recipients.list()] == [(OUTSIDER, "revoked")]
    assert recipients.revoke(OUTSIDER).revoked_at == revoked.revoked_at  # again: nothing changes
    # A revoked recipient may get a new token without --rotate.
    _, fresh = recipients.create(OUTSIDER, domains=DOMAINS)
    assert recipients.authenticate(fresh).state == "active"


def test_create_refuses_an_active_recipient_unless_rotating_and_rotation_kills_the_old_token(instance):
    recipients = Recipients(instance)
    _, old = recipients.create(OUTSIDER, domains=DOMAINS)
    before = instance.run_storage.get_cursor_values({KEY})[KEY]
    with pytest.raises(RecipientError, match="already has an active token.*--rotate"):
        recipients.create(OUTSIDER, domains=DOMAINS)
    assert instance.run_storage.get_cursor_values({KEY})[KEY] == before
    _, new = recipients.create(OUTSIDER, domains=DOMAINS, rotate=True)
    assert recipients.authenticate(new).name == OUTSIDER
    with pytest.raises(ShareAuthError):
        recipients.authenticate(old)


@pytest.mark.parametrize("name", ["Acme", "1team", "a b", "../etc", "a" * 64, "", "team.x", "recipient:x"])
def test_bad_names_and_expiries_are_refused_and_change_nothing(instance, name):
    recipients = Recipients(instance)
    with pytest.raises(RecipientError, match="Invalid recipient name"):
        recipients.create(name, domains=DOMAINS)
    for days in (0, 3651, -1, True, 1.5):
        with pytest.raises(RecipientError, match="from 1 to 3650"):
            recipients.create(OUTSIDER, domains=DOMAINS, expires_days=days)
    assert recipients.list() == [] and not instance.run_storage.get_cursor_values({KEY})


def test_unknown_recipients_are_named_with_a_suggestion(instance):
    recipients = Recipients(instance)
    recipients.create(OUTSIDER, domains=DOMAINS)
    with pytest.raises(ShareNotFoundError, match=f"No recipient 'acme-b' \\(did you mean '{OUTSIDER}'\\?\\)"):
        recipients.revoke("acme-b")
    with pytest.raises(ShareNotFoundError, match="drop --rotate"):
        recipients.create("nobody", domains=DOMAINS, rotate=True)


CREATE = """
import sys, time
from pathlib import Path
import dagster as dg
from mesh_core.share.recipients import Recipients
name, go = sys.argv[1], Path(sys.argv[2])
with dg.DagsterInstance.get() as instance:
    recipients = Recipients(instance)
    recipients.list()  # connected and ready before the start
    while not go.exists():
        time.sleep(0.002)
    print(recipients.create(name, domains=[])[1])
"""


def test_creates_in_concurrent_processes_lose_no_recipient(dagster_home, tmp_path):
    from mesh_core.instance.home import prepare_instance

    prepare_instance(dagster_home)  # as every `mesh` command does: a fresh sqlite instance is made once, not raced
    go = tmp_path / "go"
    names = [f"team-{i}" for i in range(4)]
    processes = [subprocess.Popen([sys.executable, "-c", CREATE, name, str(go)], cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for name in names]
    time.sleep(3)
    go.touch()
    tokens = {}
    for name, process in zip(names, processes):
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        tokens[name] = out.strip()
    with dg.DagsterInstance.get() as instance:
        recipients = Recipients(instance)
        assert [r.name for r in recipients.list()] == names
        assert {name: recipients.authenticate(token).name for name, token in tokens.items()} == {n: n for n in names}


def test_the_profile_is_written_atomically_for_its_owner_only(tmp_path):
    expires = datetime(2027, 3, 5, 12, 0, tzinfo=timezone.utc)
    path = write_profile(tmp_path / "acme.share", "http://127.0.0.1:8080/delta-sharing", "tok", expires)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"shareCredentialsVersion": 1, "endpoint": "http://127.0.0.1:8080/delta-sharing",
                                            "bearerToken": "tok", "expirationTime": "2027-03-05T12:00:00Z"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acme.share"]  # no temp file left behind
    with pytest.raises(RecipientError, match="folder .*missing does not exist"):
        write_profile(tmp_path / "missing" / "acme.share", "http://x", "tok", expires)
    assert not (tmp_path / "missing").exists()
