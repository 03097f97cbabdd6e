"""Who may read the mesh over Delta Sharing: recipients and their bearer tokens.

A recipient is a name given at `mesh share token create NAME`. A name that is a domain of the
workspace reads AS that domain (its own internal products too); anyone else reads as an outsider,
`recipient:NAME`, which no domain name can equal. Tokens are stored only as SHA-256 hashes, in the
Dagster instance's key-value store (so one store serves SQLite and PostgreSQL instances alike),
changed under a file lock in $DAGSTER_HOME and re-read inside it, so two `create`s at once both land.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Iterator

from mesh_core.errors import MeshError
from mesh_core.share.errors import ShareAuthError, ShareNotFoundError

log = logging.getLogger(__name__)

KEY = "mesh/share/recipients"
OUTSIDER_PREFIX = "recipient:"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
DEFAULT_EXPIRES_DAYS, MAX_EXPIRES_DAYS = 90, 3650
LOCK_SECONDS = 60.0
MAX_TOKEN_CHARS = 512  # a token is 43 characters; anything far longer is not one of ours


class RecipientError(MeshError):
    """A recipient name or option that cannot be used; the message says which and how to fix it."""


@dataclass(frozen=True)
class Recipient:
    name: str
    reader: str  # the domain it reads as, or `recipient:NAME`
    created_at: datetime  # UTC
    expires_at: datetime  # UTC
    revoked_at: datetime | None = None
    token_hash: str = field(default="", repr=False, compare=False)  # binds file URLs to this token; never shown

    @property
    def kind(self) -> str:
        return "domain" if self.reader == self.name else "outsider"

    @property
    def state(self) -> str:
        return self.state_at(datetime.now(timezone.utc))

    def state_at(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if now >= self.expires_at else "active"

    def as_dict(self) -> dict:
        """What `mesh share token list --json` prints: never the hash."""
        iso = lambda value: value.isoformat(timespec="seconds") if value else None  # noqa: E731
        return {"name": self.name, "kind": self.kind, "reader": self.reader, "state": self.state,
                "created_at": iso(self.created_at), "expires_at": iso(self.expires_at), "revoked_at": iso(self.revoked_at)}


def validate_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise RecipientError(
            f"Invalid recipient name {name!r}: use 1 to 63 lower-case letters, digits, '_' or '-', starting with a "
            "letter (e.g. 'insights' for a domain, 'acme-bi' for a partner).")
    return name


def reader_for(name: str, domains: Iterable[str]) -> str:
    """The reader a recipient reads as: the domain of that name, else an outsider."""
    return name if name in set(domains) else f"{OUTSIDER_PREFIX}{name}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Recipients:
    """The recipients of one Dagster instance."""

    def __init__(self, instance) -> None:
        self._instance = instance

    # -- reading -------------------------------------------------------------------------

    def list(self) -> list[Recipient]:
        return [_recipient(name, record) for name, record in sorted(self._load().items())]

    def get(self, name: str) -> Recipient:
        records = self._load(skip_damaged=True)
        if name not in records:
            raise self._unknown(name, records)
        return _recipient(name, records[name])

    def authenticate(self, token: str, now: datetime | None = None) -> Recipient:
        """The recipient holding `token`; ShareAuthError if it is unknown, revoked or expired. Every
        stored hash is compared (in constant time), so the answer's timing does not say which matched."""
        now = now or datetime.now(timezone.utc)
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise ShareAuthError("No valid bearer token: send `Authorization: Bearer <token>` from your profile file.")
        digest = token_hash(token)
        found = None
        for name, record in self._load(skip_damaged=True).items():
            if hmac.compare_digest(digest, str(record.get("hash", ""))):
                found = _recipient(name, record)
        if found is None:
            raise ShareAuthError("Unknown bearer token: ask the mesh's operators for a profile "
                                 "(`mesh share token create NAME --profile FILE`).")
        state = found.state_at(now)
        if state != "active":
            raise ShareAuthError(f"The token of recipient '{found.name}' was {state} on "
                                 f"{(found.revoked_at or found.expires_at).isoformat(timespec='seconds')}: "
                                 "ask the mesh's operators for a new profile.")
        return found

    # -- changing ------------------------------------------------------------------------

    def create(self, name: str, *, domains: Iterable[str], expires_days: int = DEFAULT_EXPIRES_DAYS,
               rotate: bool = False, now: datetime | None = None) -> tuple[Recipient, str]:
        """A new token for `name`: (the recipient, the token, shown this once). An active recipient
        keeps its token unless `rotate`, which replaces it (the old one stops working at once)."""
        validate_name(name)
        if isinstance(expires_days, bool) or not isinstance(expires_days, int) or not 1 <= expires_days <= MAX_EXPIRES_DAYS:
            raise RecipientError(f"Invalid expiry {expires_days!r} days for recipient '{name}': "
                                 f"a whole number of days from 1 to {MAX_EXPIRES_DAYS} (default {DEFAULT_EXPIRES_DAYS}).")
        now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
        domains = list(domains)
        token = secrets.token_urlsafe(32)
        with self._lock():
            records = self._load(replacing=name if rotate else None)
            old = records.get(name)
            if old is not None and not rotate and _recipient(name, old).state_at(now) == "active":
                raise RecipientError(
                    f"Recipient '{name}' already has an active token (expires "
                    f"{_recipient(name, old).expires_at.date().isoformat()}). Fix: pass --rotate to replace it "
                    f"(the old token stops working), or `mesh share token revoke {name}` first.")
            if old is None and rotate:
                raise self._unknown(name, records, fix="drop --rotate to create it")
            record = {"hash": token_hash(token), "reader": reader_for(name, domains), "created_at": now.isoformat(),
                      "expires_at": (now + timedelta(days=expires_days)).isoformat(), "revoked_at": None}
            records[name] = record
            self._save(records)
        return _recipient(name, record), token

    def revoke(self, name: str, now: datetime | None = None) -> Recipient:
        """Stop `name`'s token working; the record stays (state revoked) so `list` still shows it.
        Revoking a revoked recipient changes nothing."""
        now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
        with self._lock():
            records = self._load()
            if name not in records:
                raise self._unknown(name, records)
            if records[name].get("revoked_at") is None:
                records[name] = {**records[name], "revoked_at": now.isoformat()}
                self._save(records)
        return _recipient(name, records[name])

    # -- storage -------------------------------------------------------------------------

    def _load(self, replacing: str | None = None, *, skip_damaged: bool = False) -> dict[str, dict]:
        """The stored records, each checked: a damaged one stops every command, naming it, rather than be
        overwritten unseen; the server (`skip_damaged`) leaves it out and logs it, so the others still get
        in. Only `replacing`, the recipient `create --rotate` gives a new token, may be damaged."""
        text = self._instance.run_storage.get_cursor_values({KEY}).get(KEY)
        if not text:
            return {}
        try:
            records = json.loads(text)
        except json.JSONDecodeError:
            records = None
        if not isinstance(records, dict):
            raise MeshError(f"The recipients stored under '{KEY}' in the Dagster instance are not a JSON object of "
                            "recipients; restore the instance's database from a backup.")
        for name, record in list(records.items()):
            if name != replacing and not _is_record(record):
                if skip_damaged:
                    log.error("Recipient %r stored under '%s' is damaged: its token is refused until "
                              "`mesh share token create %s --rotate` replaces it.", name[:70], KEY, name[:70])
                    del records[name]
                    continue
                raise MeshError(f"The recipient {name[:70]!r} stored under '{KEY}' in the Dagster instance is damaged. "
                                f"Fix: `mesh share token create {name[:70]} --rotate --profile FILE` gives it a new token, "
                                "or restore the instance's database from a backup.")
        return records

    def _save(self, records: dict[str, dict]) -> None:
        self._instance.run_storage.set_cursor_values({KEY: json.dumps(records, sort_keys=True)})

    @contextmanager
    def _lock(self) -> Iterator[None]:
        from filelock import FileLock, Timeout

        root = self._instance.root_directory
        if not root:
            raise MeshError("The Dagster instance has no home folder to lock the recipients in; set DAGSTER_HOME.")
        lock = FileLock(str(Path(root) / ".mesh-share-recipients.lock"), timeout=LOCK_SECONDS)
        try:
            lock.acquire()
        except Timeout:
            raise MeshError(f"Another `mesh share token` command held {lock.lock_file} for {LOCK_SECONDS:.0f}s; "
                            "try again when it has finished.") from None
        try:
            yield
        finally:
            lock.release()

    @staticmethod
    def _unknown(name: str, records: dict, fix: str = "") -> ShareNotFoundError:
        from mesh_core.governance.workspace import did_you_mean

        known = sorted(records)
        return ShareNotFoundError(
            f"No recipient '{name}'{did_you_mean(name, known)}; recipients: {', '.join(known) or 'none yet'}."
            + (f" Fix: {fix}." if fix else " Fix: `mesh share token list` shows them."))


