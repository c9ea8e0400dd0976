"""The models a server answers with: resolve a reference, verify and load its bundle, call it.

A reference is ``MODEL@ALIAS`` (follows alias moves), ``MODEL@VERSION`` or a bundle path. Every
bundle goes through :func:`nbtoolkit.export.load.load_bundle`, which verifies every hash before
anything is deserialised and trusts only library classes unless told otherwise.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
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
    """A verified, loaded bundle that answers requests.

    Concurrent calls are combined: while the model scores one batch, the frames of the requests
    that arrive meanwhile wait, and the next caller scores all of them in one model call (flat
    combining, as the adaptive batching of BentoML or Ray Serve but without a timer: nothing
    waits longer than the call in progress). A one-row call of a tree ensemble costs as much as
    a call on dozens of rows, so under concurrency this multiplies throughput; a lone request is
    scored at once. A batch whose call raises is scored again request by request, so a failure
    stays with the request that caused it. The latency of a combined call is split over its
    rows: each request's ``latency_ms`` is its rows' share.
    """

    bundle: Bundle
    ref: ModelRef
    path: str
    max_batch_rows: int = 256
    calls: int = field(default=0, init=False)  # model calls made (fewer than requests when combined)
    _pending: list[_Call] = field(default_factory=list, init=False, repr=False)
    _mu: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _running: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

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
        """Score a frame already checked against the signature (combined with concurrent calls).

        Raises:
            Exception: whatever the model raised on this frame.
        """
        mine = _Call(frame)
        with self._mu:
            self._pending.append(mine)
        with self._running:  # one model call at a time; whoever holds it scores everything waiting
            while not mine.done:
                with self._mu:
                    batch: list[_Call] = []
                    rows = 0
                    while self._pending and (not batch or rows + len(self._pending[0].frame) <= self.max_batch_rows):
                        rows += len(self._pending[0].frame)
                        batch.append(self._pending.pop(0))
                self._score(batch)
        if mine.error is not None:
            raise mine.error
        assert mine.outputs is not None
        return mine.outputs

    def _score(self, batch: list[_Call]) -> None:
        try:
            if len(batch) > 1 and self._score_together(batch):
                return
            for c in batch:
                try:
                    c.outputs = self.call_once(c.frame)
                except Exception as exc:  # noqa: BLE001 - raised again in the caller's thread
                    c.error = exc
                c.done = True
        finally:  # whatever escaped (an interrupt), no caller may wait for its frame forever
            for c in batch:
                if not c.done:
                    c.error, c.done = RuntimeError("the model call was interrupted"), True

    def _score_together(self, batch: list[_Call]) -> bool:
        """One model call for every frame of ``batch``; False when it raised (then each is scored alone)."""
        total = sum(len(c.frame) for c in batch)
        try:
            whole = self.call_once(_concat([c.frame for c in batch]))
            if len(whole.predictions) != total:
                raise ValueError(f"the model answered {len(whole.predictions)} rows for {total}")
        except Exception:  # noqa: BLE001 - find the request that fails: score each alone
            return False
        start = 0
        for c in batch:
            n = len(c.frame)
            c.outputs = Outputs(whole.predictions[start:start + n], whole.scores[start:start + n],
                                whole.probas[start:start + n], whole.latency_ms * n / total)
            c.done, start = True, start + n
        return True

    def call_once(self, frame: Any) -> Outputs:
        """Call the model on a frame already checked against the signature (no combining).

        Classifiers with ``predict_proba`` are called once: the label is the most probable class
        (``classes_``), the score the positive-class probability of a binary classifier.
        """
        import numpy as np

        inner = self.bundle.model
        self.calls += 1
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


@dataclass
class _Call:
    """One caller's frame waiting to be scored, and what it got."""

    frame: Any
    outputs: Outputs | None = None
    error: Exception | None = None
    done: bool = False


def _concat(frames: list[Any]) -> Any:
    if hasattr(frames[0], "iloc"):
        import pandas as pd

        return pd.concat(frames, ignore_index=True)
    import numpy as np

    return np.concatenate(frames)


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
