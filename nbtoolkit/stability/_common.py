"""Helpers shared by shadow and canary: model coercion, data loading, bucketing, metrics."""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbtoolkit import registry, stats
from nbtoolkit.errors import InputError
from nbtoolkit.export.load import load_bundle
from nbtoolkit.export.release import DEFAULT_SALT

BUCKETS = 10_000


def bucket(key: Any, *, salt: str = DEFAULT_SALT) -> int:
    """Deterministic bucket in ``[0, 10000)``: ``int(sha256(f"{salt}:{key}")[:8], 16) % 10000``.

    A key is in a ``pct`` % share when ``bucket(key) < pct * 100``; shares grow monotonically,
    so a key routed to the challenger at 5 % stays routed at 25 %.
    """
    return int(hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()[:8], 16) % BUCKETS


def buckets(keys: Sequence[Any], *, salt: str = DEFAULT_SALT) -> Any:
    """:func:`bucket` for many keys, as a NumPy int array."""
    import numpy as np

    sha = hashlib.sha256
    return np.fromiter((int(sha(f"{salt}:{k}".encode()).hexdigest()[:8], 16) % BUCKETS for k in keys), dtype=np.int64, count=len(keys))


def in_share(key: Any, pct: float, *, salt: str = DEFAULT_SALT) -> bool:
    """True when ``key`` falls in the first ``pct`` percent of buckets."""
    return bucket(key, salt=salt) < pct * 100


@dataclass
class ModelHandle:
    """A model to call, with a label for reports and where it came from."""

    obj: Any
    label: str
    source: dict[str, Any]

    def has(self, method: str) -> bool:
        return callable(getattr(self.obj, method, None))


def as_model(model: Any, *, store: Any = None) -> ModelHandle:
    """Accept a model object, a loaded bundle, a bundle path, or a registry ref ``MODEL@ALIAS``."""
    source: dict[str, Any] = {}
    label = type(model).__name__
    if isinstance(model, (str, Path)):
        text = str(model)
        if "@" in text and not Path(text).exists():
            mv = registry.resolve(text, store=store)
            source = {"model": mv.model, "version": mv.version, "run_id": mv.run_id, "path": mv.path}
            label = f"{mv.model}@{mv.version}"
            text = mv.path
        else:
            source = {"path": str(Path(text).resolve())}
            label = Path(text).name
        model = load_bundle(text)
    inner = getattr(model, "model", None)
    if inner is not None and callable(getattr(inner, "predict", None)) and hasattr(model, "manifest"):
        # a loaded Bundle (verified on load): call its model directly so classes_ and
        # feature_names_in_ are visible and the signature check is not timed as model latency
        source.setdefault("bundle", str(getattr(model, "path", "")))
        for attr in ("name", "version", "run_id"):
            with contextlib.suppress(Exception):
                source.setdefault({"name": "model"}.get(attr, attr), str(getattr(model, attr)))
        if label == type(model).__name__:
            label = f"{source.get('model')}@{source.get('version')}"
        model = inner
    if not (callable(getattr(model, "predict", None)) or callable(getattr(model, "predict_proba", None))):
        raise InputError(f"{label} has no predict(); pass a fitted model, a bundle or a bundle path.")
    if not source:
        source = {"class": f"{type(model).__module__}.{type(model).__qualname__}"}
    return ModelHandle(model, label, source)


def load_frame(data: Any) -> Any:
    """A DataFrame from a DataFrame, an array, or a ``.csv`` / ``.parquet`` path."""
    import pandas as pd

    if isinstance(data, (str, Path)):
        p = Path(data)
        if not p.is_file():
            raise InputError(f"{p} does not exist; pass a .csv or .parquet file.")
        if p.suffix.lower() == ".csv":
            return pd.read_csv(p)
        if p.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(p)
        raise InputError(f"{p}: only .csv and .parquet files are read.")
    if isinstance(data, pd.DataFrame):
        return data
    return pd.DataFrame(data)


def column_or_array(frame: Any, value: Any, what: str) -> tuple[Any, str | None]:
    """``(array, column name)`` for a column name or an aligned array (or ``(None, None)``)."""
    import numpy as np

    if value is None:
        return None, None
    if isinstance(value, str):
        if value not in frame.columns:
            raise InputError(f"{what} column {value!r} is not in the data (columns: {', '.join(map(str, frame.columns[:12]))}...).")
        return frame[value].to_numpy(), value
    arr = np.asarray(value)
    if len(arr) != len(frame):
        raise InputError(f"{what} has {len(arr)} entries for {len(frame)} rows; pass an aligned array or a column name.")
    return arr, None


def feature_frame(handle: ModelHandle, frame: Any, drop: Sequence[str]) -> Any:
    """The columns the model was fitted on (``feature_names_in_``), else all but ``drop``."""
    names = getattr(handle.obj, "feature_names_in_", None)
    if names is not None:
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise InputError(f"{handle.label} needs columns missing from the data: {', '.join(map(str, missing[:8]))}.")
        return frame[list(names)]
    keep = [c for c in frame.columns if c not in set(drop)]
    return frame[keep]


