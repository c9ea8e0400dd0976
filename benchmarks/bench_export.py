"""Export hashing benchmark: nbtoolkit vs ``hashlib.file_digest``, side by side in one run.

    python benchmarks/bench_export.py             # 1 GiB model file, 7 repetitions
    python benchmarks/bench_export.py --quick     # 256 MiB, 3 repetitions

Measured on the same file, alternating, after one warm-up read (so both read from the page
cache and the comparison is about hashing, not the disk):

(a) ``hashlib.file_digest(f, "sha256")``: the peer, the standard library's fastest path
(b) ``nbtoolkit.export.manifest.hash_file``: what export and verify use per file   goal >= 0.9x
(c) ``verify_folder`` on a bundle holding the file: manifest parsing, the walk that refuses
    links and special files, size checks and the re-hash                         goal >= 0.9x
(d) a whole ``export_bundle`` of a run whose model artifact is the file (copy out of the
    store with its digest check, hash, fsync, model card, report): for information

Ratios are throughput(nbtoolkit) / throughput(file_digest); higher is better.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MiB = 1 << 20


def write_file(path: Path, size: int) -> None:
    block = os.urandom(16 * MiB)
    with open(path, "wb") as fh:
        for _ in range(size // len(block)):
            fh.write(block)
        fh.write(block[: size % len(block)])


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def file_digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def make_bundle(folder: Path, model: Path) -> Path:
    from nbtoolkit.export.manifest import MANIFEST_SCHEMA

    bundle = folder / "bundle"
    (bundle / "model").mkdir(parents=True)
    os.replace(model, bundle / "model" / "model.bin")
    digest = file_digest(bundle / "model" / "model.bin")
    manifest = {"schema": MANIFEST_SCHEMA, "model": "bench", "version": "0.1.0", "run_id": "0" * 32,
                "files": [{"path": "model/model.bin", "sha256": digest, "size": (bundle / "model" / "model.bin").stat().st_size}]}
    (bundle / "MANIFEST.json").write_text(json.dumps(manifest))
    return bundle


def bench_export(folder: Path, model: Path, repeat: int) -> list[float]:
    """Time export_bundle of a run whose 'model' artifact is ``model`` (pickle meta: no skops scan)."""
    import nbtoolkit as nbtk
    from nbtoolkit.store import open_store

    project = folder / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "bench"\nversion = "0"\n')
    os.chdir(project)
    os.environ["NBTOOLKIT_STORE"] = str(project / ".nbtoolkit")
    with nbtk.start_run("bench-export", success="x >= 0") as run:
        nbtk.log(x=1)
    store = open_store()
    digest, size = store.artifacts.put_file(model)
    store.add_artifact(run.run_id, name="model", kind="model", digest=digest, size=size,
                       meta={"serializer": "pickle", "safe": False, "class": "bench.Blob", "filename": "model.pkl"})
    nbtk.approve(run.run_id, by="bench")
    times = []
    for _ in range(repeat):
        t = timed(lambda: nbtk.export_bundle(run.run_id, model="bench", out_dir=folder / "out", store=store))
        times.append(t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 MiB, 3 repetitions")
    parser.add_argument("--size-mib", type=int, default=None)
    parser.add_argument("--no-export", action="store_true", help="skip (d), the whole export")
    args = parser.parse_args()
    size = (args.size_mib or (256 if args.quick else 1024)) * MiB
    repeat = 3 if args.quick else 7

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from nbtoolkit.export.manifest import hash_file
    from nbtoolkit.export.verify import verify_folder

    with tempfile.TemporaryDirectory(prefix="nbtk-bench-export-") as tmp:
        folder = Path(tmp)
        model = folder / "model.bin"
        write_file(model, size)
        expected = file_digest(model)  # warm-up: the file is now in the page cache
        assert hash_file(model) == (expected, size)
        export_times: list[float] = []
        if not args.no_export:
            export_times = bench_export(folder, model, max(1, repeat // 2))
        bundle = make_bundle(folder, model)
        blob = bundle / "model" / "model.bin"
        problems = verify_folder(bundle)[2]
        assert not problems, problems
        peer, ours, verify = [], [], []
        for _ in range(repeat):  # interleaved, so background load hits all three alike
            peer.append(timed(lambda: file_digest(blob)))
            ours.append(timed(lambda: hash_file(blob)))
            verify.append(timed(lambda: verify_folder(bundle)))

    gib = size / (1 << 30)
    p = statistics.median(peer)
    rows = [
        ("hashlib.file_digest (peer)", p, 1.0, ""),
        ("nbtoolkit hash_file", statistics.median(ours), p / statistics.median(ours), ">= 0.9x"),
        ("nbtoolkit verify_folder", statistics.median(verify), p / statistics.median(verify), ">= 0.9x"),
    ]
    if export_times:
        e = statistics.median(export_times)
        rows.append(("nbtoolkit export_bundle (whole)", e, p / e, "info"))
    print(f"sha256 of a {gib:g} GiB model file, median of {repeat} (python {sys.version.split()[0]}, {os.cpu_count()} cpus)")
    print(f"{'measurement':34} {'seconds':>9} {'MiB/s':>9} {'ratio':>7}  goal")
    for name, secs, ratio, goal in rows:
        ok = "" if goal in ("", "info") else ("  ok" if ratio >= 0.9 else "  MISSED")
        print(f"{name:34} {secs:9.3f} {size / MiB / secs:9.0f} {ratio:6.2f}x  {goal}{ok}")


if __name__ == "__main__":
    main()
