"""The scoring service behind ``nbtk serve``: answer a request, route it, log it, count it.

This module knows nothing about HTTP frameworks: :mod:`nbtoolkit.serve.app` adapts it to
Starlette. A challenger that raises never fails a request: its rows are answered again by the
champion, and the failed attempt is logged (``ok = False``, arm ``challenger``) next to the
champion's answer (``ok = True``), so answered rows are the log rows with ``ok``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nbtoolkit._version import __version__
from nbtoolkit.export.load import check_input
from nbtoolkit.serve.metrics import ServeMetrics
from nbtoolkit.serve.models import Outputs, ServedModel
from nbtoolkit.serve.predlog import PredictionWriter
from nbtoolkit.serve.protocol import BadRequest, ScoringRequest, input_hash, parse_request
from nbtoolkit.serve.routing import CanaryRouter

CHAMPION, CHALLENGER = "champion", "challenger"


class ModelFailed(Exception):
    """The champion raised: the request cannot be answered (HTTP 500)."""


@dataclass
class ServiceOptions:
    """How a service logs and routes.

    Attributes:
        key_column: routing key column of the requests (else the ``ids``).
        log_inputs: store each row's inputs in the log (sensitive columns dropped).
        sensitive: column names never stored (besides names that look secret).
    """

    key_column: str | None = None
    log_inputs: bool = False
    sensitive: Sequence[str] = field(default_factory=tuple)


@dataclass
class _Answer:
    rows: list[int]
    model: ServedModel
    arm: str
    outputs: Outputs | None
    error: str | None = None


class ScoringService:
    """Answers scoring requests with a champion (and a routed challenger), logging every row.

    Args:
        champion: the model that answers by default.
        challenger: the canary model, or ``None``.
        router: the canary routing state (with a challenger).
        store: the store the log is written to.
        options: logging and routing options.
        redactor: scrubs secrets from logged inputs and errors.
    """

    def __init__(
        self, champion: ServedModel, *, challenger: ServedModel | None = None, router: CanaryRouter | None = None,
        store: Any, options: ServiceOptions | None = None, redactor: Any = None,
    ) -> None:
        self.champion = champion
        self.challenger = challenger
        self.router = router
        self.store = store
        self.options = options or ServiceOptions()
        self.redactor = redactor
        self.metrics = ServeMetrics()
        self.writer = PredictionWriter(store)
        self.events: list[dict[str, Any]] = []  # alias moves, reloads, rollbacks seen by the controller
        self._sensitive = {c.lower() for c in self.options.sensitive}
        self._dropped: dict[tuple[str, ...], frozenset[str]] = {}  # column names -> columns never logged

    # ------------------------------------------------------------------ scoring
    def score(self, body: bytes, content_type: str) -> tuple[dict[str, Any], list[str]]:
        """Answer one ``/invocations`` request.

        Returns:
            ``(response body, versions that answered)``.

        Raises:
            BadRequest: the request does not parse or does not match the signature (400).
            ModelFailed: the champion raised (500).
        """
        champion, challenger, router = self.champion, self.challenger, self.router
        try:
            req = parse_request(body, content_type, champion.signature, key_column=self.options.key_column)
        except BadRequest:
            self.metrics.bad_requests.inc()
            raise
        routed = router.route(req.keys, req.row_ids) if challenger is not None and router is not None else [False] * req.rows
        answers: list[_Answer] = []
        to_champion = [i for i, r in enumerate(routed) if not r]
        to_challenger = [i for i, r in enumerate(routed) if r]
        if to_challenger and challenger is not None and router is not None:
            answer = self._call(challenger, CHALLENGER, req, to_challenger)
            router.record(rows=len(to_challenger), ok=answer.outputs is not None,
                          latency_ms=answer.outputs.latency_ms / len(to_challenger) if answer.outputs else 0.0)
            answers.append(answer)
            if answer.outputs is None:  # the champion answers these rows too: no request fails
                to_champion = sorted(to_champion + to_challenger)
        if to_champion:
            answer = self._call(champion, CHAMPION, req, to_champion)
            answers.append(answer)
        self.writer.add(self._log_rows(req, answers))
        failed = next((a for a in answers if a.arm == CHAMPION and a.outputs is None), None)
        if failed is not None:
            raise ModelFailed(failed.error or "the model raised")
        return self._response(req, answers)

    def _call(self, served: ServedModel, arm: str, req: ScoringRequest, rows: list[int]) -> _Answer:
        frame = _take(req.frame, rows)
        t0 = time.perf_counter()
        try:
            if arm == CHALLENGER and served.signature != req.signature:
                frame = check_input(frame, served.signature) if served.signature.get("kind") == "dataframe" else frame
            outputs = served.call(frame)
        except Exception as exc:  # noqa: BLE001 - any model failure is recorded, never raised here
            self.metrics.observe(served.model, served.version, arm, rows=len(rows), seconds=time.perf_counter() - t0, ok=False)
            return _Answer(rows, served, arm, None, f"{type(exc).__name__}: {exc}")
        self.metrics.observe(served.model, served.version, arm, rows=len(rows), seconds=outputs.latency_ms / 1000, ok=True)
        return _Answer(rows, served, arm, outputs)

    def _response(self, req: ScoringRequest, answers: list[_Answer]) -> tuple[dict[str, Any], list[str]]:
        predictions: list[Any] = [None] * req.rows
        versions: list[str] = [""] * req.rows
        for a in answers:
            if a.outputs is None:
                continue
            for j, i in enumerate(a.rows):
                predictions[i] = a.outputs.predictions[j]
                versions[i] = a.model.version
        answered = sorted(set(versions))
        body = {"predictions": predictions, "model": self.champion.model, "version": ",".join(answered),
                "versions": versions, "request_id": req.request_id}
        return body, answered

    # ------------------------------------------------------------------ logging
    def _log_rows(self, req: ScoringRequest, answers: list[_Answer]) -> list[dict[str, Any]]:
        now = time.time()
        out: list[tuple[int, int, dict[str, Any]]] = []  # (row, attempt, log row): request order
        for n, a in enumerate(answers):
            per_row = a.outputs.latency_ms / len(a.rows) if a.outputs is not None else 0.0
            for j, i in enumerate(a.rows):
                inputs = self._loggable(req.records[i])
                row: dict[str, Any] = {
                    "request_id": req.request_id, "row_id": req.row_ids[i], "key": req.keys[i],
                    "model": a.model.model, "version": a.model.version, "arm": a.arm, "ts": now,
                    "latency_ms": per_row, "ok": a.outputs is not None, "error": a.error,
                    "input_hash": input_hash(inputs), "inputs": inputs if self.options.log_inputs else None,
                    "prediction": None, "score": None, "proba": None,
                }
                if a.outputs is not None:
                    row.update(prediction=a.outputs.predictions[j], score=a.outputs.scores[j], proba=a.outputs.probas[j])
                out.append((i, n, row))
        out.sort(key=lambda t: (t[0], t[1]))
        return [row for _, _, row in out]

    def _loggable(self, record: dict[str, Any]) -> dict[str, Any]:
        """A row's inputs without sensitive columns (configured, or names that look secret).

        String values go through the redactor (a token pasted into a text field is masked).
        """
        red = self.redactor
        names = tuple(record)
        drop = self._dropped.get(names)
        if drop is None:
            drop = self._dropped[names] = frozenset(
                k for k in names if k.lower() in self._sensitive or (red is not None and red.is_secret_name(k)))
        return {k: red.redact_text(v) if red is not None and isinstance(v, str) else v
                for k, v in record.items() if k not in drop}

    # ------------------------------------------------------------------ other endpoints
    def feedback(self, payload: Any) -> int:
        """Join labels: ``{"model"?: NAME, "rows": [{"row_id"|"key", "label", "ts"?}]}`` or a list of rows.

        Raises:
            BadRequest: the body is not rows of labels.
        """
        rows = payload.get("rows") if isinstance(payload, dict) else payload
        model = payload.get("model") if isinstance(payload, dict) and payload.get("model") else self.champion.model
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise BadRequest('feedback must be {"rows": [{"row_id": ..., "label": ...}, ...]} (or "key" instead of "row_id").')
        self.writer.flush()  # rows answered before the feedback are in the log before it joins
        return int(self.store.add_feedback(str(model), rows))

    def health(self) -> dict[str, Any]:
        """What is served, the canary's state and the log writer's counters."""
        out: dict[str, Any] = {
            "status": "ok", "model": self.champion.model, "version": self.champion.version,
            "champion": {"ref": self.champion.ref.text, "version": self.champion.version, "model_calls": self.champion.calls},
            "log": {"written": self.writer.written, "failed": self.writer.failed},
            "events": list(self.events[-20:]),
        }
        if self.challenger is not None:
            out["challenger"] = {"ref": self.challenger.ref.text, "version": self.challenger.version,
                                 "model_calls": self.challenger.calls}
        if self.router is not None:  # also after a promotion: how the canary ended
            out["canary"] = self.router.state()
        return out

    def version_info(self) -> dict[str, Any]:
        versions = {"nbtoolkit": __version__, "model": self.champion.model, "version": self.champion.version}
        if self.challenger is not None:
            versions["challenger"] = self.challenger.version
        return versions

    def close(self) -> None:
        """Write every queued log row (clean shutdown)."""
        self.writer.close()


def _take(frame: Any, rows: list[int]) -> Any:
    if hasattr(frame, "iloc"):
        return frame if len(rows) == len(frame) else frame.iloc[rows]
    return frame[rows]