def choose_method(method: str, *handles: ModelHandle) -> str:
    if method == "auto":
        return "predict_proba" if all(h.has("predict_proba") for h in handles) else "predict"
    if method not in ("predict", "predict_proba"):
        raise InputError(f"method must be 'auto', 'predict' or 'predict_proba', got {method!r}.")
    return method


def labels_of(handle: ModelHandle, out: Any, method: str) -> Any:
    """Predicted labels from an output (argmax of probabilities mapped to ``classes_``)."""
    import numpy as np

    if method != "predict_proba":
        return np.asarray(out)
    arr = np.asarray(out, dtype=float)
    # two columns: a comparison is ~10x faster than argmax over a length-2 axis (same tie rule)
    idx = (arr[:, 1] > arr[:, 0]).astype(np.intp) if arr.ndim == 2 and arr.shape[1] == 2 else np.argmax(arr, axis=1)
    classes = getattr(handle.obj, "classes_", None)
    return np.asarray(classes)[idx] if classes is not None else idx


def scores_of(out: Any, method: str) -> Any:
    """Positive-class scores for binary probabilities, else ``None``."""
    import numpy as np

    if method != "predict_proba":
        return None
    arr = np.asarray(out, dtype=float)
    return arr[:, 1] if arr.ndim == 2 and arr.shape[1] == 2 else None


def labelled_mask(y: Any) -> Any:
    import numpy as np
    import pandas as pd

    return ~np.asarray(pd.isna(y), dtype=bool)


MetricFn = Callable[[Any, Any, Any], float]


def _comparable(y: Any, pred: Any) -> tuple[Any, Any]:
    """True and predicted labels as arrays that compare element-wise (objects unpacked; mixed
    string and number labels compared as text)."""
    import numpy as np

    a, b = (np.asarray(np.asarray(v).tolist()) if np.asarray(v).dtype == object else np.asarray(v)
            for v in (y, pred))
    if a.dtype.kind != b.dtype.kind and {a.dtype.kind, b.dtype.kind} & {"U", "S"}:
        a, b = a.astype(str), b.astype(str)
    return a, b


def _predictions(spec: stats.MetricSpec, y: Any, pred: Any, score: Any) -> stats.Predictions:
    """What a registry metric reads: values for regression metrics, positive-class scores for
    binary score metrics when the model gave probabilities, predicted labels otherwise."""
    import numpy as np

    if set(spec.impl) == {"regression"}:
        return stats.Predictions(np.asarray(y, dtype=float), np.asarray(pred, dtype=float), task="regression")
    yt, yp = _comparable(y, pred)
    binary = spec.impl.get("binary")
    if score is not None and binary is not None and binary[0] != "labels" and len(np.unique(yt)) <= 2:
        return stats.Predictions(yt, np.asarray(score, dtype=float), task="binary")
    return stats.Predictions(yt, yp)


def _registry_metric(spec: stats.MetricSpec) -> MetricFn:
    """``fn(y_true, y_pred, score)`` computing ``spec`` with the experiments' metric code."""

    def fn(y: Any, pred: Any, score: Any) -> float:
        value = stats.metric_value(_predictions(spec, y, pred, score), spec)
        return math.nan if value is None else value

    fn.__name__ = spec.name
    return fn


def metric_fns(metrics: Sequence[str] | Mapping[str, MetricFn]) -> dict[str, MetricFn]:
    """Metric functions ``fn(y_true, y_pred, score)`` by name.

    Names come from the one metric registry (:mod:`nbtoolkit.stats.metrics`), so shadow and
    canary compute ``accuracy``, ``roc_auc``, ``mae``, ``rmse``... exactly as experiments do;
    a mapping of name to function is used as given.

    Raises:
        InputError: a name is not a registry metric.
    """
    if isinstance(metrics, Mapping):
        return dict(metrics)
    out = {}
    for name in metrics:
        spec = stats.resolve_metric(name)
        if spec is None:
            raise InputError(f"Unknown metric {name!r}; use one of {', '.join(stats.METRICS)} "
                             "or pass {name: fn(y, pred, score)}.")
        out[name] = _registry_metric(spec)
    return out


def compute_metrics(fns: Mapping[str, MetricFn], y: Any, pred: Any, score: Any) -> dict[str, float]:
    """Each metric on the labelled rows; metrics undefined there (one class, no scores) are left out."""
    if y is None or len(y) == 0:
        return {}
    out = {}
    for name, fn in fns.items():
        try:
            value = float(fn(y, pred, score))
        except (ValueError, TypeError):  # e.g. a user metric undefined on this subset
            continue
        if not math.isnan(value):
            out[name] = value
    return out


def latency_stats(ms: Any) -> dict[str, float]:
    """p50/p95/p99/mean (milliseconds) of per-row latencies."""
    import numpy as np

    arr = np.asarray(ms, dtype=float)
    if arr.size == 0:
        return {}
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {"latency_p50_ms": float(p50), "latency_p95_ms": float(p95), "latency_p99_ms": float(p99), "latency_mean_ms": float(arr.mean())}
