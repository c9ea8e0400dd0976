"""A real Google Cloud Storage JSON API for the tests: ``gcp-storage-emulator`` on 127.0.0.1.

``gcs_server`` (session) starts the emulator on a free port; ``gcs_location`` gives each test a
fresh bucket and sets ``STORAGE_EMULATOR_HOST`` (the variable gcsfs and Google's own clients
read), so nbtoolkit, kernels and ``nbtk`` subprocesses reach it through gcsfs exactly as they
would reach Google Cloud Storage.

Import both fixtures into a test module: ``from _gcs import gcs_location, gcs_server``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from _servers import free_port, http_server


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[str]:
    """Start ``gcp-storage-emulator`` in memory on 127.0.0.1; yield its endpoint URL."""
    # gcsfs >= 2025 picks, at import, a file system that first asks a gRPC control API for the
    # bucket's layout (60 s timeouts against an emulator, which lacks it); this variable is read
    # when gcsfs is first imported, so it is set for the whole session before that
    os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
    pytest.importorskip("gcp_storage_emulator", reason="gcp-storage-emulator is not installed (pip install 'nbtoolkit[dev]')")
    pytest.importorskip("gcsfs", reason="gcsfs is not installed (pip install 'nbtoolkit[dev]')")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    args = ["-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"]
    with http_server(args, f"{endpoint}/storage/v1/b?project=test", name="gcp-storage-emulator"):
        yield endpoint


@dataclass(frozen=True)
class GcsLocation:
    """A fresh bucket on the emulator."""

    endpoint: str
    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        """The artifact location URL (``gs://bucket/prefix``)."""
        return f"gs://{self.bucket}/{self.prefix}"

    def fs(self) -> Any:
        """A gcsfs client on the emulator (to look at the bucket without nbtoolkit)."""
        import gcsfs

        return gcsfs.GCSFileSystem(endpoint_url=self.endpoint, token="anon", skip_instance_cache=True)

    def objects(self) -> dict[str, int]:
        """Every object of the bucket: key (without the bucket) -> size."""
        found = self.fs().find(self.bucket, detail=True)
        return {key.split("/", 1)[1]: int(info["size"]) for key, info in found.items()}


@pytest.fixture
def gcs_location(gcs_server: str, monkeypatch: pytest.MonkeyPatch) -> GcsLocation:
    """A new bucket; the emulator's address set in the environment for this test."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server)
    monkeypatch.setenv("NO_GCE_CHECK", "true")  # no metadata-server probe for credentials
    location = GcsLocation(gcs_server, f"nbtk-{uuid.uuid4().hex[:12]}", "team/artifacts")
    location.fs().mkdir(location.bucket)
    return location
