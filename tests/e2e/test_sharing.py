"""`mesh serve` end to end: the official Delta Sharing client (its own venv) against a real server over a
materialized mesh, tokens made by the real CLI; access by the mesh's rules, ≥30 hostile requests, usage
fed back to `mesh status`, and a bounded concurrent run.

Every expectation comes from the workspace and the ports (read_findings over what each port's current
version was published with), never from the example's product names."""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from mesh_core import DomainStorage, ProductRef
from mesh_core.declare.lifecycle import Lifecycle, Status
from mesh_core.declare.majors import major_of
from mesh_core.declare.readable import read_findings
from mesh_core.governance.workspace import MeshWorkspace, read_entries
from mesh_core.storage.retention import Retention
from tests.support import MESH, REPO, free_port, make_dagster_home, mesh_env, run_mesh, stop

pytestmark = pytest.mark.workspace

CLIENT = "delta-sharing==1.4.2"
PREFIX = "/delta-sharing"
OUTSIDER = "partner_bi"  # not a domain: reads as an outsider

# Run by the client venv's python: one command per call, JSON on stdout.
CLIENT_SCRIPT = r'''
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
import delta_sharing
from requests.exceptions import HTTPError

def refused(exc):
    response = getattr(exc, "response", None)
    return {"status": response.status_code if response is not None else None,
            "body": response.text if response is not None else str(exc)}

command, profile, *rest = sys.argv[1:]
try:
    if command == "list":
        client = delta_sharing.SharingClient(profile)
        print(json.dumps({"tables": sorted([t.share, t.schema, t.name] for t in client.list_all_tables()),
                          "shares": sorted(s.name for s in client.list_shares())}))
    elif command == "load":  # load TABLE OUT [version=V] [timestamp=T] [limit=N]
        table, out, options = rest[0], rest[1], dict(option.split("=", 1) for option in rest[2:])
        frame = delta_sharing.load_as_pandas(
            f"{profile}#{table}", version=int(options["version"]) if "version" in options else None,
            timestamp=options.get("timestamp"), limit=int(options["limit"]) if "limit" in options else None)
        frame.to_parquet(out, index=False)
        print(json.dumps({"rows": len(frame)}))
    elif command == "version":
        print(json.dumps({"version": delta_sharing.get_table_version(f"{profile}#{rest[0]}")}))
    elif command == "concurrent":
        tables, threads, queries = rest[0].split(","), int(rest[1]), int(rest[2])

        def client_run(i):
            done = []
            for q in range(queries):
                table = tables[(i + q) % len(tables)]
                started = time.perf_counter()
                rows = len(delta_sharing.load_as_pandas(f"{profile}#{table}"))
                done.append([table, rows, time.perf_counter() - started])
            return done

        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            results = [r for rs in pool.map(client_run, range(threads)) for r in rs]
        print(json.dumps({"seconds": time.perf_counter() - started, "results": results}))
    else:
        raise SystemExit(f"unknown command {command}")
except HTTPError as exc:
    print(json.dumps({"error": refused(exc)}))
'''


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Path:
    """The official Delta Sharing client, in its own environment (it pins pandas<3 and pyarrow<=23)."""
    root = tmp_path_factory.mktemp("delta_sharing_client")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=120)
    installed = subprocess.run([str(root / "venv" / "bin" / "pip"), "install", "-q", CLIENT],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    (root / "client.py").write_text(CLIENT_SCRIPT)
    return root


def run_client(client: Path, *args: str, timeout: float = 300) -> dict:
    done = subprocess.run([str(client / "venv" / "bin" / "python"), str(client / "client.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return json.loads(done.stdout)


# -- the mesh -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mesh:
    home: Path
    data_dir: Path
    consumer: str  # a domain whose products read another domain's public product
    shared: ProductRef  # that public product
    versions: tuple[int, int]  # two published versions of `shared`: the older, then the current
    hidden: ProductRef  # a non-public product of a domain other than the consumer
    draft: ProductRef  # a draft of that domain: its own domain sees it, nobody else
    retired: ProductRef  # a retired product: nobody sees it
    majors: ProductRef  # a product at major `major` with its previous major published beside it
    major: int
    retention_commit: int  # a version of `majors` that is a retention commit, not a publish
    vacuumed: int  # a version of `majors` whose files retention removed

    @property
    def ports_root(self) -> Path:
        return self.data_dir

    def storage(self, domain: str) -> DomainStorage:
        return DomainStorage(self.data_dir, domain)

    def ports(self) -> dict[ProductRef, list[int | None]]:
        """Every published port on disk: product -> its majors' ports (None: the current one)."""
        found: dict[ProductRef, list[int | None]] = {}
        for folder in sorted(self.data_dir.glob("*/ports/*")):
            if not (folder / "_delta_log").is_dir():
                continue
            product, _, major = folder.name.partition(".v")
            ref = ProductRef(folder.parent.parent.name, product)
            found.setdefault(ref, []).append(int(major) if major else None)
        return found

    def visible(self, reader: str) -> set[tuple[str, str, str]]:
        """(share, schema, table) `reader` may read, by the rules the IO manager applies."""
        seen = set()
        for ref, majors in self.ports().items():
            latest = self.storage(ref.domain).port(ref).latest()
            errors, _ = read_findings(reader, ref, latest.access, latest.lifecycle, date.today())
            if errors:
                continue
            current = major_of(latest.product_version)
            names = {ref.product, *(f"{ref.product}_v{m}" for m in majors if m is not None)}
            if current is not None:
                names.add(f"{ref.product}_v{current}")
            seen |= {(ref.domain, ref.domain, name) for name in names}
        return seen


def free_product(workspace: MeshWorkspace, domain: str, stem: str) -> str:
    taken = {ref.product for ref in workspace.products() if ref.domain == domain}
    return next(n for n in (stem, *(f"{stem}_{i}" for i in range(2, 100))) if n not in taken)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory) -> Mesh:
    workspace = MeshWorkspace.load(REPO / "workspace.yaml")
    specs = workspace.products()
    edges = [(loc.name, upstream) for loc in workspace.domain_order() for _, upstream in loc.inputs()
             if upstream.domain != loc.name and specs[upstream][1].metadata["mesh/access"] == "public"]
    if not edges:
        pytest.skip("no domain of this mesh reads another domain's public product")
    consumer, shared = edges[0]
    producer = shared.domain
    needed = {consumer} | {up.domain for loc in workspace.domain_order() if loc.name == consumer
                           for _, up in loc.inputs()}
    root = tmp_path_factory.mktemp("sharing_mesh")
    home = make_dagster_home(root)
    materialized = run_mesh("materialize", *[a for d in needed for a in ("-d", d)], home=home)
    assert materialized.returncode == 0, materialized.stdout[-2000:] + materialized.stderr[-4000:]

    data_dir = home / "data"
    storage = DomainStorage(data_dir, producer)
    first = storage.current(shared)
    frame = storage.read(shared)
    assert len(frame) >= 1, f"{shared} published no rows"
    # A second version of the shared product with more rows, as its owners would publish it.
    second = storage.publish(shared.product, pd.concat([frame, frame.head(3)], ignore_index=True),
                             version=first.product_version, access=first.access, run_id="sharing-second",
                             lifecycle=first.lifecycle).version.version
    frame = pd.concat([frame] * -(-20 // len(frame)), ignore_index=True)  # >= 20 rows for the copies below

    # The producer's products the consumer must never see, and a product with two majors.
    def publish(stem: str, rows: int, **kwargs) -> ProductRef:
        ref = ProductRef(producer, free_product(workspace, producer, stem))
        storage.publish(ref.product, frame.head(rows), run_id=f"sharing-{stem}", **kwargs)
        return ref

    hidden = publish("internal_copy", 5, version="1.0.0", access="internal")
    draft = publish("draft_copy", 6, version="0.1.0", access="public", lifecycle=Lifecycle(Status.DRAFT))
    retired = publish("retired_copy", 4, version="1.0.0", access="public",
                      lifecycle=Lifecycle(Status.RETIRED, successor=shared))
    majors = publish("majors_copy", 9, version="1.4.0", access="public", major=1)
    # Its current port at major 2, published three times under a tight retention: version 0's files
    # are vacuumed and retention's own commits sit between the publishes.
    tight = DomainStorage(data_dir, producer, retention=Retention(keep_versions=2, keep_hours=0))
    for rows in (11, 12, 13):
        tight.publish(majors.product, frame.head(rows), version="2.0.0", access="public", run_id=f"sharing-m{rows}")
    port = tight.port(majors)
    history = port.history()
    commits = sorted(int(p.stem) for p in Path(port.uri, "_delta_log").glob("*.json"))
    retention_commits = [c for c in commits if c not in {v.version for v in history}]
    vacuumed = [v.version for v in history if not all(Path(port.uri, name).exists() for name in v.files)]
    assert retention_commits and vacuumed, f"retention left {port.uri} whole: commits {commits}, {history}"
    return Mesh(home, data_dir, consumer, shared, (first.version, second), hidden, draft, retired, majors, 2,
                retention_commits[-1], vacuumed[0])



# -- the server and its recipients -----------------------------------------------------------


@dataclass(frozen=True)
class Server:
    port: int
    profiles: dict[str, Path]  # recipient name -> its profile file

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}{PREFIX}"

    def token(self, recipient: str) -> str:
        return json.loads(self.profiles[recipient].read_text())["bearerToken"]

    def request(self, method: str, path: str, *, token: str | None = None, body: bytes | None = None,
                headers: dict | None = None, prefix: str = PREFIX) -> tuple[int, dict, bytes]:
        """One raw request: the path goes out byte for byte as given (no client-side normalization)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            sent = {**({"Authorization": f"Bearer {token}"} if token is not None else {}), **(headers or {})}
            if body is not None:
                sent.setdefault("Content-Type", "application/json")
            connection.request(method, prefix + path, body=body, headers=sent)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()


def table_path(share: str, table: str, what: str = "query") -> str:
    return f"/shares/{share}/schemas/{share}/tables/{table}/{what}"


def mesh_cli(mesh: Mesh, *args: str) -> subprocess.CompletedProcess:
    return run_mesh(*args, home=mesh.home, timeout=300)


def create_token(mesh: Mesh, server_port: int, name: str, folder: Path) -> Path:
    profile = folder / f"{name}.share"
    done = mesh_cli(mesh, "share", "token", "create", name, "--profile", str(profile),
                    "--endpoint", f"http://127.0.0.1:{server_port}{PREFIX}")
    assert done.returncode == 0, done.stdout + done.stderr
    return profile


@pytest.fixture(scope="module")
def server(mesh, tmp_path_factory):
    """A real `mesh serve` on a free loopback port, and profiles made by the real CLI: the consumer
    domain, the producer domain, and an outsider."""
    folder = tmp_path_factory.mktemp("sharing_server")
    port = free_port()
    profiles = {name: create_token(mesh, port, name, folder)
                for name in (mesh.consumer, mesh.shared.domain, OUTSIDER)}
    log = (folder / "serve.log").open("w")
    process = subprocess.Popen([str(MESH), "serve", "--port", str(port)], cwd=REPO, env=mesh_env(mesh.home),
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    running = Server(port, profiles)
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, (folder / "serve.log").read_text()
        try:
            status, _, _ = running.request("GET", "/shares")
            assert status == 401  # up, and refusing a request without a token
            break
        except OSError:
            assert time.monotonic() < deadline, (folder / "serve.log").read_text()
            time.sleep(0.3)
    yield running
    stop(process)
    log.close()
    text = (folder / "serve.log").read_text()
    assert "Traceback" not in text, text[-5000:]


def expected_frame(mesh: Mesh, ref: ProductRef, *, version: int | None = None, major: int | None = None) -> pd.DataFrame:
    return mesh.storage(ref.domain).read(ref, version, major=major)


def load(client: Path, server: Server, recipient: str, ref: ProductRef, table: str, out: Path,
         **options) -> pd.DataFrame | dict:
    """The table as the official client loads it (options: version, timestamp, limit), else the
    server's refusal {status, body}."""
    args = ["load", server.profiles[recipient], f"{ref.domain}.{ref.domain}.{table}", out]
    answer = run_client(client, *args, *(f"{k}={v}" for k, v in options.items()))
    return answer["error"] if "error" in answer else pd.read_parquet(out)


def assert_same_rows(served: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(served.columns) == list(expected.columns)
    assert len(served) == len(expected)
    pd.testing.assert_frame_equal(served.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False)


def assert_refused(answer, status: int, code: str | None = None) -> dict:
    """A protocol error: the status, a JSON body {errorCode, message}, no traceback."""
    if isinstance(answer, dict):  # from the client
        got, body = answer["status"], answer["body"].encode()
    else:
        got, _, body = answer
    assert got == status, (got, body[:2000])
    error = json.loads(body)
    assert set(error) >= {"errorCode", "message"} and error["message"], error
    assert "Traceback" not in body.decode() and 'File "' not in body.decode(), body
    if code:
        assert error["errorCode"] == code, error
    return error


# -- what each recipient sees ---------------------------------------------------------------


def test_each_recipient_lists_exactly_the_tables_the_mesh_rules_allow(mesh, server, client):
    readers = {mesh.consumer: mesh.consumer, mesh.shared.domain: mesh.shared.domain, OUTSIDER: f"recipient:{OUTSIDER}"}
    domains = {entry.name for entry in read_entries(REPO / "workspace.yaml")}
    for recipient, reader in readers.items():
        listed = run_client(client, "list", server.profiles[recipient])
        assert "error" not in listed, listed
        expected = mesh.visible(reader)
        assert {tuple(t) for t in listed["tables"]} == expected, recipient
        assert set(listed["shares"]) == domains
    # The rules make a difference here: the producer sees its internal product and draft, others do not.
    producer = mesh.visible(mesh.shared.domain)
    for ref in (mesh.hidden, mesh.draft):
        assert (ref.domain, ref.domain, ref.product) in producer - mesh.visible(mesh.consumer)
        assert (ref.domain, ref.domain, ref.product) not in mesh.visible(f"recipient:{OUTSIDER}")
    assert not any(t[2].startswith(mesh.retired.product) for t in producer)


def test_a_product_loads_as_pandas_with_exactly_the_rows_mesh_read_gives(mesh, server, client, tmp_path):
    served = load(client, server, mesh.consumer, mesh.shared, mesh.shared.product, tmp_path / "current.parquet")
    expected = expected_frame(mesh, mesh.shared)
    assert_same_rows(served, expected)
    # limit (the protocol's limitHint, then the client's cut): the first rows, as stored.
    first = load(client, server, mesh.consumer, mesh.shared, mesh.shared.product, tmp_path / "first.parquet", limit=10)
    assert_same_rows(first, expected.head(10))
    # `mesh read` (the CLI over the same port) agrees on the version and the row count.
    done = mesh_cli(mesh, "read", str(mesh.shared), "--json", "--limit", "1")
    assert done.returncode == 0, done.stderr
    read = json.loads(done.stdout)
    assert (read["version"], read["rows"]) == (mesh.versions[1], len(served))


def test_a_pinned_version_loads_that_version(mesh, server, client, tmp_path):
    older, current = mesh.versions
    pinned = load(client, server, mesh.consumer, mesh.shared, mesh.shared.product, tmp_path / "pinned.parquet",
                  version=older)
    expected = expected_frame(mesh, mesh.shared, version=older)
    assert_same_rows(pinned, expected)
    assert len(pinned) != len(expected_frame(mesh, mesh.shared, version=current))  # really another version
    # By time: the version published at or before it (the older one's own commit time).
    when = mesh.storage(mesh.shared.domain).port(mesh.shared).published(older).committed_at
    at = load(client, server, mesh.consumer, mesh.shared, mesh.shared.product, tmp_path / "at.parquet",
              timestamp=when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    assert_same_rows(at, expected)
    answer = run_client(client, "version", server.profiles[mesh.consumer],
                        f"{mesh.shared.domain}.{mesh.shared.domain}.{mesh.shared.product}")
    assert answer == {"version": current}


def test_each_major_loads_from_its_own_port(mesh, server, client, tmp_path):
    ref = mesh.majors
    current = expected_frame(mesh, ref)
    older = expected_frame(mesh, ref, major=mesh.major - 1)
    assert len(current) != len(older)
    for table, expected in ((ref.product, current), (f"{ref.product}_v{mesh.major}", current),
                            (f"{ref.product}_v{mesh.major - 1}", older)):
        assert_same_rows(load(client, server, OUTSIDER, ref, table, tmp_path / f"{table}.parquet"), expected)
    absent = load(client, server, OUTSIDER, ref, f"{ref.product}_v{mesh.major + 5}", tmp_path / "none.parquet")
    assert_refused(absent, 404, "RESOURCE_DOES_NOT_EXIST")


def test_another_domains_internal_product_and_draft_are_refused_to_the_consumer_and_served_to_their_owner(
        mesh, server, client, tmp_path):
    for ref in (mesh.hidden, mesh.draft):
        refused = load(client, server, mesh.consumer, ref, ref.product, tmp_path / "refused.parquet")
        error = assert_refused(refused, 403, "PERMISSION_DENIED")
        assert mesh.consumer in error["message"] and str(ref) in error["message"]
        for what in ("query", "metadata", "version"):
            method, body = ("POST", b"{}") if what == "query" else ("GET", None)
            assert_refused(server.request(method, table_path(ref.domain, ref.product, what),
                                          token=server.token(OUTSIDER), body=body), 403, "PERMISSION_DENIED")
        owned = load(client, server, ref.domain, ref, ref.product, tmp_path / "owned.parquet")
        assert_same_rows(owned, expected_frame(mesh, ref))
    # Retired: refused to everyone, its owner too (as the IO manager refuses it).
    for recipient in (mesh.retired.domain, mesh.consumer, OUTSIDER):
        assert_refused(load(client, server, recipient, mesh.retired, mesh.retired.product, tmp_path / "r.parquet"),
                       403, "PERMISSION_DENIED")


def test_revoked_and_expired_tokens_get_401(mesh, server, client, tmp_path):
    import dagster as dg

    from mesh_core.share.recipients import Recipients

    profile = create_token(mesh, server.port, "leaver", tmp_path)
    server.profiles["leaver"] = profile
    ref = mesh.shared
    assert isinstance(load(client, server, "leaver", ref, ref.product, tmp_path / "ok.parquet"), pd.DataFrame)
    [url] = file_urls(server, "leaver", ref, ref.product)
    file_path = urllib.parse.urlsplit(url)._replace(scheme="", netloc="").geturl()
    assert server.request("GET", file_path, prefix="")[0] == 200
    done = mesh_cli(mesh, "share", "token", "revoke", "leaver")
    assert done.returncode == 0, done.stderr
    assert_refused(server.request("GET", file_path, prefix=""), 403, "PERMISSION_DENIED")  # its URLs stop too
    assert_refused(load(client, server, "leaver", ref, ref.product, tmp_path / "no.parquet"), 401, "UNAUTHENTICATED")
    assert_refused(server.request("GET", "/shares", token=server.token("leaver")), 401, "UNAUTHENTICATED")

    # Expired: made through the Python API with a clock in the past (the CLI gives at least a day).
    from datetime import datetime, timedelta, timezone

    with dg.DagsterInstance.from_config(str(mesh.home)) as instance:
        _, token = Recipients(instance).create("lapsed", domains=[e.name for e in read_entries(REPO / "workspace.yaml")],
                                               expires_days=1, now=datetime.now(timezone.utc) - timedelta(days=2))
    assert_refused(server.request("GET", "/shares", token=token), 401, "UNAUTHENTICATED")
    assert_refused(server.request("POST", table_path(ref.domain, ref.product), token=token, body=b"{}"), 401)
    listed = mesh_cli(mesh, "share", "token", "list", "--json")
    states = {r["name"]: r["state"] for r in json.loads(listed.stdout)}
    assert (states["leaver"], states["lapsed"], states[OUTSIDER]) == ("revoked", "expired", "active")


# -- usage fed back ------------------------------------------------------------------------


def test_after_n_client_reads_status_and_usage_show_n_for_that_recipient_and_product(mesh, server, client, tmp_path):
    reader, ref, reads = "usage-probe", mesh.shared, 3
    server.profiles[reader] = create_token(mesh, server.port, reader, tmp_path)
    for i in range(reads):
        assert isinstance(load(client, server, reader, ref, ref.product, tmp_path / f"{i}.parquet"), pd.DataFrame)
    status = mesh_cli(mesh, "status", "--json", "-d", ref.domain)
    assert status.returncode in (0, 1), status.stderr  # 1: an objective breached; the readers are printed either way
    [domain] = json.loads(status.stdout)["domains"]
    [score] = [p for p in domain["products"] if p["product"] == str(ref)]
    assert score["reads_by"][reader] == reads, score
    assert reader in score["readers"]
    # `mesh share usage` answers "who reads which major" for the owners: the recipient, its major, its count.
    major = major_of(mesh.storage(ref.domain).current(ref).product_version)
    usage = mesh_cli(mesh, "share", "usage", f"{ref}@{major}", "--json")
    assert usage.returncode == 0, usage.stderr
    [report] = json.loads(usage.stdout)
    assert report["product"] == str(ref) and report["reads_by"][reader] == reads, report
    [row] = [r for r in report["readers"] if r["name"] == reader]
    assert (row["kind"], row["major"], row["reads"]) == ("recipient", major, reads)


# -- hostile requests -----------------------------------------------------------------------


def snapshot_files(root: Path) -> dict[str, str]:
    """SHA-256 of every file under the ports root (data files, Delta logs, stores)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def file_urls(server: Server, recipient: str, ref: ProductRef, table: str) -> list[str]:
    status, headers, body = server.request("POST", table_path(ref.domain, table), token=server.token(recipient),
                                           body=b"{}")
    assert status == 200, body[:2000]
    lines = [json.loads(line) for line in body.splitlines() if line.strip()]
    return [line["file"]["url"] for line in lines if "file" in line]


def changed(url: str, **query) -> str:
    """`url` with some of its query parameters replaced (None: dropped)."""
    parts = urllib.parse.urlsplit(url)
    params = dict(urllib.parse.parse_qsl(parts.query))
    params.update(query)
    params = {k: v for k, v in params.items() if v is not None}
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(params)))


def repath(url: str, old: str, new: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=parts.path.replace(old, new, 1)))


def test_hostile_requests_each_get_the_right_refusal_and_change_nothing(mesh, server):
    import dagster as dg

    from mesh_core.share.recipients import Recipients
    from mesh_core.share.signing import FileGrant, UrlSigner, url_secret

    before = snapshot_files(mesh.ports_root)
    ref, share = mesh.shared, mesh.shared.domain
    good = server.token(OUTSIDER)
    query = table_path(share, ref.product)
    [url] = file_urls(server, OUTSIDER, ref, ref.product)
    assert urllib.parse.urlsplit(url).path.startswith(f"{PREFIX}/files/")
    fetched = server.request("GET", url.split(str(server.port), 1)[1], prefix="")
    assert fetched[0] == 200 and fetched[2][:4] == b"PAR1"  # the real URL works, without a token

    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    signature = params["signature"]
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    # A URL the server itself signed (under the recipient's token, as it signs), with an expiry in the past /
    # for a file the version does not hold.
    signer = UrlSigner(url_secret(mesh.home))
    with dg.DagsterInstance.from_config(str(mesh.home)) as instance:
        token = Recipients(instance).get(params["recipient"]).token_hash

    def signed(grant: FileGrant) -> str:
        return signer.url(f"http://127.0.0.1:{server.port}", dataclasses.replace(grant, token=token))

    path_parts = urllib.parse.urlsplit(url).path[len(f"{PREFIX}/files/"):].split("/")
    grant = FileGrant(*path_parts[:3], int(path_parts[3]), urllib.parse.unquote(path_parts[4]), params["recipient"],
                      int(time.time()) - 60)
    expired = signed(grant)
    outside = signed(FileGrant(*path_parts[:3], int(path_parts[3]), "../../../../etc/passwd", params["recipient"],
                               int(time.time()) + 600))
    log_file = signed(FileGrant(*path_parts[:3], int(path_parts[3]), "_delta_log/00000000000000000000.json",
                                params["recipient"], int(time.time()) + 600))
    older_file = signed(FileGrant(
        *path_parts[:3], int(path_parts[3]), next(iter(mesh.storage(share).port(ref).published(mesh.versions[0]).files)),
        params["recipient"], int(time.time()) + 600))
    dots = signed(FileGrant(*path_parts[:3], int(path_parts[3]), "..", params["recipient"], int(time.time()) + 600))
    hidden_file = repath(url, f"/{ref.product}/", f"/{mesh.hidden.product}/")
    version_file = repath(url, f"/{mesh.versions[1]}/", f"/{mesh.versions[0]}/")
    local = lambda u: u.split(str(server.port), 1)[1]  # noqa: E731

    long_name = "a" * 300
    cases = [
        # (what, method, path, token, body, headers, status)
        ("no Authorization", "GET", "/shares", None, None, {}, 401),
        ("empty bearer", "GET", "/shares", "", None, {}, 401),
        ("garbage bearer", "GET", "/shares", "not-a-token", None, {}, 401),
        ("Basic auth", "GET", "/shares", None, None, {"Authorization": "Basic dXNlcjpwYXNz"}, 401),
        ("4 kB token", "GET", "/shares", "x" * 4000, None, {}, 401),
        ("a table query without a token", "POST", query, None, b"{}", {}, 401),
        ("token with a trailing space", "GET", "/shares", good + " x", None, {}, 401),
        ("traversal in share, encoded slash", "GET", "/shares/..%2F..%2Fetc/schemas", good, None, {}, 404),
        ("dot-dot share", "GET", "/shares/%2e%2e/schemas/%2e%2e/tables", good, None, {}, 400),
        ("dot-dot table", "POST", table_path(share, "%2e%2e"), good, b"{}", {}, 400),
        ("double-encoded dots", "GET", "/shares/%252e%252e/schemas", good, None, {}, 400),
        ("backslashes", "POST", table_path(share, "..%5C..%5Cports"), good, b"{}", {}, 400),
        ("null byte", "POST", table_path(share, f"{ref.product}%00"), good, b"{}", {}, 400),
        ("absolute path as table", "POST", table_path(share, "%2Fetc%2Fpasswd"), good, b"{}", {}, 404),
        ("the port folder of a major", "POST", table_path(share, f"{mesh.majors.product}.v1"), good, b"{}", {}, 400),
        ("name over 255 characters", "GET", f"/shares/{long_name}/schemas", good, None, {}, 400),
        ("unknown share", "GET", "/shares/no_such_domain/schemas", good, None, {}, 404),
        ("unknown table", "POST", table_path(share, "no_such_product"), good, b"{}", {}, 404),
        ("schema not the share", "POST", f"/shares/{share}/schemas/{mesh.consumer}/tables/{ref.product}/query",
         good, b"{}", {}, 404),
        ("unknown major", "POST", table_path(share, f"{ref.product}_v99"), good, b"{}", {}, 404),
        ("version -1", "POST", query, good, b'{"version": -1}', {}, 400),
        ("version 1e9", "POST", query, good, b'{"version": 1e9}', {}, 400),
        ("version abc", "POST", query, good, b'{"version": "abc"}', {}, 400),
        ("version 1.5", "POST", query, good, b'{"version": 1.5}', {}, 400),
        ("version true", "POST", query, good, b'{"version": true}', {}, 400),
        ("version 10**30", "POST", query, good, b'{"version": 1000000000000000000000000000000}', {}, 400),
        ("version 10**9, never published", "POST", query, good, b'{"version": 1000000000}', {}, 404),
        ("a retention commit", "POST", table_path(share, mesh.majors.product), good,
         json.dumps({"version": mesh.retention_commit}).encode(), {}, 404),
        ("a version retention vacuumed", "POST", table_path(share, mesh.majors.product), good,
         json.dumps({"version": mesh.vacuumed}).encode(), {}, 404),
        ("timestamp garbage", "POST", query, good, b'{"timestamp": "yesterday"}', {}, 400),
        ("timestamp before any version", "POST", query, good, b'{"timestamp": "1999-01-01T00:00:00Z"}', {}, 400),
        ("version and timestamp", "POST", query, good, b'{"version": 0, "timestamp": "2026-01-01T00:00:00Z"}', {}, 400),
        ("limitHint -5", "POST", query, good, b'{"limitHint": -5}', {}, 400),
        ("limitHint text", "POST", query, good, b'{"limitHint": "10"}', {}, 400),
        ("change data feed", "POST", query, good, b'{"startingVersion": 0}', {}, 400),
        ("startingTimestamp garbage", "GET", table_path(share, ref.product, "version") + "?startingTimestamp=soon",
         good, None, {}, 400),
        ("malformed JSON", "POST", query, good, b'{"version": ', {}, 400),
        ("JSON not an object", "POST", query, good, b'[1, 2]', {}, 400),
        ("predicateHints not a list", "POST", query, good, b'{"predicateHints": "a = 1"}', {}, 400),
        ("2 MB body", "POST", query, good, b'{"predicateHints": ["' + b"x" * (2 << 20) + b'"]}', {}, 413),
        ("file URL, signature changed", "GET", local(changed(url, signature=flipped)), None, None, {}, 403),
        ("file URL, expiry moved", "GET", local(changed(url, expires=str(int(params["expires"]) + 3600))),
         None, None, {}, 403),
        ("file URL, another recipient", "GET", local(changed(url, recipient=mesh.consumer)), None, None, {}, 403),
        ("file URL, unsigned", "GET", local(changed(url, signature=None, expires=None, recipient=None)),
         None, None, {}, 403),
        ("file URL, expired", "GET", local(expired), None, None, {}, 403),
        ("file URL, another table", "GET", local(hidden_file), None, None, {}, 403),
        ("file URL, another version", "GET", local(version_file), None, None, {}, 403),
        ("file URL, signed traversal", "GET", local(outside), None, None, {}, 404),
        ("file URL, signed log file", "GET", local(log_file), None, None, {}, 404),
        ("file URL, signed file of another version", "GET", local(older_file), None, None, {}, 404),
        ("file URL, signed '..'", "GET", local(dots), None, None, {}, 404),
        ("file URL, traversal in path", "GET", f"/files/{share}/..%2F..%2F..%2Fetc/passwd", None, None, {}, 404),
    ]
    assert len(cases) >= 30
    prefixless = {"file URL"}
    wrong, statuses = [], Counter()
    for what, method, path, token, body, headers, status in cases:
        prefix = "" if any(what.startswith(p) for p in prefixless) and path.startswith(PREFIX) else PREFIX
        answer = server.request(method, path, token=token, body=body, headers=headers, prefix=prefix)
        try:
            assert_refused(answer, status)
            statuses[status] += 1
        except (AssertionError, ValueError) as exc:
            wrong.append(f"{what}: {method} {path[:120]} -> {answer[0]} {answer[2][:300]!r} ({exc})")
    assert not wrong, "\n".join(wrong)
    print(f"\n{len(cases)} hostile requests, each refused as expected: "
          + ", ".join(f"{n} x {status}" for status, n in sorted(statuses.items())))
    # Nothing changed, and the server still answers.
    assert snapshot_files(mesh.ports_root) == before
    assert server.request("GET", "/shares", token=good)[0] == 200
    assert file_urls(server, OUTSIDER, ref, ref.product)


def test_a_wrong_content_type_and_method_are_refused_too(mesh, server):
    ref = mesh.shared
    query = table_path(ref.domain, ref.product)
    token = server.token(OUTSIDER)
    status, _, body = server.request("POST", query, token=token, body=b"version=1",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status in (400, 415), body
    assert_refused((status, {}, body), status)
    status, _, body = server.request("DELETE", query, token=token)
    assert_refused((status, {}, body), 405)


# -- concurrency ----------------------------------------------------------------------------

THREADS, QUERIES = 20, 20
SMALL = 60_000  # rows: the bounded run reads the mesh's smaller tables (the benchmark reads a large one)


def test_twenty_clients_twenty_queries_each_every_answer_correct(mesh, server, client):
    expected, ports = {}, mesh.ports()
    for share, _, table in sorted(mesh.visible(mesh.consumer)):
        if ProductRef(share, table) in ports:
            ref, major = ProductRef(share, table), None
        else:
            product, _, number = table.rpartition("_v")
            ref, major = ProductRef(share, product), int(number)
        storage = mesh.storage(share)
        rows = storage.port(ref, storage.port_major(ref, major)).latest().rows
        if rows <= SMALL:
            expected[f"{share}.{share}.{table}"] = rows
    assert len(expected) >= 3, expected
    answer = run_client(client, "concurrent", server.profiles[mesh.consumer], ",".join(sorted(expected)), THREADS,
                        QUERIES, timeout=600)
    assert "error" not in answer, answer
    results = answer["results"]
    assert len(results) == THREADS * QUERIES
    wrong = [(table, rows) for table, rows, _ in results if rows != expected[table]]
    assert not wrong, wrong[:10]
    latencies = sorted(seconds for _, _, seconds in results)
    p95 = latencies[int(0.95 * len(latencies)) - 1]
    print(f"\nmesh serve, {THREADS} clients x {QUERIES} loads (official client: metadata + query + file + decode), "
          f"{len(expected)} tables of <= {SMALL:,} rows: {len(results) / answer['seconds']:.1f} loads/s, "
          f"p50 {statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
