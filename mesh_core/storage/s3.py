"""The boto3 S3 client every direct S3 access of Mesh uses (pre-signed share URLs, the contract registry).

Configured from the environment only, as delta-rs and Arrow are for the ports. boto3 is imported on
first use: a code location that never touches S3 does not pay for it.
"""

from __future__ import annotations

import os
import threading

_CLIENTS: dict[tuple, object] = {}
_LOCK = threading.Lock()


def s3_client():
    """A boto3 client (thread-safe, one per setting) configured from the environment as delta-rs and
    Arrow are: AWS_ENDPOINT_URL(_S3), AWS_REGION / AWS_DEFAULT_REGION, and the credentials."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    key = (endpoint, region, os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_PROFILE"))
    with _LOCK:
        if key not in _CLIENTS:
            import boto3
            from botocore.config import Config

            config = Config(signature_version="s3v4", s3={"addressing_style": "path" if endpoint else "auto"})
            # A session of its own: boto3's default session keeps the first credentials it found for good.
            session = boto3.session.Session()
            _CLIENTS[key] = session.client("s3", endpoint_url=endpoint, region_name=region, config=config)
        return _CLIENTS[key]
