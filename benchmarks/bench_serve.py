"""Serving throughput and latency: ``nbtk serve`` (prediction log + canary on) vs ``mlflow models serve``.

A bounded load generator (asyncio + httpx, ``--concurrency`` requests in flight, ``--requests``
requests in all, one row each in MLflow's ``dataframe_split`` format) against 127.0.0.1 only.
Both servers serve the same fitted gradient-boosting model of the breast-cancer demo; nbtoolkit
serves it from a verified bundle with the prediction log on and a 10 % canary (a logistic
regression as champion, the GBM as challenger at 100 % for the like-for-like run, so every row
is answered by the same GBM as MLflow's).

Then: predictions logged = predictions answered (counted in the store after a clean shutdown),
and the time from an injected breach (the challenger starts raising) to routing stopped and to
the alias rolled back.

Usage::

    python benchmarks/bench_serve.py [--requests 2000] [--concurrency 8] [--rounds 3]
        [--mlflow-python PATH]   # a Python with mlflow installed (default: this one, if it has it)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited {proc.returncode}")
        try:
            if httpx.get(url + "/ping", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not come up")


async def _load(url: str, bodies: list[dict[str, Any]], concurrency: int) -> tuple[float, list[float], int]:
    import httpx

    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            nonlocal failures
            while not queue.empty():
                body = queue.get_nowait()
                t = time.perf_counter()
                r = await client.post("/invocations", json=body)
                latencies.append((time.perf_counter() - t) * 1000)
                failures += r.status_code != 200

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return wall, latencies, failures


def load(url: str, bodies: list[dict[str, Any]], concurrency: int) -> dict[str, float]:
    asyncio.run(_load(url, bodies[: max(50, len(bodies) // 10)], concurrency))  # warm-up
    wall, lat, failures = asyncio.run(_load(url, bodies, concurrency))
    q = statistics.quantiles(lat, n=100)
    return {"rps": len(bodies) / wall, "p50": statistics.median(lat), "p99": q[98], "failed": failures}


def bodies_for(X: Any, n: int, *, ids: bool) -> list[dict[str, Any]]:
    cols = list(X.columns)
    out = []
    for i in range(n):
        row = X.iloc[i % len(X)]
        body: dict[str, Any] = {"dataframe_split": {"columns": cols, "data": [row.tolist()]}}
        if ids:
            body["ids"] = [f"user-{i}"]
        out.append(body)
    return out


def setup_project(tmp: Path) -> tuple[Path, Any, Any, Any]:
    """A git project with cancer 1.0.0 (logistic) at production and 1.0.1 (GBM) at candidate."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    proj = tmp / "proj"
    proj.mkdir()
    (proj / "pyproject.toml").write_text(
        '[project]\nname = "b"\nversion = "0"\n\n[tool.nbtoolkit.sla]\nmax.error_rate = 0.05\n\n'
        "[tool.nbtoolkit.serve]\nmin_rows = 10\n", encoding="utf-8")
    (proj / ".gitignore").write_text(".nbtoolkit/\n", encoding="utf-8")
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x.invalid", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@x.invalid"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=proj, check=True, env=env)
    os.chdir(proj)
    os.environ["NBTOOLKIT_STORE"] = str(proj / ".nbtoolkit")
    sys.path.insert(0, str(TESTS))
    from _faulty import Faulty

    import nbtoolkit as nbtk
    from nbtoolkit.stability.promotion import promote

    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target
    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    gb = GradientBoostingClassifier(n_estimators=100, random_state=0).fit(X, y)
    trigger = tmp / "break-now"
    for version, model in (("1.0.0", lr), ("1.0.1", gb), ("1.0.2", Faulty(gb, "raise", str(trigger)))):
        with nbtk.start_run(f"cancer-{version}", success="roc_auc >= 0.9") as run:
            nbtk.log(roc_auc=0.97)
            nbtk.log_model(model, "model", sample_input=X.iloc[:5])
        nbtk.export_bundle(run.run_id, model="cancer", out_dir=tmp / "bundles", version=version, force=True, reason="bench")
    promote("cancer", "1.0.0", to="production", by="bench", reason="bench")
    promote("cancer", "1.0.1", to="candidate", by="bench", reason="bench")
    promote("cancer", "1.0.2", to="faulty", by="bench", reason="bench")
    promote("cancer", "1.0.1", to="faulty", by="bench", reason="bench")
    promote("cancer", "1.0.2", to="faulty", by="bench", reason="bench")
    return proj, X, gb, trigger


def nbtk_server(proj: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}
    proc = subprocess.Popen([sys.executable, "-m", "nbtoolkit", "serve", *args, "--port", str(port)], cwd=proj, env=env,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc)
    return proc, url


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(120)


