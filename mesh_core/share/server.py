"""`mesh serve`: a Delta Sharing server (PROTOCOL.md) over the mesh's output ports, on Starlette and uvicorn.

Routes under `/delta-sharing`: list shares, get a share, list schemas, list a schema's tables, list
all tables of a share, a table's version (`GET .../version`, and the older `HEAD .../tables/{t}`),
its metadata, a query (`POST .../query`), and the data files the query's signed URLs point at.
Every API request carries a recipient's bearer token (`mesh share token create`); what a recipient
sees is `mesh_core.share.tables`. Every answered query is recorded as usage in the instance.

Safe by default: it binds 127.0.0.1, and refuses another address unless it serves TLS or is told
it runs behind a TLS proxy. A request reaches the file system only through a product's port, for
a file of a published version, after its signature, expiry, recipient and visibility are checked.
Bodies and URLs are bounded, each recipient has a token-bucket rate, and every refusal is a
protocol error body with its status; an unexpected failure is a 500 body, logged here, without a
traceback.
"""

from __future__ import annotations

import base64
import errno
import ipaddress
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from mesh_core.declare.majors import major_of
from mesh_core.declare.names import is_valid_name
from mesh_core.errors import IntegrityError, MeshError, ProductNotPublishedError, VersionNotFoundError
from mesh_core.storage.port import data_file_checksum
from mesh_core.share import protocol
from mesh_core.share.errors import (
    ShareAuthError,
    ShareBadRequestError,
    ShareError,
    ShareForbiddenError,
    ShareNotFoundError,
    ShareRateLimitError,
    ShareTooLargeError,
    ShareUriTooLongError,
)
from mesh_core.share.signing import DEFAULT_TTL_SECONDS, FileGrant, UrlSigner, presigned_s3_url
from mesh_core.share.tables import ShareCatalog, SharedTable, request_name

log = logging.getLogger(__name__)

PREFIX = "/delta-sharing"
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080
DEFAULT_RATE = 100.0  # requests per second per recipient; the burst allows 4 s of it at once
MAX_BODY_BYTES = 64 * 1024
MAX_URL_BYTES = 4096
MAX_PAGE = 1000
FILE_CACHE_BYTES = 256 * 1024 * 1024  # verified data files kept in memory (their names carry their checksum)
CHUNK_BYTES = 1024 * 1024  # a large data file is read and sent in chunks of this size


# -- limits ------------------------------------------------------------------------------

class RateLimiter:
    """One token bucket per recipient: `rate` requests a second, up to `burst` at once."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic):
        if not rate > 0:
            raise MeshError(f"--rate-limit {rate!r}: give the requests a second each recipient may send (> 0).")
        self.rate, self.burst, self.clock = float(rate), float(burst or 4 * rate), clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 if a request may go now, else the seconds until one may."""
        now = self.clock()
        with self._lock:
            tokens, then = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


class _FileCache:
    """Verified data files by (port, name), least recently used out first, bounded in bytes."""

    def __init__(self, limit: int = FILE_CACHE_BYTES):
        self.limit, self.size = limit, 0
        self._items: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: tuple[str, str], data: bytes) -> None:
        if len(data) > self.limit // 4:
            return
        with self._lock:
            if key not in self._items:
                self._items[key] = data
                self.size += len(data)
            while self.size > self.limit:
                _, old = self._items.popitem(last=False)
                self.size -= len(old)


@dataclass(frozen=True)
class _LargeFile:
    """A verified data file too large to hold in memory per request: sent from disk, a chunk at a time."""

    fs: object
    path: str
    size: int

    def chunks(self, start: int, stop: int) -> Iterator[bytes]:
        with self.fs.open_input_file(self.path) as handle:
            handle.seek(start)
            while start < stop:
                data = handle.read(min(CHUNK_BYTES, stop - start))
                if not data:
                    return
                start += len(data)
                yield data


