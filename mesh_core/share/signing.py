"""The URLs a query hands out for a version's data files, each good for one recipient and a while.

Local ports: the server serves the file itself at `/delta-sharing/files/<share>/<schema>/<table>/
<version>/<file>?recipient=..&expires=..&signature=..`, the signature an HMAC-SHA256 over all of
them with a secret only the server knows (32 random bytes, `$DAGSTER_HOME/sharing/url_secret`,
mode 0600, made once). A URL changed in any part, or past its expiry, is refused before anything
is read. Ports on S3: a pre-signed GET URL from boto3 with the same lifetime (credentials and
endpoint from the environment, as every other S3 access of Mesh).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import quote, urlencode

from mesh_core.errors import MeshError
from mesh_core.share.errors import ShareError, ShareForbiddenError
from mesh_core.storage.s3 import s3_client

SECRET_BYTES = 32
DEFAULT_TTL_SECONDS = 15 * 60
MIN_TTL_SECONDS, MAX_TTL_SECONDS = 10, 7 * 24 * 3600  # S3 pre-signed URLs last at most 7 days
FILES_PATH = "/delta-sharing/files"
_MAX_EXPIRES_DIGITS = 12


def url_secret(dagster_home: str | os.PathLike) -> bytes:
    """The server's signing secret, made on first use: written whole to a temporary file (0600)
    and linked into place, so two servers starting at once end up with one secret, never half of one."""
    folder = Path(dagster_home) / "sharing"
    path = folder / "url_secret"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            temp = folder / f".url_secret.{secrets.token_hex(6)}.tmp"
            descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(descriptor, "wb") as handle:
                    handle.write(secrets.token_bytes(SECRET_BYTES))
                    handle.flush()
                    os.fsync(handle.fileno())
                try:
                    os.link(temp, path)  # fails if another process linked its own first: use that one
                except FileExistsError:
                    pass
            finally:
                temp.unlink(missing_ok=True)
        secret = path.read_bytes()
    except OSError as exc:
        raise MeshError(f"Cannot read or create the URL signing secret {path}: {exc.strerror or exc}. "
                        "Fix: make $DAGSTER_HOME writable by the user running `mesh serve`.") from None
    if len(secret) != SECRET_BYTES:
        raise MeshError(f"The URL signing secret {path} holds {len(secret)} bytes, not {SECRET_BYTES}: it was changed "
                        "outside Mesh. Fix: delete it; `mesh serve` makes a new one (URLs handed out before stop working).")
    return secret


@dataclass(frozen=True)
class FileGrant:
    """What a signed file URL lets its holder read: one file of one version of one table, until `expires`."""

    share: str
    schema: str
    table: str
    version: int
    name: str
    recipient: str
    expires: int  # Unix seconds
    token: str = ""  # the stored hash of the recipient's token when signed (never in the URL): a rotated or
    # re-created token voids the URLs handed out under the old one

    def message(self) -> bytes:
        parts = ("mesh-share-file-v2", self.share, self.schema, self.table, str(self.version), self.name,
                 self.recipient, str(self.expires), self.token)
        return "\n".join(parts).encode()

    def path(self) -> str:
        return "/".join([FILES_PATH, self.share, self.schema, self.table, str(self.version), quote(self.name)])


class UrlSigner:
    """Signs and checks local file URLs; `ttl` seconds is how long a URL works."""

    def __init__(self, secret: bytes, ttl: int = DEFAULT_TTL_SECONDS, clock: Callable[[], float] = time.time):
        if len(secret) < SECRET_BYTES:
            raise MeshError(f"A URL signing secret needs {SECRET_BYTES} bytes; got {len(secret)}.")
        check_ttl(ttl)
        self._secret = secret
        self.ttl = ttl
        self.clock = clock

    def expiry(self) -> int:
        return int(self.clock()) + self.ttl

    def signature(self, grant: FileGrant) -> str:
        return hmac.new(self._secret, grant.message(), hashlib.sha256).hexdigest()

    def url(self, base: str, grant: FileGrant) -> str:
        """`base` is the server's own origin as the client reached it (scheme://host:port)."""
        query = urlencode({"recipient": grant.recipient, "expires": grant.expires, "signature": self.signature(grant)})
        return f"{base.rstrip('/')}{grant.path()}?{query}"

    def verify(self, share: str, schema: str, table: str, version: int, name: str, recipient: str | None,
               expires: str | None, signature: str | None, token: str = "") -> FileGrant:
        """The grant a URL carries, if its signature matches (compared in constant time) and it has not
        expired. `token` is the stored hash of the named recipient's token now ('' if there is none)."""
        if not (recipient and expires and signature):
            raise ShareForbiddenError("This file URL is not signed: use the URL a query of the table returned.")
        if not (expires.isascii() and expires.isdigit() and len(expires) <= _MAX_EXPIRES_DIGITS):
            raise ShareForbiddenError("This file URL's expiry is not a time: use the URL a query of the table returned.")
        grant = FileGrant(share, schema, table, version, name, recipient, int(expires), token)
        if not hmac.compare_digest(self.signature(grant), signature.encode("ascii", "replace").decode()):
            raise ShareForbiddenError("This file URL's signature does not match: it was changed, signed by another "
                                      "server, or its recipient's token was replaced since. Query the table again for a new URL.")
        if grant.expires <= self.clock():
            raise ShareForbiddenError(f"This file URL expired at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(grant.expires))}: "
                                      "query the table again for a new URL.")
        return grant


def check_ttl(ttl: object) -> int:
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not MIN_TTL_SECONDS <= ttl <= MAX_TTL_SECONDS:
        raise MeshError(f"URL lifetime {ttl!r} seconds: give a whole number from {MIN_TTL_SECONDS} to {MAX_TTL_SECONDS} "
                        f"(default {DEFAULT_TTL_SECONDS}, 15 minutes).")
    return ttl


# -- S3 ----------------------------------------------------------------------------------


def presigned_s3_url(port_uri: str, name: str, ttl: int) -> str:
    """A pre-signed GET URL for the data file `name` of the port at `port_uri` (s3://bucket/key...)."""
    bucket, _, prefix = port_uri[len("s3://"):].partition("/")
    key = f"{prefix.rstrip('/')}/{name}" if prefix else name
    try:
        return s3_client().generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=ttl)
    except Exception as exc:
        raise ShareError(f"Could not pre-sign a URL for a file of the port at {port_uri}: {type(exc).__name__}. "
                         "The server's S3 credentials (AWS_* in its environment) need s3:GetObject on the ports.") from exc
