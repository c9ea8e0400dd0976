# ruff: noqa: F811  (pytest fixtures imported from _s3 are redefined as parameters)
"""An artifact location that cannot be used fails fast, typed, with the fix and without secrets.

Real components only: a closed port on 127.0.0.1 for an endpoint that is down, moto's S3 server
for a bucket that does not exist and (started with authentication on) for refused credentials,
a misspelt scheme, a driver whose import fails, and ``nbtk`` in a subprocess. Runs recorded
before the failure stay listed; no artifact row refers to a blob that was not stored.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _s3 import ACCESS_KEY, SECRET_KEY, S3Location, s3_location, s3_server  # noqa: F401 (fixtures)
from _servers import free_port, http_server
from conftest import TEST_NOTEBOOKS, nbtk_cli

from nbtoolkit.errors import ArtifactStoreUnavailableError, ConfigError, StoreError

#: A planted secret key: it must reach no message and no byte of the store.
PLANTED = "nbtk-planted-secret-7f3a9c1e5b"

#: How long a failure may take: the probe uses a 3 s connect timeout and one retry (botocore's
#: defaults took 11 s against a closed port, minutes against a silent one).
FAST = 6.0


def _store_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


@pytest.fixture
def dead_endpoint(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """AWS's variables pointing at a loopback port nothing listens on; the planted secret set."""
    s3fs = pytest.importorskip("s3fs", reason="s3fs is not installed (pip install 'nbtoolkit[team]')")
    s3fs.S3FileSystem.clear_instance_cache()
    endpoint = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{endpoint}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", PLANTED)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("NBTOOLKIT_ARTIFACTS", "s3://team-bucket/nbtk")
    yield endpoint
    s3fs.S3FileSystem.clear_instance_cache()


def _assert_names_location_and_fix(message: str, location: str) -> None:
    first = message.splitlines()[0]
    assert f"The artifact store {location} cannot be used" in first
    for fix in ("NBTOOLKIT_ARTIFACTS", "[tool.nbtoolkit]", "AWS_ENDPOINT_URL", "bucket exists", "nbtk store check"):
        assert fix in message
    assert PLANTED not in message and SECRET_KEY not in message


def test_unreachable_endpoint_fails_fast_and_keeps_what_was_recorded(project: Path, dead_endpoint: str) -> None:
    import nbtoolkit as nbtk
    from nbtoolkit.store import open_store

    with nbtk.start_run("before") as before:  # metrics only: no blob, recorded fine
        nbtk.log_metric("score", 0.9)
    (project / "model.bin").write_bytes(os.urandom(1 << 16))

    started = time.monotonic()
    with pytest.raises(ArtifactStoreUnavailableError) as info, nbtk.start_run("during") as during:
        nbtk.log_metric("score", 0.8)
        nbtk.log_artifact(project / "model.bin")
    elapsed = time.monotonic() - started
    print(f"unreachable endpoint reported after {elapsed:.2f} s")
    assert elapsed < FAST

    error = info.value
    message = str(error)
    _assert_names_location_and_fix(message, "s3://team-bucket/nbtk")
    assert "cannot reach the server" in message and dead_endpoint in message
    assert isinstance(error, StoreError) and error.exit_code == 2
    assert error.location == "s3://team-bucket/nbtk" and error.reason.startswith("cannot reach the server (")
    assert str(pickle.loads(pickle.dumps(error))) == message  # crosses process boundaries intact
    assert error.__cause__ is None and error.__suppress_context__  # the driver's text is not chained

    # both runs are listed; the failed one keeps its metric and has no artifact row
    listed = nbtk.runs()
    assert {before.run_id, during.run_id} <= set(listed["run_id"])
    store = open_store()
    assert store.get_run(before.run_id).status == "finished"
    failed = store.get_run(during.run_id)
    assert failed.status == "failed" and failed.metrics["score"] == 0.8
    assert failed.artifacts == ()
    assert "cannot reach the server" in (failed.error or "")
    assert PLANTED.encode() not in _store_bytes(store.path)

    # a second attempt in the same process is fast too (a failed probe is not remembered)
    started = time.monotonic()
    with pytest.raises(ArtifactStoreUnavailableError):
        store.artifacts.put_bytes(b"again")
    assert time.monotonic() - started < FAST


