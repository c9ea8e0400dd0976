"""A real S3-compatible server for the tests: moto's standalone ``moto_server`` on 127.0.0.1.

``s3_server`` (session) starts it on a free port and stops it at the end; ``s3_location`` gives
each test a fresh bucket and sets AWS's standard variables, so nbtoolkit, kernels and ``nbtk``
subprocesses reach it through s3fs exactly as they would reach AWS S3 or MinIO.

Import both fixtures into a test module: ``from _s3 import s3_location, s3_server``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from _servers import free_port, http_server

#: Planted credentials: any pair works with moto; tests check they are never recorded.
ACCESS_KEY = "AKIAH7TESTKEY0000042"
SECRET_KEY = "h7-secret-never-recorded-0b5e2f7d9c"


#: The endpoint of the server this test process started. Every module importing the fixture
#: gets a session fixture of its own; they all share one server (one start per process).
_started: list[str] = []


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Start ``moto_server`` on 127.0.0.1 and yield its endpoint URL; skip if moto is absent."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install 'nbtoolkit[dev]')")
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install 'nbtoolkit[team]')")
    if _started:  # another module's session fixture started it; that one stops it at the end
        yield _started[0]
        return
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with http_server(["-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], f"{endpoint}/moto-api/", name="moto_server"):
        _started.append(endpoint)
        try:
            yield endpoint
        finally:
            _started.clear()


@dataclass(frozen=True)
class S3Location:
    """A fresh bucket on the test server."""

    endpoint: str
    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        """The artifact location URL (``s3://bucket/prefix``)."""
        return f"s3://{self.bucket}/{self.prefix}"

    def client(self) -> Any:
        """A boto3 S3 client on the test server (to look at the bucket without nbtoolkit)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )

    def keys(self) -> dict[str, int]:
        """Every object of the bucket: key -> size."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return {obj["Key"]: obj["Size"] for page in pages for obj in page.get("Contents", [])}


@pytest.fixture
def s3_location(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> S3Location:
    """A new bucket; AWS_ENDPOINT_URL and a key pair set in the environment for this test.

    fsspec caches file-system instances by their arguments, not by the environment, so a cached
    S3 client could still point at an earlier server or hold stale listings: every test starts
    with a fresh one.
    """
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    location = S3Location(s3_server, f"nbtk-{uuid.uuid4().hex[:12]}", "team/artifacts")
    location.client().create_bucket(Bucket=location.bucket)
    return location