class _LargeFiles:
    """Data files above `threshold` bytes: each hashed once, as it streams (never whole in memory), against
    the checksum in its name, and served from disk while its size and modification time are those it was
    verified with. Holding each in memory per request let a few concurrent readers of one large product
    take the server's memory (six of a 100 MB file: 1.2 GB)."""

    def __init__(self, threshold: int):
        self.threshold = threshold
        self._verified: dict[tuple[str, str], tuple[int, int]] = {}

    def open(self, port, version: int, name: str) -> _LargeFile | None:
        """The file if it is large and verified; None for a small or missing one (read the usual way)."""
        import hashlib

        import pyarrow.fs as pafs

        if port.uri.startswith("s3://"):
            return None
        try:
            fs, root = pafs.FileSystem.from_uri(port.uri)
            path = f"{root}/{name}"
            info = fs.get_file_info(path)
        except (OSError, ValueError):
            return None  # the usual read says what is wrong
        if info.type != pafs.FileType.File or info.size <= self.threshold:
            return None
        key, stamp = (port.uri, name), (info.size, info.mtime_ns)
        if self._verified.get(key) != stamp:
            digest = hashlib.sha256()
            with fs.open_input_file(path) as handle:
                while data := handle.read(CHUNK_BYTES):
                    digest.update(data)
            if digest.hexdigest() != data_file_checksum(name):
                raise IntegrityError(f"Data file {port.uri}/{name} of {port.ref} version {version} is corrupt: its "
                                     "SHA-256 does not match the checksum recorded when it was published.")
            self._verified[key] = stamp
        return _LargeFile(fs, path, info.size)


# -- the application ---------------------------------------------------------------------

