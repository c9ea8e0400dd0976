"""A real Azure Blob Storage API for the tests: Azurite (Microsoft's emulator) on 127.0.0.1.

``tests/run.sh`` installs Azurite from npm into ``tests/azurite/node_modules``.
``azure_server`` (session) starts its blob service in memory on a free port; ``azure_location``
gives each test a fresh container and sets ``AZURE_STORAGE_CONNECTION_STRING`` (the variable
adlfs and Azure's own clients read), so nbtoolkit, kernels and ``nbtk`` subprocesses reach it
through adlfs exactly as they would reach an Azure storage account.

Import both fixtures into a test module: ``from _azure import azure_location, azure_server``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _servers import free_port, http_server

AZURITE = Path(__file__).parent / "azurite" / "node_modules" / ".bin" / "azurite-blob"
#: Azurite's fixed development account (public, documented by Microsoft); treated as a secret here.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@pytest.fixture(scope="session")
def azure_server() -> Iterator[str]:
    """Start Azurite's blob service in memory on 127.0.0.1; yield the connection string."""
    pytest.importorskip("adlfs", reason="adlfs is not installed (pip install 'nbtoolkit[dev]')")
    if not AZURITE.exists():
        pytest.skip("Azurite is not installed (tests/run.sh runs `npm ci --prefix tests/azurite`)")
    port = free_port()
    cmd = [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
           "--skipApiVersionCheck", "--silent", "--loose"]
    with http_server(cmd, f"http://127.0.0.1:{port}/", name="Azurite", any_answer=True):
        yield f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"


@dataclass(frozen=True)
class AzureLocation:
    """A fresh container on Azurite."""

    connection_string: str
    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        """The artifact location URL (``az://container/prefix``)."""
        return f"az://{self.bucket}/{self.prefix}"

    def fs(self) -> Any:
        """An adlfs client on Azurite (to look at the container without nbtoolkit)."""
        import adlfs

        return adlfs.AzureBlobFileSystem(connection_string=self.connection_string, skip_instance_cache=True)

    def objects(self) -> dict[str, int]:
        """Every blob of the container: name -> size."""
        found = self.fs().find(self.bucket, detail=True)
        return {key.split("/", 1)[1]: int(info["size"]) for key, info in found.items()}


@pytest.fixture
def azure_location(azure_server: str, monkeypatch: pytest.MonkeyPatch) -> AzureLocation:
    """A new container; the connection string set in the environment for this test."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure_server)
    location = AzureLocation(azure_server, f"nbtk-{uuid.uuid4().hex[:12]}", "team/artifacts")
    location.fs().mkdir(location.bucket)
    return location
