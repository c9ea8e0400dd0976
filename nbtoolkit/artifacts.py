"""Files and objects recorded with the active run: artifacts, figures, models, predictions, data.

Each function stores its bytes in the content-addressed artifact store and records a reference
with the run (see :mod:`nbtoolkit.tracking` for the run itself).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path, PurePosixPath
from typing import Any

from nbtoolkit.errors import ArtifactLinkError, InputError
from nbtoolkit.stats.predictions import check_predictions
from nbtoolkit.tracking import NbToolkitWarning, _require, check_name


def check_artifact_name(name: str) -> str:
    """Validate an artifact name: a relative POSIX path without ``..``, control characters or ``\\``."""
    check_name(name, "Artifact")
    p = PurePosixPath(name)
    if p.is_absolute() or "\\" in name or any(part in ("..", "") for part in name.split("/")) or name.startswith("."):
        raise InputError(
            f"Artifact name {name!r} is not a safe relative path; use names like 'model' or "
            "'plots/roc.png' (no leading '/', '.', '..' or backslashes)."
        )
    return name


def files_within(folder: Path) -> list[tuple[Path, str]]:
    """Every regular file under ``folder`` as ``(path, relative POSIX name)``, sorted.

    Symbolic links are followed only while they stay inside ``folder`` (checked on real paths);
    a link out of bounds raises :class:`ArtifactLinkError` before anything is stored. Links
    looping back to a folder already being walked are not walked twice.

    Raises:
        ArtifactLinkError: a link (to a file or folder) resolves outside ``folder``.
    """
    bound = folder.resolve()
    found: list[tuple[Path, str]] = []

    def walk(current: Path, prefix: str, seen: frozenset[Path]) -> None:
        for entry in sorted(os.scandir(current), key=lambda e: e.name):
            path = Path(entry.path)
            real = path.resolve()
            if entry.is_symlink() and not real.is_relative_to(bound):
                raise ArtifactLinkError(str(path), str(real), str(folder))
            name = f"{prefix}{entry.name}"
            if entry.is_dir():
                if real not in seen:
                    walk(path, f"{name}/", seen | {real})
            elif entry.is_file():
                found.append((path, name))

    walk(folder, "", frozenset({bound}))
    return found


def log_artifact(path: str | Path, name: str | None = None, *, kind: str = "artifact") -> None:
    """Copy a file (or every file of a folder) into the store as artifacts of the active run.

    Every blob is stored (streamed, content-addressed, several files at once) before any row
    references it: if one file fails, no row is recorded for the call.

    Like ``mlflow.log_artifact`` it returns None, so a call ending a cell prints nothing; the
    references are on the run (``nbtk.get_run(id).artifacts``).

    Raises:
        ArtifactLinkError: the folder holds a symbolic link pointing outside it (refused,
            nothing is recorded).
        DiskFullError: the artifact location ran out of space (nothing is recorded for that file).
    """
    from nbtoolkit.store import ArtifactRef

    run = _require("log_artifact")
    source = Path(path)
    if not source.exists():
        raise InputError(f"log_artifact: {source} does not exist; pass an existing file or folder.")
    base = check_artifact_name(name or source.name)
    files = [(source, "")] if source.is_file() else files_within(source)
    stored = run.store.put_artifact_files([f for f, _ in files])  # every blob before any row
    run.store.add_artifacts(  # one transaction: the folder's rows all land or none do
        run.run_id,
        [
            ArtifactRef(f"{base}/{relative}" if relative else base, kind, digest, size)
            for (_, relative), (digest, size) in zip(files, stored, strict=True)
        ],
    )


def log_figure(figure: Any, name: str, *, dpi: int = 100) -> None:
    """Store a matplotlib figure as a PNG artifact (shown in reports); returns None like every ``log_*``."""
    run = _require("log_figure")
    check_artifact_name(name)
    if not hasattr(figure, "savefig"):
        raise InputError(f"log_figure needs a matplotlib Figure, got {type(figure).__name__}.")
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    digest, size = run.store.artifacts.put_bytes(buf.getvalue())
    art = name if name.endswith(".png") else f"{name}.png"
    run.store.add_artifact(run.run_id, name=art, kind="figure", digest=digest, size=size, media_type="image/png")


def log_model(model: Any, name: str = "model", *, sample_input: Any = None, serializer: str = "skops") -> None:
    """Serialise a model into the store (skops by default); returns None, so a cell ending with it prints nothing.

    Args:
        model: the fitted model.
        name: artifact name.
        sample_input: a few input rows; their signature (columns and dtypes, or shape and dtype)
            is recorded for the handoff and checked by ``bundle.predict``.
        serializer: ``"skops"`` (safe), or ``"joblib"`` / ``"pickle"`` (recorded as unsafe).
    """
    import tempfile

    from nbtoolkit.serializers import SERIALIZERS
    from nbtoolkit.signature import infer_signature

    run = _require("log_model")
    check_artifact_name(name)
    ser = SERIALIZERS.get(serializer)
    meta: dict[str, Any] = {"serializer": ser.name, "safe": ser.safe, "class": f"{type(model).__module__}.{type(model).__qualname__}"}
    if sample_input is not None:
        meta["signature"] = infer_signature(sample_input)
    if not ser.safe:
        warnings.warn(
            f"log_model: {ser.name} runs code when loaded; the model is recorded as unsafe and "
            "loading it will need trust=True.",
            NbToolkitWarning,
            stacklevel=2,
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name.replace('/', '_')}{ser.suffix}"
        ser.dump(model, path)
        digest, size = run.store.artifacts.put_file(path)
    meta["filename"] = path.name
    run.store.add_artifact(run.run_id, name=name, kind="model", digest=digest, size=size, meta=meta)


def log_predictions(
    y_true: Any, y_pred_or_score: Any, *, ids: Any = None, groups: Any = None,
    name: str = "predictions", task: str | None = None, labels: Any = None,
) -> None:
    """Record per-example labels and predictions for per-task metrics and confidence intervals.

    Binary, multiclass and regression outputs are supported; the task is inferred from the data
    or declared with ``task``. Everything is checked here, so a report never crashes later.
    Returns None, like every ``log_*`` call, so a cell ending with it prints nothing.

    Args:
        y_true: true labels or values, one per example.
        y_pred_or_score: predicted labels; scores or probabilities of the positive class; the
            ``(n, k)`` matrix of ``model.predict_proba(X)``; or regression values.
        ids: example ids (default: positions); runs compared on the same ids get paired intervals.
        groups: a group label per example, for per-group metrics.
        name: artifact name.
        task: ``"binary"``, ``"multiclass"`` or ``"regression"`` (default: inferred).
        labels: the class of each probability column (``model.classes_``) when the columns are
            not simply ``0..k-1`` or the sorted true labels.

    Raises:
        InputError: shapes disagree, labels or predictions hold NaN, probability rows do not sum
            to 1, ids are duplicated, or the declared task contradicts the data.
    """
    import numpy as np

    run = _require("log_predictions")
    check_artifact_name(name)
    pred = check_predictions(y_true, y_pred_or_score, task=task, labels=labels)
    n = len(pred)
    arrays: dict[str, Any] = {"y_true": pred.y_true, "y_pred": pred.y_pred, "task": np.array(pred.task)}
    if pred.labels is not None:
        arrays["labels"] = np.asarray(pred.labels)
    if ids is not None:
        id_arr = np.asarray(ids).astype(str)
        if id_arr.ndim != 1 or len(id_arr) != n:
            raise InputError(f"log_predictions: ids has {len(id_arr)} entries for {n} rows.")
        if len(np.unique(id_arr)) != n:
            raise InputError("log_predictions: ids must be unique (one per example); "
                             f"{n - len(np.unique(id_arr))} are repeated.")
        arrays["ids"] = id_arr
    if groups is not None:
        g = np.asarray(groups).astype(str)
        if g.ndim != 1 or len(g) != n:
            raise InputError(f"log_predictions: groups has {len(g)} entries for {n} rows.")
        arrays["groups"] = g
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    digest, size = run.store.artifacts.put_bytes(buf.getvalue())
    run.store.add_artifact(
        run.run_id,
        name=name,
        kind="predictions",
        digest=digest,
        size=size,
        media_type="application/x-npz",
        meta={"rows": n, "has_ids": ids is not None, "has_groups": groups is not None,
              "scores": pred.has_scores, "task": pred.task,
              "classes": len(pred.classes) if pred.task != "regression" else None},
    )


def track_data(path: str | Path) -> Any:
    """Hash a data file or folder (sha256) and record its version with the active run."""
    from nbtoolkit._io import sha256_file
    from nbtoolkit.store import DataRef

    run = _require("track_data")
    p = Path(path)
    if not p.exists():
        raise InputError(f"track_data: {p} does not exist; pass the data file or folder the run reads.")
    if p.is_file():
        digest, size = sha256_file(p), p.stat().st_size
    else:
        import hashlib

        h = hashlib.sha256()
        size = 0
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
            h.update(f.relative_to(p).as_posix().encode() + b"\0" + sha256_file(f).encode() + b"\n")
            size += f.stat().st_size
        digest = h.hexdigest()
    with contextlib.suppress(ValueError):
        p = p.resolve().relative_to(run.settings.root)
    ref = DataRef(p.as_posix(), "track_data", digest, "sha256", size)
    run.store.add_datasets(run.run_id, [ref])
    return ref
