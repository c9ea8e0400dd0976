"""Helpers for the registry and stability tests: demo models, runs, hand-written bundles."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any

from nbtoolkit._io import sha256_file


@functools.lru_cache(maxsize=1)
def demo_models() -> dict[str, Any]:
    """Breast-cancer data with the demo models (scaled logistic regression, small GBM), fitted once."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    train, test = order[:300], order[300:]
    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X.iloc[train], y.iloc[train])
    gb = GradientBoostingClassifier(n_estimators=30, max_depth=2, random_state=0).fit(X.iloc[train], y.iloc[train])
    frame = X.iloc[test].reset_index(drop=True).copy()
    frame["label"] = y.iloc[test].to_numpy()
    frame["uid"] = [f"u{i:04d}" for i in range(len(frame))]
    frame["size"] = np.where(frame["mean radius"] > 15, "large", "small")
    return {"X": X, "y": y, "lr": lr, "gb": gb, "frame": frame}


def make_run(experiment: str = "cancer-gbm", *, roc_auc: float = 0.97, model: Any = None, **metrics: float) -> str:
    """A real finished run (lock captured from the project's git state) with metrics."""
    import nbtoolkit as nbtk

    with nbtk.start_run(experiment, success="roc_auc >= 0.9") as run:
        nbtk.log(roc_auc=roc_auc, **metrics)
        if model is not None:
            nbtk.log_model(model, "model", sample_input=demo_models()["X"].iloc[:3])
    return run.run_id


def write_bundle(folder: Path, model_obj: Any, *, model: str, version: str, run_id: str, release: dict[str, Any] | None = None) -> Path:
    """A minimal bundle in the export stage's format (MANIFEST.json schema nbtoolkit.bundle.v1)."""
    import skops.io as sio

    folder.mkdir(parents=True)
    (folder / "model").mkdir()
    sio.dump(model_obj, folder / "model" / "model.skops")
    (folder / "signature.json").write_text(json.dumps({"kind": "unknown"}), encoding="utf-8")
    if release is not None:
        (folder / "release.json").write_text(json.dumps(release), encoding="utf-8")
    files = []
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        files.append({"path": f.relative_to(folder).as_posix(), "sha256": sha256_file(f), "size": f.stat().st_size})
    manifest = {
        "schema": "nbtoolkit.bundle.v1", "model": model, "version": version, "run_id": run_id, "experiment": "x",
        "created": "2026-01-01T00:00:00+00:00", "nbtoolkit_version": "0", "forced": False, "reason": None,
        "unmet_gates": [], "notes": [],
        "model_file": {"file": "model/model.skops", "serializer": "skops", "class": type(model_obj).__name__},
        "files": files,
    }
    (folder / "MANIFEST.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def register(store: Any, root: Path, model_obj: Any, *, model: str, version: str, run_id: str, release: dict[str, Any] | None = None) -> Path:
    """Write a bundle under ``root`` (outside the git tree) and record it in ``exports`` like the export stage does."""
    from nbtoolkit.store.models import ModelVersion

    path = write_bundle(root / f"{model}-{version}", model_obj, model=model, version=version, run_id=run_id, release=release)
    row = ModelVersion(model, version, run_id, str(path.resolve()), time.time(), sha256_file(path / "MANIFEST.json"))
    assert store.record_export(row)
    return path


def set_config(root: Path, toml: str) -> None:
    """Append TOML to the project's pyproject.toml and commit it (the git tree stays clean)."""
    from conftest import git

    p = root / "pyproject.toml"
    p.write_text(p.read_text(encoding="utf-8") + toml, encoding="utf-8")
    git(root, "commit", "-q", "-am", "config")


def release_gbm_over_logreg(store: Any, folder: Path) -> dict[str, Any]:
    """cancer 1.0.0 (logistic) then 1.0.1 (GBM) registered and promoted to production: 1.0.1 serves."""
    from nbtoolkit.stability.promotion import promote

    m = demo_models()
    r1, r2 = make_run("cancer-logreg", roc_auc=0.96), make_run("cancer-gbm", roc_auc=0.97)
    register(store, folder, m["lr"], model="cancer", version="1.0.0", run_id=r1)
    register(store, folder, m["gb"], model="cancer", version="1.0.1", run_id=r2)
    promote("cancer", "1.0.0", to="production", by="ana", reason="first", store=store)
    promote("cancer", "1.0.1", to="production", by="ana", reason="gbm", store=store)
    return m