def test_missing_bucket_is_named_and_nothing_is_written(project: Path, s3_location: S3Location) -> None:
    from nbtoolkit.store.artifacts import open_blob_store

    missing = f"{s3_location.bucket}-missing"
    blobs = open_blob_store(f"s3://{missing}/team/artifacts")
    started = time.monotonic()
    with pytest.raises(ArtifactStoreUnavailableError) as info:
        blobs.put_bytes(b"model bytes")
    assert time.monotonic() - started < FAST
    message = str(info.value)
    _assert_names_location_and_fix(message, f"s3://{missing}/team/artifacts")
    assert f"the bucket {missing!r} does not exist" in message and "NoSuchBucket" in message
    # reading is the same typed error, not "the artifact was changed or deleted"
    with pytest.raises(ArtifactStoreUnavailableError, match="does not exist"):
        blobs.read_bytes("0" * 64)
    buckets = {b["Name"] for b in s3_location.client().list_buckets()["Buckets"]}
    assert missing not in buckets and s3_location.keys() == {}


@pytest.fixture(scope="module")
def s3_with_auth() -> Iterator[str]:
    """A second moto server that checks credentials (it knows no key, so it refuses every one)."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install 'nbtoolkit[dev]')")
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install 'nbtoolkit[team]')")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = contextlib.ExitStack()
    with pytest.MonkeyPatch.context() as mp:  # read by moto when it starts; unset for every other server
        mp.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "0")
        server.enter_context(http_server(
            ["-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], f"{endpoint}/moto-api/", name="moto_server (auth)"
        ))
    with server:
        yield endpoint


def test_refused_credentials(project: Path, s3_with_auth: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import s3fs

    from nbtoolkit.store.artifacts import open_blob_store

    s3fs.S3FileSystem.clear_instance_cache()
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_with_auth)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", PLANTED)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    blobs = open_blob_store("s3://team-bucket/nbtk")
    started = time.monotonic()
    with pytest.raises(ArtifactStoreUnavailableError) as info:
        blobs.put_bytes(b"model bytes")
    assert time.monotonic() - started < FAST
    message = str(info.value)
    _assert_names_location_and_fix(message, "s3://team-bucket/nbtk")
    assert "the server refused the credentials (InvalidAccessKeyId" in message
    s3fs.S3FileSystem.clear_instance_cache()


def test_unknown_scheme_is_refused_before_any_row(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbtoolkit as nbtk
    from nbtoolkit.store.artifacts import open_blob_store

    with nbtk.start_run("before"):
        nbtk.log_metric("score", 1.0)
    monkeypatch.setenv("NBTOOLKIT_ARTIFACTS", f"s4://me:{PLANTED}@team-bucket/nbtk")
    from nbtoolkit.store import open_store

    with pytest.raises(ConfigError) as info:
        open_store().create_run(experiment="typo")  # refused before the run row is written
    message = str(info.value)
    assert "s4://team-bucket/nbtk is not a known fsspec URL" in message and "Protocol not known: s4" in message
    assert "NBTOOLKIT_ARTIFACTS" in message and "s3://bucket/prefix" in message and "nbtk store check" in message
    assert PLANTED not in message and "me:" not in message
    assert info.value.exit_code == 2
    assert list(nbtk.runs()["experiment"]) == ["before"]
    with pytest.raises(ConfigError, match="pip install 'nbtoolkit\\[team\\]'"):
        open_blob_store("s4://team-bucket/nbtk")


MISSING_DRIVER = """
import sys
sys.modules[sys.argv[1]] = None  # `import <driver>` now fails as it does when it is not installed
from nbtoolkit.errors import ConfigError
from nbtoolkit.store.artifacts import open_blob_store
try:
    open_blob_store(sys.argv[2])
except ConfigError as exc:
    print(exc)