def sharing_app(*, workspace: str | os.PathLike, instance, ports_uri: str, signer: UrlSigner,
                rate_limit: float = DEFAULT_RATE, max_body: int = MAX_BODY_BYTES, max_url: int = MAX_URL_BYTES):
    """The Delta Sharing server as a Starlette application (uvicorn runs it: `serve`)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    from mesh_core.instance.usage import record_read
    from mesh_core.share.recipients import Recipients

    catalog = ShareCatalog(Path(workspace), ports_uri)
    recipients = Recipients(instance)
    limiter = RateLimiter(rate_limit)
    snapshots = protocol.Snapshots()
    files = _FileCache()
    big_files = _LargeFiles(files.limit // 4)

    def error_response(exc: ShareError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, ShareRateLimitError) else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    def refusal(exc: BaseException, request: Request) -> JSONResponse:
        """Every failure as a protocol error body: a ShareError as it says, a storage failure as a
        500 whose cause is logged here (its paths are the server's business), anything else likewise."""
        if isinstance(exc, ShareError):
            if exc.status >= 500:
                log.error("%s %s: %s", request.method, request.url.path, exc)
            return error_response(exc)
        if isinstance(exc, ProductNotPublishedError):
            return error_response(ShareNotFoundError("The table has no published version yet."))
        if isinstance(exc, VersionNotFoundError):
            return error_response(ShareNotFoundError("That version of the table is no longer stored (removed by "
                                                     "retention): read a newer one; GET .../version gives the current."))
        if isinstance(exc, IntegrityError):
            log.error("%s %s: %s", request.method, request.url.path, exc)
            return error_response(ShareError("The server's copy of this table version is damaged (a file does not match "
                                             "the checksum it was published with); nothing was served from it. The "
                                             "product's owners must republish it (`mesh materialize`) or repair it "
                                             "(`mesh repair`); the details are in the server's log."))
        if isinstance(exc, MeshError):
            log.error("%s %s: %s", request.method, request.url.path, exc)
            return error_response(ShareError("The server could not read what was asked (a storage or instance "
                                             "error, logged on the server). Try again later."))
        log.error("%s %s failed unexpectedly", request.method, request.url.path, exc_info=exc)
        return error_response(ShareError("The server failed unexpectedly; the error is logged on the server."))

    def endpoint(handler, *, body: bool = False):
        """A route: the handler runs in a worker thread (ports, Delta Lake and the instance block)."""

        async def run(request: Request):
            try:
                data = await _read_body(request, max_body) if body else b""
                return await run_in_threadpool(handler, request, data)
            except Exception as exc:  # noqa: BLE001 - turned into a protocol error body, never a traceback
                return refusal(exc, request)

        return run

    def authenticate(request: Request):
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ShareAuthError("No bearer token: send `Authorization: Bearer <token>` (the bearerToken of your "
                                 "profile file; the mesh's operators give one with `mesh share token create`).")
        recipient = recipients.authenticate(token.strip(), datetime.now(timezone.utc))
        wait = limiter.take(recipient.name)
        if wait:
            raise ShareRateLimitError(f"Recipient '{recipient.name}' sent more than {limiter.rate:g} requests a second: "
                                      f"retry after {math.ceil(wait)} s.", retry_after=max(1, math.ceil(wait)))
        return recipient

    def table_of(request: Request, reader: str) -> SharedTable:
        params = request.path_params
        return catalog.table(params["share"], params["schema"], params["table"], reader)

    # -- listing --

    def list_shares(request: Request, _: bytes):
        authenticate(request)
        return JSONResponse(_page(request, [{"name": share} for share in catalog.shares()]))

    def get_share(request: Request, _: bytes):
        authenticate(request)
        return JSONResponse({"share": {"name": catalog.share(request.path_params["share"])}})

    def list_schemas(request: Request, _: bytes):
        authenticate(request)
        share = catalog.share(request.path_params["share"])
        return JSONResponse(_page(request, [{"name": share, "share": share}]))

    def list_tables(request: Request, _: bytes):
        recipient = authenticate(request)
        share = catalog.schema(request.path_params["share"], request.path_params["schema"])
        return JSONResponse(_page(request, [t.item() for t in catalog.tables(share, recipient.reader)]))

    def list_all_tables(request: Request, _: bytes):
        recipient = authenticate(request)
        share = catalog.share(request.path_params["share"])
        return JSONResponse(_page(request, [t.item() for t in catalog.tables(share, recipient.reader)]))

    # -- one table --

    def table_version(request: Request, _: bytes):
        recipient = authenticate(request)
        table = table_of(request, recipient.reader)
        published = catalog.check_visible(table, recipient.reader)
        starting = request.query_params.get("startingTimestamp")
        if starting is not None:
            when = protocol.parse_timestamp(starting, "startingTimestamp")
            published = protocol.version_at_or_after(table.port, table.full_name, when)
        return Response(status_code=200, headers={protocol.VERSION_HEADER: str(published.version)})

    def metadata(request: Request, _: bytes):
        recipient = authenticate(request)
        table = table_of(request, recipient.reader)
        snapshot = snapshots.get(table.port, table.port.latest())
        lines = [protocol.protocol_action(), protocol.metadata_action(snapshot)]
        return StreamingResponse(protocol.ndjson(lines), media_type=protocol.NDJSON, headers=_answer_headers(snapshot))

    def query(request: Request, data: bytes):
        recipient = authenticate(request)
        asked = protocol.parse_query(data)
        table = table_of(request, recipient.reader)
        published = protocol.resolve_version(table.port, table.full_name, asked)
        catalog.check_version(table, published, recipient.reader)
        snapshot = snapshots.get(table.port, published)
        chosen = protocol.files_for(snapshot, asked.limit_hint)
        stored = table.port.data_files()
        if not {item.name for item in chosen} <= stored:
            raise ShareNotFoundError(f"Version {snapshot.version} of {table.full_name} is no longer stored (removed by "
                                     "retention): read a newer version; GET .../version gives the current one.")
        expires = signer.expiry()
        base = f"{request.url.scheme}://{request.url.netloc}"
        lines = [protocol.protocol_action(),
                 protocol.metadata_action(snapshot, with_version=asked.version is not None or asked.timestamp is not None)]
        for item in chosen:
            if table.port.uri.startswith("s3://"):
                url = presigned_s3_url(table.port.uri, item.name, signer.ttl)
            else:
                url = signer.url(base, FileGrant(table.share, table.schema, table.name, snapshot.version, item.name,
                                                 recipient.name, expires, recipient.token_hash))
            lines.append(protocol.file_action(snapshot, item, url, expires * 1000))
        record_read(instance, table.ref, recipient=recipient.name, table=table.full_name,
                    major=major_of(published.product_version), version=snapshot.version, files=len(chosen),
                    rows=sum(item.rows or 0 for item in chosen))
        return StreamingResponse(protocol.ndjson(lines), media_type=protocol.NDJSON, headers=_answer_headers(snapshot))

    def changes(request: Request, _: bytes):
        recipient = authenticate(request)
        table_of(request, recipient.reader)  # an unknown or hidden table is 404 / 403 first
        raise ShareBadRequestError(f"The change data feed: {protocol.NOT_SHARED}")

    # -- data files --

    def data_file(request: Request, _: bytes):
        params = request.path_params
        share, schema, name = request_name("share", params["share"]), request_name("schema", params["schema"]), params["name"]
        table_name = request_name("table", params["table"])
        version = protocol.version_in_path(params["version"])
        query_params = request.query_params
        try:  # the URL is signed under the recipient's token of the time: a rotated or re-created one voids it
            recipient = recipients.get(query_params.get("recipient") or "")
        except ShareNotFoundError:
            recipient = None
        grant = signer.verify(share, schema, table_name, version, name, query_params.get("recipient"),
                              query_params.get("expires"), query_params.get("signature"),
                              recipient.token_hash if recipient else "")
        if recipient is None:
            raise ShareForbiddenError(f"Recipient '{grant.recipient}' no longer exists.")
        state = recipient.state_at(datetime.now(timezone.utc))
        if state != "active":
            raise ShareForbiddenError(f"The token of recipient '{recipient.name}' was {state}: its file URLs stopped working.")
        table = catalog.table(share, schema, table_name, recipient.reader)
        if name not in table.port.published(version).files:  # signed, so only a file the version held once
            raise ShareNotFoundError(f"Version {version} of {table.full_name} holds no file {name[:100]!r}.")
        key = (table.port.uri, name)
        content = files.get(key)
        if content is None:
            large = big_files.open(table.port, version, name)
            if large is not None:
                return _ranged(request, large)
            content = bytes(table.port.read_data_file(version, name))  # verified against the checksum in its name
            files.put(key, content)
        return _ranged(request, content)

    def not_found(request: Request, exc: HTTPException):
        if exc.status_code == 405:
            return JSONResponse({"errorCode": "INVALID_PARAMETER_VALUE",
                                 "message": f"{request.method} is not a method of {request.url.path}."}, status_code=405)
        return error_response(ShareNotFoundError(f"No Delta Sharing endpoint at {request.url.path[:200]}: the "
                                                 f"endpoints are under {PREFIX} (PROTOCOL.md)."))

    async def failed(request: Request, exc: Exception):
        return refusal(exc, request)

    table_path = PREFIX + "/shares/{share}/schemas/{schema}/tables/{table}"
    routes = [
        Route(PREFIX + "/shares", endpoint(list_shares), methods=["GET"]),
        Route(PREFIX + "/shares/{share}", endpoint(get_share), methods=["GET"]),
        Route(PREFIX + "/shares/{share}/schemas", endpoint(list_schemas), methods=["GET"]),
        Route(PREFIX + "/shares/{share}/schemas/{schema}/tables", endpoint(list_tables), methods=["GET"]),
        Route(PREFIX + "/shares/{share}/all-tables", endpoint(list_all_tables), methods=["GET"]),
        Route(table_path, endpoint(table_version), methods=["HEAD"]),
        Route(table_path + "/version", endpoint(table_version), methods=["GET"]),
        Route(table_path + "/metadata", endpoint(metadata), methods=["GET"]),
        Route(table_path + "/query", endpoint(query, body=True), methods=["POST"]),
        Route(table_path + "/changes", endpoint(changes), methods=["GET"]),
        Route(PREFIX + "/files/{share}/{schema}/{table}/{version}/{name}", endpoint(data_file), methods=["GET", "HEAD"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: not_found, Exception: failed},
                     middleware=[Middleware(_BoundedUrls, limit=max_url)])


def _answer_headers(snapshot: protocol.Snapshot) -> dict[str, str]:
    return {protocol.VERSION_HEADER: str(snapshot.version), protocol.CAPABILITIES: protocol.RESPONSE_FORMAT}


async def _read_body(request, limit: int) -> bytes:
    """The body, refused (413) past `limit` bytes: by its Content-Length before a byte is read, else
    as it streams in (chunked), never more than the limit kept."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ShareTooLargeError(f"The request body is larger than {limit:,} bytes, the most this server reads.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ShareTooLargeError(f"The request body is larger than {limit:,} bytes, the most this server reads.")
        chunks.append(chunk)
    return b"".join(chunks)


def _page(request, items: list[dict]) -> dict:
    """One page of a sorted list (maxResults, pageToken: PROTOCOL.md); the token names the last item given."""
    params = request.query_params
    size = params.get("maxResults")
    if size is not None:
        if not (size.isascii() and size.isdigit() and len(size) <= 10) or int(size) > 2**31 - 1:
            raise ShareBadRequestError(f"maxResults {size!r} is not a whole number >= 0.")
        size = min(int(size), MAX_PAGE)
    token = params.get("pageToken")
    if token:
        try:
            after = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True).decode()
        except (ValueError, UnicodeError):
            after = ""
        if not is_valid_name(after):
            raise ShareBadRequestError("pageToken is not one this server gave: pass the nextPageToken of the previous page.")
        items = [item for item in items if item["name"] > after]
    if size is None or len(items) <= size:
        return {"items": items}
    page = items[:size]
    answer: dict = {"items": page}
    if page:
        answer["nextPageToken"] = base64.urlsafe_b64encode(page[-1]["name"].encode()).decode().rstrip("=")
    else:  # maxResults=0: no items, and where the next page starts
        answer["nextPageToken"] = ""
    return answer


def _ranged(request, content: bytes | _LargeFile):
    """A data file, whole or the one byte range asked for (readers such as fsspec read Parquet by ranges);
    a large one streamed from its file in chunks."""
    from starlette.responses import Response, StreamingResponse

    size = content.size if isinstance(content, _LargeFile) else len(content)
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=0"}
    wanted = request.headers.get("range")
    status, start, end = 200, 0, size - 1
    if wanted:
        span = _parse_range(wanted, size)
        if span is None:
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
        status, (start, end) = 206, span
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1 if size else 0)
    if isinstance(content, _LargeFile) and request.method != "HEAD":
        return StreamingResponse(content.chunks(start, end + 1), status_code=status, headers=headers,
                                 media_type="application/octet-stream")
    body = b"" if request.method == "HEAD" or isinstance(content, _LargeFile) else content[start:end + 1]
    return Response(body, status_code=status, headers=headers, media_type="application/octet-stream")


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec or len(spec) > 40:
        return None
    first, _, last = spec.strip().partition("-")
    if not (first.isdigit() or last.isdigit()) or (first and not first.isdigit()) or (last and not last.isdigit()):
        return None
    if not first:  # the last N bytes
        count = int(last)
        return (max(size - count, 0), size - 1) if count and size else None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    return (start, end) if start <= end and start < size else None


class _BoundedUrls:
    """Refuses (414) a URL longer than the server reads, before routing looks at it."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b"")) > self.limit:
            from starlette.responses import JSONResponse

            error = ShareUriTooLongError(f"The request URL is longer than {self.limit:,} bytes, the most this server reads.")
            await JSONResponse(error.body(), status_code=error.status)(scope, receive, send)
            return
        await self.app(scope, receive, send)


# -- running it --------------------------------------------------------------------------

def check_bind(host: str, *, tls: bool, behind_proxy: bool) -> None:
    """Refuse to serve tokens and data in clear text beyond this machine."""
    if tls or behind_proxy or _is_loopback(host):
        return
    raise MeshError(f"Refusing to serve on {host} without TLS: tokens and data would cross the network in clear "
                    "text. Fix: pass --tls-cert FILE --tls-key FILE, or --behind-proxy if a TLS-terminating proxy "
                    "forwards to this address, or serve on 127.0.0.1 (the default).")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def endpoint_url(host: str, port: int, *, tls: bool) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}{PREFIX}"


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, workspace: str | os.PathLike, instance,
          dagster_home: str | os.PathLike, ports_uri: str, tls_cert: str | None = None, tls_key: str | None = None,
          behind_proxy: bool = False, forwarded_allow_ips: str = "127.0.0.1", url_ttl: int = DEFAULT_TTL_SECONDS,
          rate_limit: float = DEFAULT_RATE, on_start: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted. Refuses (MeshError) a non-loopback host without TLS or `behind_proxy`,
    half a TLS pair, or a missing certificate file, before binding anything. Behind a proxy, only
    `forwarded_allow_ips` (the proxy's addresses) may set the scheme and client with X-Forwarded-*."""
    import uvicorn

    from mesh_core.share.signing import url_secret

    if bool(tls_cert) != bool(tls_key):
        raise MeshError("TLS needs both --tls-cert and --tls-key (the certificate chain and its private key, PEM files).")
    for option, path in (("--tls-cert", tls_cert), ("--tls-key", tls_key)):
        if path and not Path(path).is_file():
            raise MeshError(f"{option} {path}: no such file. Give the PEM file's path.")
    tls = bool(tls_cert)
    check_bind(host, tls=tls, behind_proxy=behind_proxy)
    if not 0 <= port <= 65535:
        raise MeshError(f"--port {port}: give a TCP port from 1 to 65535.")
    signer = UrlSigner(url_secret(dagster_home), url_ttl)
    app = sharing_app(workspace=workspace, instance=instance, ports_uri=ports_uri, signer=signer, rate_limit=rate_limit)
    config = uvicorn.Config(app, host=host, port=port, ssl_certfile=tls_cert, ssl_keyfile=tls_key,
                            proxy_headers=behind_proxy, forwarded_allow_ips=forwarded_allow_ips if behind_proxy else None,
                            log_level="warning", access_log=False, timeout_keep_alive=5,
                            h11_max_incomplete_event_size=16 * 1024)
    if tls:
        try:
            config.load()  # the certificate and key, read before anything says it serves
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise MeshError(f"Cannot serve TLS with --tls-cert {tls_cert} --tls-key {tls_key}: {exc}. Fix: give the "
                            "PEM certificate chain and its private key (unencrypted) that belong together.") from None
    sock = _listen(host, port)  # here, so a busy port is a MeshError and not uvicorn's exit 3 after "Serving at"
    if on_start is not None:
        on_start(endpoint_url(host, sock.getsockname()[1], tls=tls))
    uvicorn.Server(config).run(sockets=[sock])


def _listen(host: str, port: int):
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise MeshError(f"Cannot serve on {host}:{port}: {exc.strerror or exc}. Fix: give --host an address of "
                        "this machine (default 127.0.0.1).") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        fix = ("pick a free port with --port, or stop what serves on it" if exc.errno == errno.EADDRINUSE
               else "give --host an address of this machine (default 127.0.0.1)")
        raise MeshError(f"Cannot serve on {host}:{port}: {exc.strerror or exc}. Fix: {fix}.") from None
    return sock
