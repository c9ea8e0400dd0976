"""Shadow test overhead: ``nbtk.shadow`` vs calling both demo models directly in a plain loop.

100,000 rows resampled (with jitter) from scikit-learn's breast-cancer data; champion = scaled
logistic regression, challenger = gradient boosting (the demo models). Both sides call
``predict_proba`` on the same batches of ``BATCH`` rows; ``nbtk.shadow`` additionally times
every call, compares outputs, slices agreement by a categorical column, computes accuracy and
ROC AUC on the labelled rows, checks the SLA and records a run in a throw-away store.

Usage: ``python benchmarks/bench_shadow.py [--rows N] [--repeat R]``. Prints medians and the ratio.
Target (issue 7): overhead <= 10 %.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

# one BLAS/OpenMP thread: both sides are single-threaded Python loops, and on a small shared
# machine idle BLAS threads spinning add noise larger than the overhead being measured
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def build(rows: int):
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target
    champion = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    challenger = GradientBoostingClassifier(random_state=0).fit(X, y)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(X), rows)
    frame = X.iloc[idx].reset_index(drop=True)
    frame = frame * rng.normal(1.0, 0.02, size=frame.shape)
    frame["label"] = y.to_numpy()[idx]
    frame["size"] = np.where(frame["mean radius"] > 15, "large", "small")
    return champion, challenger, frame


def plain_loop(champion, challenger, frame, batch: int) -> None:
    Xc = frame[champion.feature_names_in_]
    out_c, out_x = [], []
    for start in range(0, len(Xc), batch):
        part = Xc.iloc[start : start + batch]
        out_c.append(champion.predict_proba(part))
        out_x.append(challenger.predict_proba(part))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NBTOOLKIT_STORE"] = os.path.join(tmp, ".nbtoolkit")
        os.chdir(tmp)
        import nbtoolkit as nbtk

        champion, challenger, frame = build(args.rows)
        sla = {"min.roc_auc": 0.9, "max.error_rate": 0.01, "max.latency_p95_ms": 50}
        # warm-up: imports, caches, store creation
        plain_loop(champion, challenger, frame.iloc[:2000], args.batch)
        nbtk.shadow(champion, challenger, frame.iloc[:2000], y="label", slice_by="size", sla=sla, batch_size=args.batch)

        plain, shadow, plain_cpu, shadow_cpu = [], [], [], []
        for _ in range(args.repeat):  # interleaved so drift in machine load hits both sides
            t, c = time.perf_counter(), time.process_time()
            plain_loop(champion, challenger, frame, args.batch)
            plain.append(time.perf_counter() - t)
            plain_cpu.append(time.process_time() - c)
            t, c = time.perf_counter(), time.process_time()
            result = nbtk.shadow(champion, challenger, frame, y="label", slice_by="size", sla=sla, batch_size=args.batch)
            shadow.append(time.perf_counter() - t)
            shadow_cpu.append(time.process_time() - c)
        p, s = statistics.median(plain), statistics.median(shadow)
        pc, sc = statistics.median(plain_cpu), statistics.median(shadow_cpu)
        # each shadow run is paired with the plain loop run just before it: the median of the
        # pair ratios cancels slow drifts in machine load better than a ratio of medians
        paired = statistics.median(b / a for a, b in zip(plain, shadow, strict=True))
        print(f"rows={args.rows} batch={args.batch} repeat={args.repeat} agreement={result.agreement:.4f} sla_ok={result.sla.ok}")
        print(f"{'method':<34}{'median s':>10}{'ratio':>8}")
        print(f"{'plain loop (both models)':<34}{p:>10.3f}{1.0:>8.3f}")
        print(f"{'nbtk.shadow (recorded run)':<34}{s:>10.3f}{s / p:>8.3f}")
        print(f"{'plain loop, CPU time':<34}{pc:>10.3f}{1.0:>8.3f}")
        print(f"{'nbtk.shadow, CPU time':<34}{sc:>10.3f}{sc / pc:>8.3f}")
        print(f"overhead: wall {100 * (s / p - 1):+.1f} % (ratio of medians), {100 * (paired - 1):+.1f} % "
              f"(median of paired ratios); CPU {100 * (sc / pc - 1):+.1f} %; target <= 10 %")


if __name__ == "__main__":
    main()