def mlflow_server(python: str, model: Any, tmp: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    (tmp / "gb.pkl").write_bytes(pickle.dumps(model))
    save = ("import pickle,sys,mlflow.sklearn; m=pickle.load(open(sys.argv[1],'rb')); "
            "mlflow.sklearn.save_model(m, sys.argv[2], serialization_format='cloudpickle')")
    done = subprocess.run([python, "-c", save, str(tmp / "gb.pkl"), str(tmp / "mlflow-model")], capture_output=True, text=True)
    if done.returncode != 0:
        print("mlflow could not save the model:", done.stderr.strip().splitlines()[-1:])
        return None
    port = free_port()
    mlflow = str(Path(python).parent / "mlflow")
    proc = subprocess.Popen([mlflow, "models", "serve", "-m", str(tmp / "mlflow-model"), "-h", "127.0.0.1", "-p", str(port),
                             "--env-manager", "local"], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            start_new_session=True,  # mlflow runs `uvicorn` from PATH: its own Python's
                            env={**os.environ, "PATH": os.pathsep.join([str(Path(python).parent), os.environ["PATH"]])})
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc)
    return proc, url


def breach_timing(proj: Path, X: Any, trigger: Path) -> dict[str, float]:
    """Challenger at 50 % starts raising: seconds to routing stopped and to the alias rolled back."""
    import httpx

    from nbtoolkit import registry

    proc, url = nbtk_server(proj, "cancer@production", "--canary", "cancer@faulty", "--percent", "50",
                            "--trust-type", "_faulty.Faulty")
    client = httpx.Client(base_url=url, timeout=30)
    bodies = bodies_for(X, 100000, ids=True)
    for b in bodies[:50]:
        client.post("/invocations", json=b)
    trigger.write_text("")
    t0 = time.monotonic()
    halted = rolled = None
    i, failed = 50, 0
    while rolled is None and time.monotonic() - t0 < 60:
        failed += client.post("/invocations", json=bodies[i]).status_code != 200
        i += 1
        if halted is None and client.get("/health").json()["canary"]["halt"] is not None:
            halted = time.monotonic() - t0
        if registry.current("cancer", "faulty") == "1.0.1":
            rolled = time.monotonic() - t0
    client.close()
    stop(proc)
    return {"to_halt_s": halted or float("nan"), "to_rollback_s": rolled or float("nan"), "failed_requests": failed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per server (medians reported)")
    parser.add_argument("--mlflow-python", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nbtk-bench-serve-") as t:
        tmp = Path(t)
        proj, X, gb, trigger = setup_project(tmp)
        from nbtoolkit.store import open_store

        # like for like: every row answered by the GBM (as MLflow's), with canary routing and the log on;
        # and a 10 % canary (90 % answered by the logistic regression)
        servers = {
            "nbtk serve (log on, canary 100 %: GBM)": nbtk_server(proj, "cancer@production", "--canary", "cancer@candidate", "--percent", "100"),
            "nbtk serve (log on, canary 10 %)": nbtk_server(proj, "cancer@production", "--canary", "cancer@candidate", "--percent", "10"),
        }
        mlflow = mlflow_server(args.mlflow_python or sys.executable, gb, tmp)
        if mlflow is not None:
            servers["mlflow models serve (GBM)"] = mlflow
        results: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
        loads: list[float] = []
        answered = 0
        for _ in range(args.rounds):  # interleaved, so load changes on the machine hit all alike
            loads.append(os.getloadavg()[0])
            for name, (_proc, url) in servers.items():
                bodies = bodies_for(X, args.requests, ids=not name.startswith("mlflow"))
                results[name].append(load(url, bodies, args.concurrency))
                if not name.startswith("mlflow"):
                    answered += args.requests + max(50, args.requests // 10)
        for name, (proc, _url) in servers.items():
            if name.startswith("mlflow"):
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(60)
            else:
                stop(proc)
        log = open_store().prediction_log("cancer")
        breach = breach_timing(proj, X, trigger)
    if mlflow is None:
        print("mlflow not available: no peer figures")
    print(f"{args.requests} one-row requests per round, {args.rounds} rounds, concurrency {args.concurrency}, 127.0.0.1")
    print(f"{'server':<42} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7}   (medians over rounds)")
    for name, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99")}
        failed = sum(r["failed"] for r in runs)
        rounds = " / ".join(f"{r['rps']:.0f}" for r in runs)
        print(f"{name:<42} {med['rps']:>8.0f} {med['p50']:>8.2f} {med['p99']:>8.2f} {failed:>7.0f}   req/s per round: {rounds}")
    peer = next((runs for name, runs in results.items() if name.startswith("mlflow")), None)
    if peer is not None:
        for name, runs in results.items():
            if not name.startswith("mlflow"):
                ratios = [r["rps"] / p["rps"] for r, p in zip(runs, peer, strict=True)]
                print(f"ratio {name} / mlflow per round: " + " / ".join(f"{x:.2f}" for x in ratios)
                      + f"  (median {statistics.median(ratios):.2f})")
    print("load average (1 min) at the start of each round: " + " / ".join(f"{x:.1f}" for x in loads)
          + f"; {os.cpu_count()} cores; one server process each (uvicorn, 1 worker: MLflow's default too)")
    print(f"predictions answered {answered}, logged {int(log['ok'].sum())} (log rows {len(log)})")
    print(f"breach injected -> routing stopped {breach['to_halt_s']:.2f} s, alias rolled back {breach['to_rollback_s']:.2f} s, "
          f"failed client requests {breach['failed_requests']:.0f}")


if __name__ == "__main__":
    main()