"""


@pytest.mark.parametrize(("module", "url", "fix"), [
    ("s3fs", "s3://team-bucket/nbtk", "s3fs (pip install 'nbtoolkit[team]')"),
    ("gcsfs", "gs://team-bucket/nbtk", "gcsfs (pip install gcsfs)"),
])
def test_missing_driver_names_the_package(project: Path, module: str, url: str, fix: str) -> None:
    res = subprocess.run([sys.executable, "-c", MISSING_DRIVER, module, url], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"The artifact location {url} needs {fix}, which is not installed" in res.stdout
    assert "NBTOOLKIT_ARTIFACTS" in res.stdout and "nbtk store check" in res.stdout


def test_cli_exits_2_with_the_message_and_the_run_stays_listed(project: Path, dead_endpoint: str) -> None:
    small = project / "small_experiment.ipynb"
    small.write_bytes((TEST_NOTEBOOKS / "small_experiment.ipynb").read_bytes())
    res = nbtk_cli("run", str(small), cwd=project)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("Error: The artifact store s3://team-bucket/nbtk cannot be used: cannot reach the server")
    assert "Traceback" not in res.stderr
    _assert_names_location_and_fix(res.stderr.removeprefix("Error: "), "s3://team-bucket/nbtk")

    # the run and its metric were recorded before the output notebook could not be stored
    listed = nbtk_cli("runs", cwd=project)
    assert listed.returncode == 0, listed.stderr
    assert "small" in listed.stdout and "1 run(s)" in listed.stdout
    # ... and the run is closed as failed with the reason, not left running (later "crashed")
    shown = nbtk_cli("runs", "--json", cwd=project)
    (run,) = json.loads(shown.stdout)
    assert run["status"] == "failed", run
    record = nbtk_cli("show", run["run_id"], "--json", cwd=project)
    error = json.loads(record.stdout)["error"]
    assert error.startswith("The output notebook could not be stored. The artifact store s3://team-bucket/nbtk cannot be used")

    started = time.monotonic()
    check = nbtk_cli("store", "check", cwd=project)
    print(f"nbtk store check against a dead endpoint: {time.monotonic() - started:.2f} s")
    # the database is still checked; the unreachable artifact store is reported as a problem
    assert check.returncode == 1 and "Traceback" not in check.stderr, check.stderr
    assert "schema version" in check.stdout and "write permission: ok" in check.stdout, check.stdout
    assert "PROBLEM: artifacts: The artifact store s3://team-bucket/nbtk cannot be used: cannot reach the server" in check.stdout
    assert PLANTED.encode() not in _store_bytes(project / ".nbtoolkit")


# --- reports while the artifact store is down ------------------------------------------------
# A figure, notebook or predictions blob that is missing or damaged gets a note in the report;
# an artifact store that cannot be used at all fails the report (exit 2 / HTTP 503) instead of
# producing one that looks complete without them, which the server would then cache.


def _record_run_with(kind: str) -> str:
    """A finished run that logged one artifact of ``kind`` into the current artifact location."""
    import nbtoolkit as nbtk

    with nbtk.start_run("report-outage") as run:
        nbtk.log_metric("score", 0.9)
        if kind == "figure":
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig = plt.figure(figsize=(1, 1))
            plt.plot([0, 1], [1, 0])
            nbtk.log_figure(fig, "curve")
            plt.close(fig)
        elif kind == "notebook":
            import nbformat

            from nbtoolkit.store import open_store

            nb = nbformat.v4.new_notebook()
            nb.cells = [nbformat.v4.new_markdown_cell("notebook-outage-marker")]
            store = open_store()
            digest, size = store.artifacts.put_bytes(nbformat.writes(nb).encode("utf-8"))
            store.add_artifact(run.run_id, name="output.ipynb", kind="notebook", digest=digest, size=size,
                               media_type="application/x-ipynb+json")
        else:
            nbtk.log_predictions([0, 1, 0, 1, 1, 0], [0.2, 0.8, 0.3, 0.7, 0.6, 0.4])
    return run.run_id


#: What the report shows once the blob of each kind can be read again.
SHOWN = {"figure": 'src="data:image/png;base64,', "notebook": "notebook-outage-marker",
         "predictions": "Predictions logged for 6 examples"}


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts}


@pytest.mark.parametrize("kind", ["figure", "notebook", "predictions"])
def test_report_fails_while_the_artifact_store_is_down_and_works_after(
        project: Path, s3_location: S3Location, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    import s3fs

    monkeypatch.setenv("NBTOOLKIT_ARTIFACTS", s3_location.url)
    run_id = _record_run_with(kind)
    assert s3_location.keys()  # the blob is in the bucket

    # the endpoint goes down (nothing listens on the port); the planted secret is the key in use
    s3fs.S3FileSystem.clear_instance_cache()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", PLANTED)
    before = _files(project)
    res = nbtk_cli("report", run_id, "-o", "out.html", cwd=project)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert res.stderr.startswith(f"Error: The artifact store {s3_location.url} cannot be used: cannot reach the server")
    assert "Traceback" not in res.stderr
    _assert_names_location_and_fix(res.stderr.removeprefix("Error: "), s3_location.url)
    assert PLANTED not in res.stdout + res.stderr
    assert not (project / "out.html").exists() and _files(project) == before  # no report, no temp file

    # the endpoint is back: the same command writes the complete report
    s3fs.S3FileSystem.clear_instance_cache()
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_location.endpoint)
    res = nbtk_cli("report", run_id, "-o", "out.html", cwd=project)
    assert res.returncode == 0, res.stderr
    html = (project / "out.html").read_text(encoding="utf-8")
    assert SHOWN[kind] in html
    assert "could not read" not in html and "could not be read" not in html
    s3fs.S3FileSystem.clear_instance_cache()


def test_comparison_report_fails_while_the_artifact_store_is_down(
        project: Path, s3_location: S3Location, monkeypatch: pytest.MonkeyPatch) -> None:
    import s3fs

    monkeypatch.setenv("NBTOOLKIT_ARTIFACTS", s3_location.url)
    a, b = _record_run_with("predictions"), _record_run_with("predictions")
    s3fs.S3FileSystem.clear_instance_cache()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", PLANTED)
    res = nbtk_cli("report", a, b, "-o", "compare.html", cwd=project)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert res.stderr.startswith(f"Error: The artifact store {s3_location.url} cannot be used")
    assert PLANTED not in res.stdout + res.stderr
    assert not (project / "compare.html").exists()
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.mark.slow
def test_server_answers_503_and_caches_no_report_while_the_artifact_store_is_down(
        project: Path, s3_location: S3Location, monkeypatch: pytest.MonkeyPatch) -> None:
    from _lab import JupyterServer

    monkeypatch.setenv("NBTOOLKIT_ARTIFACTS", s3_location.url)
    run_id = _record_run_with("figure")
    store_dir = project / ".nbtoolkit"
    env = {
        "NBTOOLKIT_STORE": str(store_dir), "NBTOOLKIT_ARTIFACTS": s3_location.url,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": PLANTED, "AWS_DEFAULT_REGION": "us-east-1",
    }
    srv = JupyterServer(project, project.parent / "jupyter", lab=False, env=env).start()
    try:
        status, headers, body = srv.request(f"/nbtoolkit/api/runs/{run_id}/report")
        assert status == 503, body[:500]
        assert headers["Content-Type"].startswith("application/json")
        message = json.loads(body)["message"]
        assert message.startswith(f"The artifact store {s3_location.url} cannot be used: cannot reach the server")
        assert PLANTED.encode() not in body and b"Traceback" not in body
        reports = store_dir / "reports"
        assert not (reports / f"{run_id}.html").exists()
        assert not (reports.is_dir() and any(reports.iterdir()))  # no partial or temporary file either

        # the record lives in the database: it is still served
        status, _, body = srv.request(f"/nbtoolkit/api/runs/{run_id}")
        assert status == 200 and json.loads(body)["run_id"] == run_id
    finally:
        srv.stop()
    assert PLANTED not in srv.log()
