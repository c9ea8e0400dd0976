"""The models a server answers with: resolve a reference, verify and load its bundle, call it.

A reference is ``MODEL@ALIAS`` (follows alias moves), ``MODEL@VERSION`` or a bundle path. Every
bundle goes through :func:`nbtoolkit.export.load.load_bundle`, which verifies every hash before
anything is deserialised and trusts only library classes unless told otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbtoolkit import registry
from nbtoolkit.errors import InputError
from nbtoolkit.export.load import Bundle, load_bundle


@dataclass(frozen=True)
class ModelRef:
    """Where a served model comes from.

    Attributes:
        text: the reference as given.
        model: registry model name (from the bundle's manifest for a path).
        alias: the alias followed, or ``None`` for a fixed version or a path.
    """

    text: str
    model: str | None
    alias: str | None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """``MODEL@ALIAS``, ``MODEL@VERSION`` or an existing bundle path."""
        if Path(text).exists():
            return cls(text, None, None)
        model, sep, tail = text.rpartition("@")
        if not sep or not model or not tail:
            raise InputError(f"{text!r} is neither a bundle path nor MODEL@ALIAS / MODEL@VERSION (e.g. churn@production).")
        return cls(text, model, tail)


@dataclass
class Outputs:
    """What a model answered for a batch: labels (or numbers) and probabilities when it has them."""

    predictions: list[Any]
    scores: list[float | None]
    probas: list[list[float] | None]
    latency_ms: float


@dataclass
class ServedModel:
    """A verified, loaded bundle that answers requests."""

    bundle: Bundle
    ref: ModelRef
    path: str

    @property
    def model(self) -> str:
        return self.bundle.name

    @property
    def version(self) -> str:
        return self.bundle.version

    @property
    def signature(self) -> dict[str, Any]:
        return self.bundle.signature

    def call(self, frame: Any) -> Outputs:
        """Call the model on a frame already checked against the signature.

        Classifiers with ``predict_proba`` are called once: the label is the most probable class
        (``classes_``), the score the positive-class probability of a binary classifier.
        """
        import numpy as np

        inner = self.bundle.model
        t0 = time.perf_counter()
        if callable(getattr(inner, "predict_proba", None)):
            proba = np.asarray(inner.predict_proba(frame), dtype=float)
            latency = (time.perf_counter() - t0) * 1000
            classes = getattr(inner, "classes_", None)
            idx = np.argmax(proba, axis=1)
            labels = np.asarray(classes)[idx] if classes is not None else idx
            binary = proba.ndim == 2 and proba.shape[1] == 2
            scores: list[float | None] = [float(s) for s in proba[:, 1]] if binary else [None] * len(labels)
            probas: list[list[float] | None] = [None] * len(labels) if binary else [list(map(float, p)) for p in proba]
            return Outputs([v.item() if hasattr(v, "item") else v for v in labels], scores, probas, latency)
        out = np.asarray(inner.predict(frame))
        latency = (time.perf_counter() - t0) * 1000
        return Outputs([v.item() if hasattr(v, "item") else v for v in out], [None] * len(out), [None] * len(out), latency)


def resolve_path(ref: ModelRef, *, store: Any) -> str:
    """The bundle path a reference points at now (an alias is looked up in the registry)."""
    if ref.model is None:
        return str(Path(ref.text).resolve())
    return registry.resolve(ref.text, store=store).path


def current_version(ref: ModelRef, *, store: Any) -> str | None:
    """The version an alias reference points to now (``None`` for paths and fixed versions)."""
    if ref.model is None or ref.alias is None:
        return None
    return registry.current(ref.model, ref.alias, store=store)


def load_served(ref: ModelRef, *, store: Any, trusted_types: Sequence[str] = ()) -> ServedModel:
    """Resolve, verify and load a model for serving.

    Raises:
        InputError: unknown model, alias or version.
        BundleIntegrityError: the bundle does not verify, or holds types nobody trusted.
    """
    path = resolve_path(ref, store=store)
    bundle = load_bundle(path, trusted_types=list(trusted_types))
    return ServedModel(bundle, ref, path)
