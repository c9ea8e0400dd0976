"""Helpers for the serve tests: models exported through the real export path, real server processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from _stability import demo_models

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


def export_model(out_dir: Path, model_obj: Any, *, model: str, version: str, roc_auc: float = 0.97,
                 release: dict[str, Any] | None = None) -> str:
    """Record a finished run logging ``model_obj`` and export it with the export stage; return the path."""
    import nbtoolkit as nbtk

    X = demo_models()["X"]
    with nbtk.start_run(f"{model}-{version}", success="roc_auc >= 0.9") as run:
        nbtk.log(roc_auc=roc_auc)
        nbtk.log_model(model_obj, "model", sample_input=X.iloc[:5])
    result = nbtk.export_bundle(run.run_id, model=model, out_dir=out_dir, version=version, force=True,
                                reason="test bundle without review", release=release)
    return str(result.path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A real ``nbtk serve`` process on a loopback port."""

    def __init__(self, project: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nbtoolkit", "serve", *args, "--port", str(self.port)],
            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.client = httpx.Client(base_url=self.url, timeout=30)
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"nbtk serve exited {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                if self.client.get("/ping").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("nbtk serve did not answer /ping within 90 s")
            time.sleep(0.2)

    def score(self, records: list[dict[str, Any]], ids: list[str] | None = None) -> httpx.Response:
        body: dict[str, Any] = {"dataframe_records": records}
        if ids is not None:
            body["ids"] = ids
        return self.client.post("/invocations", json=body)

    def stop(self, sig: int = signal.SIGTERM) -> str:
        """Stop the server with ``sig``; return its stderr."""
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err

    def kill(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def records(frame: Any, rows: Any) -> list[dict[str, Any]]:
    """The feature columns of ``rows`` as JSON records."""
    X = demo_models()["X"]
    return frame.iloc[list(rows)][list(X.columns)].to_dict(orient="records")
