"""The contract registry: what each domain publishes for the others, at one URI, as an append-only log.

A registry is a folder (a path or file://) or s3://bucket/prefix. Entry N, `log/<N:012d>.json`, is the
whole registry after write N (every domain's entry: small JSON, nothing executable) and who wrote what
when; the newest entry is the state, the log its history. Writing entry N+1 is create-exclusive (a
folder: temp file, fsync, os.link; S3: put_object with IfNoneMatch="*"), so two writers never both land
N+1, a write based on an older read is refused with nothing written, and no reader sees half an entry.
Anything else in log/ (a killed writer's temp file, a README) is not an entry and is ignored.
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import stat
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence
from urllib.parse import unquote, urlparse

from mesh_core.declare.names import NAME_PATTERN, is_valid_name
from mesh_core.errors import RegistryError, StaleRegistryWrite
from mesh_core.storage.s3 import s3_client

FORMAT = "mesh-registry/1"
ENV = "MESH_REGISTRY_URI"
_ENTRY = re.compile(r"^(\d{12})\.json$")
_WHERE = "(--registry or $MESH_REGISTRY_URI)"


def registry_uri(explicit: str | None) -> str | None:
    """The registry to use: the one given (`--registry`), else $MESH_REGISTRY_URI, else none."""
    return explicit or os.environ.get(ENV) or None


class _Frozen(Mapping):
    """A read-only mapping that hands out deep copies: no caller can change a state another caller holds."""

    def __init__(self, data: dict):
        self._data = data

    def __getitem__(self, key):
        return copy.deepcopy(self._data[key])

    def __iter__(self) -> Iterator:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return repr(self._data)


@dataclass(frozen=True)
class RegistryState:
    """The registry after entry `seq` (0: nothing published yet)."""

    uri: str
    seq: int
    domains: Mapping[str, dict]  # domain -> its entry
    written: Mapping | None  # who wrote entry `seq`, when, which domain and what changed


class Registry:
    """The registry at one URI. `Registry.at(uri)` gives the folder or the S3 kind; a kind provides
    `_seqs` (its entries' seqs, sorted), `_get` (an entry's bytes), `_create` (create-exclusive) and
    `_where` (an entry's file or key, for messages)."""

    uri: str

    @classmethod
    def at(cls, uri: str | os.PathLike) -> Registry:
        text = os.fspath(uri) if isinstance(uri, os.PathLike) else uri
        if not isinstance(text, str) or not text.strip():
            raise RegistryError(f"Registry URI {uri!r} is empty. Fix: give a folder, file:///path or "
                                f"s3://bucket/prefix {_WHERE}.")
        if "://" not in text:
            return _FolderRegistry(text, Path(text).expanduser())
        parsed = urlparse(text)
        if parsed.scheme == "file" and parsed.netloc in ("", "localhost") and parsed.path:
            return _FolderRegistry(text, Path(unquote(parsed.path)))
        if parsed.scheme == "s3" and parsed.netloc:
            return _S3Registry(text, parsed.netloc, parsed.path.strip("/"))
        raise RegistryError(f"Registry URI {text} is neither a folder (a path or file:///path) nor s3://bucket/prefix. "
                            f"Fix: give one of those {_WHERE}.")

    def read(self, *, missing_ok: bool = False) -> RegistryState:
        """The newest state. A registry with no entry yet is an error, or the empty state with `missing_ok`
        (for the first publish)."""
        seqs = self._seqs(missing_ok) if missing_ok else self._entries()
        if not seqs:
            return RegistryState(self.uri, 0, _Frozen({}), None)
        return self._state(seqs[-1], self._load(seqs[-1], seqs))

    def entry_at(self, seq: int) -> RegistryState:
        """The state after write `seq`."""
        seqs = self._entries()
        if seq not in seqs:
            have = f"entries 1 to {seqs[-1]}"
            raise RegistryError(f"The registry at {self.uri} has no entry {seq}: it holds {have}. "
                                "Fix: pick a seq from `mesh registry history`.")
        return self._state(seq, self._load(seq, seqs))

    def history(self, domain: str | None = None) -> list[dict]:
        """Who wrote what when, oldest first: each entry's "written" record and its "seq"."""
        seqs = self._entries()
        records = ({"seq": seq, **self._load(seq, seqs)["written"]} for seq in seqs)
        return [r for r in records if domain is None or r.get("domain") == domain]

    def write(self, base: RegistryState, domain: str, entry: dict | None, *, by: str,
              changes: Sequence[str]) -> RegistryState:
        """Entry base.seq+1: `base` with `domain`'s entry replaced (None removes the domain).
        StaleRegistryWrite, with nothing written, if another write landed base.seq+1 first."""
        nothing = f"nothing was written to the registry at {self.uri}"
        if base.uri != self.uri:
            raise RegistryError(f"A state read from {base.uri} cannot be the base of a write to {self.uri}: {nothing}.")
        if not is_valid_name(domain):
            raise RegistryError(f"{domain!r} is not a domain name (lower snake case, {NAME_PATTERN.pattern}): "
                                f"{nothing}.")
        if not isinstance(by, str) or not by.strip():
            raise RegistryError(f"A registry write must name who made it (`by`, a non-empty string): {nothing}.")
        if isinstance(changes, str) or not all(isinstance(change, str) for change in changes):
            raise RegistryError(f"`changes` must be a list of strings, one per change: {nothing}.")
        domains = {name: base.domains[name] for name in base.domains}
        if entry is not None:
            domains[domain] = entry
        elif domains.pop(domain, None) is None:
            raise RegistryError(f"Domain {domain} is not in the registry at {self.uri}, so it cannot be removed: "
                                f"{nothing}.")
        seq = base.seq + 1
        written = {"domain": domain, "by": by, "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "changes": list(changes), "removed": entry is None}
        try:
            body = json.dumps({"format": FORMAT, "seq": seq, "written": written, "domains": domains},
                              indent=1, sort_keys=True, allow_nan=False).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            raise RegistryError(f"Domain {domain}'s entry is not plain JSON ({exc}): {nothing}.") from None
        self._create(seq, body)
        return self._state(seq, json.loads(body))

    def _entries(self) -> list[int]:
        if seqs := self._seqs(False):
            return seqs
        raise RegistryError(f"No registry at {self.uri}: it holds no entry yet. Fix: publish a domain to create it "
                            f"(`mesh registry publish -d DOMAIN`), or fix the URI {_WHERE}.")

    def _state(self, seq: int, doc: dict) -> RegistryState:
        return RegistryState(self.uri, seq, _Frozen(doc["domains"]), _Frozen(doc["written"]))

    def _load(self, seq: int, seqs: list[int]) -> dict:
        """Entry `seq`, checked: a file that is not a whole entry of this registry is an error saying how to mend it."""
        try:
            doc = json.loads(self._get(seq), parse_constant=_no_constant)
            problem = _problem(doc, seq)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            problem = f"it is not valid JSON ({exc})"
        except RecursionError:  # nesting deeper than the parser goes: no entry Mesh writes is like that
            problem = "it is not valid JSON (nested too deeply to read)"
        if problem is None:
            return doc
        if problem is _NEWER:  # a whole entry, in a format a newer mesh-core writes: not corruption
            raise RegistryError(f"Entry {seq} of the registry at {self.uri} is format {doc['format']!r}, written by a "
                                f"newer mesh-core; this one reads {FORMAT}. Fix: upgrade mesh-core here.")
        where = self._where(seq)
        if seq != seqs[-1]:
            fix = f"restore {where} from a backup (an older entry: the current state still reads)"
        elif len(seqs) > 1:
            fix = (f"restore {where} from a backup, or delete it so entry {seqs[-2]} ({self._where(seqs[-2])}) is "
                   f"current again, then publish again the domain that write {seq} published")
        else:
            fix = f"restore {where} from a backup, or delete it (the registry is then empty) and publish again"
        raise RegistryError(f"Entry {seq} of the registry at {self.uri} is corrupt: {where}: {problem}. Fix: {fix}.")

    def _stale(self, seq: int) -> StaleRegistryWrite:
        return StaleRegistryWrite(f"Entry {seq} of the registry at {self.uri} was written by another write after "
                                  f"this one read entry {seq - 1}: nothing was written. Fix: read the registry "
                                  "again and retry.")


def _no_constant(name: str) -> None:
    """NaN and Infinity are not JSON: a write refuses them (allow_nan=False), so a read does too."""
    raise ValueError(f"{name} is not a JSON value")


def _problem(doc: object, seq: int) -> str | None:
    """What makes `doc` not entry `seq` of a registry, or None."""
    if isinstance(doc, dict) and isinstance(doc.get("format"), str) and _newer(doc["format"]):
        return _NEWER
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return f"it is not a {FORMAT} entry (no \"format\": \"{FORMAT}\")"
    if doc.get("seq") != seq:
        return f"it says it is entry {doc.get('seq')!r}, but its name says {seq}"
    if not isinstance(doc.get("written"), dict) or not isinstance(doc.get("domains"), dict):
        return "it lacks its \"written\" or \"domains\" object"
    bad = sorted(str(d) for d, e in doc["domains"].items() if not is_valid_name(d) or not isinstance(e, dict))
    return f"its domains {bad} are not Mesh names with an object each" if bad else None


_NEWER = "a newer format"


def _newer(found: str) -> bool:
    """A `mesh-registry/N` format above this mesh-core's."""
    prefix, _, number = FORMAT.rpartition("/")
    head, _, version = found.rpartition("/")
    return head == prefix and version.isdigit() and int(version) > int(number)


class _FolderRegistry(Registry):
    def __init__(self, uri: str, root: Path):
        self.uri, self._root, self._log = uri, root, root / "log"

    def _where(self, seq: int) -> str:
        return str(self._log / f"{seq:012d}.json")

    def _seqs(self, missing_ok: bool) -> list[int]:
        try:
            names = os.listdir(self._log)
        except (FileNotFoundError, NotADirectoryError):
            names = []
        except OSError as exc:
            raise RegistryError(f"Cannot list {self._log} of the registry at {self.uri}: {exc.strerror or exc}. "
                                "Fix: make the folder readable by this user.") from None
        try:  # one stat: a writer may create the folder meanwhile
            problem = None if stat.S_ISDIR(os.stat(self._root).st_mode) else "is not a folder"
        except FileNotFoundError:
            problem = None if missing_ok else "does not exist"
        if problem:
            raise RegistryError(f"No registry at {self.uri}: {self._root} {problem}. Fix: publish a domain to create "
                                f"it (`mesh registry publish -d DOMAIN`), or fix the URI {_WHERE}.")
        return sorted(int(match[1]) for name in names if (match := _ENTRY.match(name)))

    def _get(self, seq: int) -> bytes:
        try:
            return Path(self._where(seq)).read_bytes()
        except OSError as exc:
            raise RegistryError(f"Cannot read {self._where(seq)} of the registry at {self.uri}: {exc.strerror or exc}. "
                                "Fix: make the folder readable by this user.") from None

    def _create(self, seq: int, body: bytes) -> None:
        final, temp = self._where(seq), self._log / f".{seq:012d}.{secrets.token_hex(8)}.tmp"
        try:
            self._log.mkdir(parents=True, exist_ok=True)
            try:
                with open(temp, "xb") as handle:
                    handle.write(body)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.link(temp, final)  # the commit point: fails if entry `seq` exists, never replaces it
            except FileExistsError:
                raise self._stale(seq) from None
            finally:
                temp.unlink(missing_ok=True)
            descriptor = os.open(self._log, os.O_RDONLY)  # the new name survives a power cut too
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        except OSError as exc:
            raise RegistryError(f"Cannot write {final} of the registry at {self.uri}: {exc.strerror or exc}. Fix: make "
                                "the folder writable by this user, on a file system with hard links.") from None


class _S3Registry(Registry):
    def __init__(self, uri: str, bucket: str, prefix: str):
        self.uri, self._bucket, self._log = uri, bucket, f"{prefix}/log/" if prefix else "log/"

    def _key(self, seq: int) -> str:
        return f"{self._log}{seq:012d}.json"

    def _where(self, seq: int) -> str:
        return f"s3://{self._bucket}/{self._key(seq)}"

    def _seqs(self, missing_ok: bool) -> list[int]:
        with self._failures("read"):
            pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=self._log)
            keys = [item["Key"][len(self._log):] for page in pages for item in page.get("Contents", ())]
        return sorted(int(match[1]) for key in keys if (match := _ENTRY.match(key)))

    def _get(self, seq: int) -> bytes:
        with self._failures(f"read {self._where(seq)} of"):
            return s3_client().get_object(Bucket=self._bucket, Key=self._key(seq))["Body"].read()

    def _create(self, seq: int, body: bytes) -> None:
        from botocore.exceptions import ClientError

        with self._failures(f"write {self._where(seq)} of"):
            try:  # IfNoneMatch="*": S3 refuses (412) to create a key that exists
                s3_client().put_object(Bucket=self._bucket, Key=self._key(seq), Body=body, IfNoneMatch="*",
                                       ContentType="application/json")
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status not in (409, 412):
                    raise
                # 409: another write of this key is under way. 412: the key exists, written by another write or
                # by a retry of this one whose first answer was lost (then the bytes are ours).
                if status == 409 or self._get(seq) != body:
                    raise self._stale(seq) from None

    @contextmanager
    def _failures(self, doing: str):
        """S3 failures as one RegistryError line naming the URI and the cause."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            cause = (f"bucket {self._bucket} does not exist" if error.get("Code") == "NoSuchBucket"
                     else f"{error.get('Code')}: {error.get('Message')}")
            raise RegistryError(f"Cannot {doing} the registry at {self.uri}: {cause}. Fix: create the bucket or fix "
                                f"the URI {_WHERE}, and give this environment's credentials (AWS_*) s3:ListBucket, "
                                "s3:GetObject and s3:PutObject on it.") from None
        except BotoCoreError as exc:
            raise RegistryError(f"Cannot {doing} the registry at {self.uri}: {exc}. Fix: check the S3 endpoint "
                                "(AWS_ENDPOINT_URL), region (AWS_REGION) and credentials (AWS_*) of this "
                                "environment.") from None