def _is_record(record: object) -> bool:
    if not isinstance(record, dict) or not all(isinstance(record.get(key), str) for key in ("hash", "reader", "created_at", "expires_at")):
        return False
    try:
        stamps = [datetime.fromisoformat(record[key]) for key in ("created_at", "expires_at")]
        if record.get("revoked_at") is not None:
            stamps.append(datetime.fromisoformat(record["revoked_at"]))
    except (TypeError, ValueError):
        return False
    return all(stamp.tzinfo is not None for stamp in stamps)


def _recipient(name: str, record: dict) -> Recipient:
    when = lambda key: datetime.fromisoformat(record[key]) if record.get(key) else None  # noqa: E731
    return Recipient(name=name, reader=record["reader"], created_at=when("created_at"),
                     expires_at=when("expires_at"), revoked_at=when("revoked_at"), token_hash=record["hash"])


def check_profile_path(path: str | Path) -> Path:
    """A path a profile can be written to: its folder exists and it is not a folder itself."""
    path = Path(path)
    if not path.parent.is_dir():
        raise RecipientError(f"Cannot write the profile {path}: the folder {path.parent} does not exist. "
                             "Fix: create it, or pass --profile with a path in an existing folder.")
    if path.is_dir():
        raise RecipientError(f"Cannot write the profile {path}: it is a folder. Fix: pass a file name, e.g. {path}/NAME.share.")
    return path


def write_profile(path: str | Path, endpoint: str, token: str, expires_at: datetime) -> Path:
    """The recipient's Delta Sharing profile file (JSON), written atomically with mode 0600."""
    path = check_profile_path(path)
    text = json.dumps({"shareCredentialsVersion": 1, "endpoint": endpoint, "bearerToken": token,
                       "expirationTime": expires_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}, indent=2) + "\n"
    temp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise RecipientError(f"Cannot write the profile {path}: {exc.strerror or exc}.") from None
    return path
