"""File URLs: the signing secret made once, signatures that break when any part of the URL changes,
expiry, and pre-signed URLs for ports on S3 (a real S3-protocol server: moto's)."""

from __future__ import annotations

import os
import stat
import threading
import time
import urllib.request
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest

from mesh_core.errors import MeshError
from mesh_core.share.errors import ShareForbiddenError
from mesh_core.share.signing import SECRET_BYTES, FileGrant, UrlSigner, presigned_s3_url, url_secret
from mesh_core.storage.domain_storage import DomainStorage
from tests.deploy.servers import s3_server

NAME = "part-0123456789abcdef-" + "a" * 64 + ".parquet"


def test_the_secret_is_made_once_private_and_whole(tmp_path):
    found = []
    threads = [threading.Thread(target=lambda: found.append(url_secret(tmp_path))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    path = tmp_path / "sharing" / "url_secret"
    assert len(set(found)) == 1 and len(found[0]) == SECRET_BYTES == path.stat().st_size
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert url_secret(tmp_path) == found[0]
    assert not [p for p in path.parent.iterdir() if p.name != "url_secret"]  # no temp file left
    path.write_bytes(b"short")
    with pytest.raises(MeshError, match="holds 5 bytes, not 32"):
        url_secret(tmp_path)


def _grant(**changes) -> FileGrant:
    values = dict(share="ops", schema="ops", table="flights", version=3, name=NAME, recipient="partner",
                  expires=int(time.time()) + 60)
    return FileGrant(**{**values, **changes})


def _verify(signer: UrlSigner, grant: FileGrant, signature: str) -> FileGrant:
    return signer.verify(grant.share, grant.schema, grant.table, grant.version, grant.name, grant.recipient,
                         str(grant.expires), signature)


def test_a_signature_holds_for_exactly_what_it_signed():
    signer = UrlSigner(os.urandom(32))
    grant = _grant()
    signature = signer.signature(grant)
    assert _verify(signer, grant, signature) == grant
    changed = [dict(share="fleet"), dict(schema="fleet"), dict(table="crew"), dict(version=2),
               dict(name=NAME.replace("a", "b", 1)), dict(recipient="insights"), dict(expires=grant.expires + 3600)]
    for change in changed:
        with pytest.raises(ShareForbiddenError, match="signature does not match"):
            _verify(signer, _grant(**{**grant.__dict__, **change}), signature)
    with pytest.raises(ShareForbiddenError, match="signature does not match"):
        _verify(UrlSigner(os.urandom(32)), grant, signature)  # another server's secret
    for bad in ("", signature[:-1], signature.upper(), "é" * 64):
        with pytest.raises(ShareForbiddenError):
            _verify(signer, grant, bad)


def test_a_url_stops_working_when_it_expires():
    now = [1_000_000.0]
    signer = UrlSigner(os.urandom(32), ttl=60, clock=lambda: now[0])
    grant = _grant(expires=signer.expiry())
    signature = signer.signature(grant)
    now[0] += 59
    assert _verify(signer, grant, signature) == grant
    now[0] += 1
    with pytest.raises(ShareForbiddenError, match="expired at"):
        _verify(signer, grant, signature)


def test_a_url_carries_every_signed_part():
    signer = UrlSigner(os.urandom(32))
    grant = _grant()
    url = signer.url("http://127.0.0.1:9/", grant)
    assert url.startswith(f"http://127.0.0.1:9/delta-sharing/files/ops/ops/flights/3/{NAME}?recipient=partner&expires=")
    assert url.endswith(f"&signature={signer.signature(grant)}")


@pytest.mark.parametrize("ttl", [0, 5, 8 * 24 * 3600, True, 1.5])
def test_a_ttl_out_of_range_is_refused(ttl):
    with pytest.raises(MeshError, match="URL lifetime"):
        UrlSigner(os.urandom(32), ttl=ttl)


def test_an_s3_port_gets_pre_signed_urls_that_return_the_file_and_expire(tmp_path, monkeypatch):
    with s3_server("lake") as (env, client):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        storage = DomainStorage(tmp_path / "data", "ops")
        assert storage.ports_uri == "s3://lake/mesh"
        published = storage.publish("flights", pd.DataFrame({"a": [1, 2, 3]}), version="1.0.0", access="public",
                                    run_id="r1").version
        [name] = published.files
        port = storage.port(published.ref)
        url = presigned_s3_url(port.uri, name, 60)
        assert "X-Amz-Expires=60" in url and "X-Amz-Signature=" in url
        with urllib.request.urlopen(url, timeout=10) as response:
            served = response.read()
        assert served == client.get_object(Bucket="lake", Key=f"mesh/ops/ports/flights/{name}")["Body"].read()
        # When it expires is signed into it (X-Amz-Date + X-Amz-Expires); moto's server does not enforce
        # expiry or signatures, so S3 itself is what refuses the URL after that.
        query = parse_qs(urlsplit(presigned_s3_url(port.uri, name, 30)).query)
        signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        assert abs(signed_at.timestamp() - time.time()) < 30 and query["X-Amz-Expires"] == ["30"]
        assert query["X-Amz-Credential"][0].startswith(env["AWS_ACCESS_KEY_ID"] + "/")
