"""Artifact logging benchmark: ``nbtk.log_artifact`` to a local folder and to S3, beside the peers.

    python benchmarks/bench_artifacts.py            # 1 x 200 MiB and 1,000 small files, 3 repetitions
    python benchmarks/bench_artifacts.py --quick    # 1 x 50 MiB and 200 small files, 1 repetition

Targets: the store's local artifact folder, and an S3 bucket on an S3-compatible server
(moto_server started on 127.0.0.1 by this script; s3fs is the client, as with AWS or MinIO).

Peers, on the same data and target: MLflow's ``log_artifact`` / ``log_artifacts`` when mlflow is
installed (local file store, and an ``s3://`` artifact root); otherwise the plain copy a user
would write by hand: ``shutil.copyfile`` / ``shutil.copytree`` locally, ``s3fs.put`` to S3.

Every repetition writes into a fresh store and a fresh bucket prefix, so nobody benefits from
content already stored. nbtoolkit's figure includes what the peer does not do: hashing every
byte (sha256, twice: before upload and while uploading), the existence check that makes
re-uploads free, and one committed store row per file. A last line times logging the same
content again (nbtoolkit's deduplication: no upload).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

MiB = 1 << 20


def write_big(path: Path, size: int) -> None:
    block = os.urandom(8 * MiB)
    with open(path, "wb") as fh:
        for _ in range(size // len(block)):
            fh.write(block)
        fh.write(block[: size % len(block)])


def write_small(folder: Path, count: int, size: int = 4096) -> None:
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"part-{i:05d}.json").write_bytes(os.urandom(size))


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(f"{endpoint}/moto-api/", timeout=1)
            return proc, endpoint
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto_server did not start")


def nbtk_logger(workdir: Path, artifacts: str | None) -> Callable[[Path], float]:
    """Return a function timing ``log_artifact(path)`` in a fresh store (and fresh location)."""
    import nbtoolkit as nbtk

    def run(path: Path) -> float:
        folder = workdir / f"store-{uuid.uuid4().hex[:8]}"
        location = f"{artifacts}/{folder.name}" if artifacts else None
        os.environ["NBTOOLKIT_STORE"] = str(folder)
        if location:
            os.environ["NBTOOLKIT_ARTIFACTS"] = location
        with nbtk.start_run("bench-artifacts"):
            start = time.perf_counter()
            nbtk.log_artifact(path)
            elapsed = time.perf_counter() - start
        return elapsed

    return run


def nbtk_relog(workdir: Path, artifacts: str | None, path: Path) -> float:
    """Time logging content that the location already holds (no upload, rows only)."""
    import nbtoolkit as nbtk

    folder = workdir / "store-relog"
    os.environ["NBTOOLKIT_STORE"] = str(folder)
    if artifacts:
        os.environ["NBTOOLKIT_ARTIFACTS"] = f"{artifacts}/relog"
    with nbtk.start_run("bench-relog"):
        nbtk.log_artifact(path)
    with nbtk.start_run("bench-relog"):
        start = time.perf_counter()
        nbtk.log_artifact(path)
        return time.perf_counter() - start


def peer_logger(workdir: Path, s3_root: str | None) -> tuple[str, Callable[[Path], float]]:
    """MLflow's log_artifact(s) if installed, else a plain copy / ``s3fs.put``."""
    try:
        import mlflow
    except ImportError:
        mlflow = None
    if mlflow is not None:
        def run_mlflow(path: Path) -> float:
            tracking = workdir / f"mlruns-{uuid.uuid4().hex[:8]}"
            mlflow.set_tracking_uri(tracking.as_uri())
            root = f"{s3_root}/{tracking.name}" if s3_root else tracking.as_uri()
            exp = mlflow.create_experiment(f"bench-{tracking.name}", artifact_location=root)
            with mlflow.start_run(experiment_id=exp):
                start = time.perf_counter()
                if path.is_dir():
                    mlflow.log_artifacts(str(path), path.name)
                else:
                    mlflow.log_artifact(str(path))
                return time.perf_counter() - start

        return f"mlflow {mlflow.__version__} log_artifact(s)", run_mlflow
    if s3_root is None:
        def run_copy(path: Path) -> float:
            dest = workdir / f"copy-{uuid.uuid4().hex[:8]}"
            start = time.perf_counter()
            if path.is_dir():
                shutil.copytree(path, dest / path.name)
            else:
                dest.mkdir()
                shutil.copyfile(path, dest / path.name)
            return time.perf_counter() - start

        return "shutil.copyfile / copytree (mlflow not installed)", run_copy
    import s3fs

    fs = s3fs.S3FileSystem()

    def run_put(path: Path) -> float:
        dest = f"{s3_root}/put-{uuid.uuid4().hex[:8]}/{path.name}"
        start = time.perf_counter()
        fs.put(str(path), dest, recursive=path.is_dir())
        return time.perf_counter() - start

    return "s3fs.put (mlflow not installed)", run_put


def measure(label: str, reps: int, nbtk: Callable[[Path], float], peer: Callable[[Path], float], path: Path) -> None:
    ours, theirs = [], []
    for _ in range(reps):  # alternate so load changes hit both alike
        ours.append(nbtk(path))
        theirs.append(peer(path))
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"  {label:<22} nbtoolkit {a:8.3f} s   peer {b:8.3f} s   nbtoolkit/peer {a / b:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    big_size, small_count, reps = (50 * MiB, 200, 1) if args.quick else (200 * MiB, 1000, 3)

    work = Path(tempfile.mkdtemp(prefix="bench-artifacts-"))
    proc, endpoint = start_moto()
    try:
        os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                          AWS_DEFAULT_REGION="us-east-1")
        import boto3

        boto3.client("s3").create_bucket(Bucket="bench-artifacts")
        big, small = work / "data" / "big.bin", work / "data" / "many"
        big.parent.mkdir()
        write_big(big, big_size)
        write_small(small, small_count)
        print(f"1 x {big_size // MiB} MiB file, {small_count} files of 4 KiB; median of {reps}")
        for target, s3_root in (("local folder", None), ("S3 (moto_server)", "s3://bench-artifacts")):
            label, peer = peer_logger(work, s3_root)
            print(f"{target} -- peer: {label}")
            nbtk = nbtk_logger(work, s3_root)
            measure(f"1 x {big_size // MiB} MiB", reps, nbtk, peer, big)
            measure(f"{small_count} small files", reps, nbtk, peer, small)
            again = nbtk_relog(work, s3_root, small)
            print(f"  {'same files again':<22} nbtoolkit {again:8.3f} s   (already stored: rows only, no upload)")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
