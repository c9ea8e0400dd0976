"""Real servers for the tests: a throw-away PostgreSQL cluster on a loopback port, and the
HTTP servers of the object-storage tests (``moto_server``, a GCS emulator, Azurite) as child processes.

The server comes from the distribution's packages (``tests/run.sh`` installs Debian's
``postgresql``). It refuses to run as root, so as root it runs as the ``postgres`` user
through ``runuser``. It lives in a temporary data folder and is stopped at the end.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def postgres_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (newest major version), or ``None``."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@dataclass
class PostgresServer:
    """A running PostgreSQL cluster (superuser ``postgres``, trust authentication on 127.0.0.1)."""

    bin: Path
    data: Path
    port: int

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        """A SQLAlchemy URL for ``database`` (psycopg2, the team extra's driver)."""
        auth = "postgres" if password is None else f"postgres:{password}"
        return f"postgresql+psycopg2://{auth}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str, *, database: str = "postgres") -> None:
        """Run ``sql`` as the superuser in autocommit mode (CREATE/DROP DATABASE, GRANT...)."""
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=database)
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(sql)
        finally:
            con.close()

    def new_database(self) -> str:
        """Create an empty database; return its URL."""
        name = f"nbtk_{uuid.uuid4().hex[:12]}"
        self.admin(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a PostgreSQL cluster in a temporary folder; stop it and delete the folder after.

    Raises:
        RuntimeError: the binaries are missing or the server did not start (with its log).
    """
    bindir = postgres_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql; tests/run.sh does it)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        raise RuntimeError("running as root needs runuser to start PostgreSQL as the postgres user")
    root = Path(tempfile.mkdtemp(prefix="nbtk-pg-"))
    data = root / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(data, "postgres")
    port = free_port()
    log = root / "server.log"
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    try:
        subprocess.run(
            _as_server_user([str(bindir / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres", "-E", "UTF8"]),
            check=True, capture_output=True, env=env, cwd=root,
        )
        options = f"-p {port} -k {root} -h 127.0.0.1 -c max_connections=200 -c fsync=off"
        started = subprocess.run(
            _as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options, "start"]),
            capture_output=True, text=True, env=env, cwd=root,
        )
        if started.returncode != 0:
            text = log.read_text(errors="replace") if log.exists() else started.stderr
            raise RuntimeError(f"PostgreSQL did not start: {text[-2000:]}")
        yield PostgresServer(bindir, data, port)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                _as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                capture_output=True, env=env, cwd=root,
            )
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def http_server(cmd: list[str], probe: str, *, name: str, any_answer: bool = False) -> Iterator[None]:
    """Run ``cmd`` (a server) until the block ends, once GET ``probe`` answers (2xx, or anything
    with ``any_answer``). ``cmd`` starting with ``-m`` runs this Python's module."""
    import httpx

    argv = [sys.executable, *cmd] if cmd[0] == "-m" else cmd
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(probe, timeout=1)
                if not any_answer:
                    answer.raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not answer at {probe}") from None
                time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
