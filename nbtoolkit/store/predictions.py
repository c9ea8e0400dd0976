"""Named store operations of the serving loop: the prediction log, feedback labels, comments.

The prediction log has one row per answered (or failed) row of a request to ``nbtk serve``.
:meth:`PredictionLog.prediction_log` returns it as a pandas frame whose columns are the shared
contract between the server (writer) and monitoring (reader)::

    request_id row_id key model version arm ts latency_ms ok error input_hash inputs
    prediction score proba label label_ts

Labels arrive later through :meth:`PredictionLog.add_feedback`: by ``row_id`` first, else by
``key`` (every row of that key that has no label yet). Late labels are allowed.

Comments attach a reviewer's text and an optional 1-5 rating to a run, a model version or an
experiment.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Connection

from nbtoolkit import _json
from nbtoolkit._format import iso
from nbtoolkit.errors import InputError
from nbtoolkit.store import schema as S

if TYPE_CHECKING:
    import pandas as pd

#: Columns of :meth:`PredictionLog.prediction_log`, in order (the shared contract).
LOG_COLUMNS = (
    "request_id", "row_id", "key", "model", "version", "arm", "ts", "latency_ms", "ok", "error",
    "input_hash", "inputs", "prediction", "score", "proba", "label", "label_ts",
)
_JSON_COLUMNS = ("inputs", "prediction", "proba", "label")
COMMENT_KINDS = ("run", "version", "experiment")


@dataclass(frozen=True)
class Comment:
    """A reviewer's comment (and optional 1-5 rating) on a run, a model version or an experiment."""

    id: int
    target_kind: str
    target: str
    by: str
    text: str
    rating: int | None
    created: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "target_kind": self.target_kind, "target": self.target, "by": self.by,
                "text": self.text, "rating": self.rating, "created": iso(self.created)}


def _dumps(value: Any) -> str | None:
    return None if value is None else _json.dumps(value)


class PredictionLog:
    """Mixin of :class:`~nbtoolkit.store.Store`: prediction log, feedback and comments."""

    # provided by Store: transactions (``fn(conn)`` in a read / write transaction) and redaction
    _write: Callable[[Callable[[Connection], Any]], Any]
    _read: Callable[[Callable[[Connection], Any]], Any]
    _redact_text: Callable[[str | None], str | None]

    # ------------------------------------------------------------------ prediction log
    def log_predictions(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Append rows to the prediction log in one transaction.

        Args:
            rows: mappings with the keys of :data:`LOG_COLUMNS` (``label``/``label_ts`` optional).
                ``inputs`` must already be stripped of sensitive columns; ``error`` is redacted here.

        Returns:
            The number of rows written.
        """
        if not rows:
            return 0
        records = [
            {
                "request_id": str(r["request_id"]), "row_id": str(r["row_id"]),
                "key": None if r.get("key") is None else str(r["key"]), "model": str(r["model"]),
                "version": str(r["version"]), "arm": str(r["arm"]), "ts": float(r["ts"]),
                "latency_ms": float(r["latency_ms"]), "ok": int(bool(r["ok"])),
                "error": self._redact_text(r.get("error")), "input_hash": str(r["input_hash"]),
                "inputs": _dumps(r.get("inputs")), "prediction": _dumps(r.get("prediction")),
                "score": None if r.get("score") is None else float(r["score"]), "proba": _dumps(r.get("proba")),
                "label": _dumps(r.get("label")), "label_ts": r.get("label_ts"),
            }
            for r in rows
        ]
        self._write(lambda conn: conn.execute(insert(S.predictions), records))
        return len(records)

    def prediction_log(
        self, model: str, *, version: str | None = None, since: float | None = None, until: float | None = None
    ) -> pd.DataFrame:
        """The prediction log of ``model`` as a frame with the columns of :data:`LOG_COLUMNS`.

        Args:
            model: registry model name.
            version: only rows answered by this version.
            since: only rows with ``ts >= since`` (unix time).
            until: only rows with ``ts < until``.

        Returns:
            One row per logged row, oldest first; JSON columns decoded, ``ok`` as bool.
        """
        import pandas as pd

        P = S.predictions
        cond = [P.c.model == model]
        if version is not None:
            cond.append(P.c.version == version)
        if since is not None:
            cond.append(P.c.ts >= since)
        if until is not None:
            cond.append(P.c.ts < until)
        q = select(*(P.c[name] for name in LOG_COLUMNS)).where(and_(*cond)).order_by(P.c.ts, P.c.id)
        rows = self._read(lambda conn: conn.execute(q).all())
        frame = pd.DataFrame([tuple(r) for r in rows], columns=list(LOG_COLUMNS))
        for name in _JSON_COLUMNS:
            frame[name] = pd.Series([_json.loads(v, None) if isinstance(v, str) else None for v in frame[name]],
                                    index=frame.index, dtype=object)
        frame["ok"] = frame["ok"].astype(bool)
        for name in ("score", "label_ts"):
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
        return frame

    def add_feedback(self, model: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Join outcomes to the prediction log.

        Args:
            model: registry model name.
            rows: ``{"row_id": ..., "label": ..., "ts": ...}`` or ``{"key": ..., "label": ...}``;
                a ``row_id`` labels that row (late labels replace none-yet and earlier labels);
                a ``key`` labels every row of that key that has no label yet. ``ts`` defaults to now.

        Returns:
            The number of log rows labelled.

        Raises:
            InputError: a row has neither ``row_id`` nor ``key``, or no ``label``.
        """
        now = time.time()
        updates: list[tuple[str, str, str, float]] = []
        for i, r in enumerate(rows):
            if "label" not in r or r["label"] is None:
                raise InputError(f"feedback row {i} has no label; give each row a label value.")
            raw_ts = r.get("ts")
            ts = now if raw_ts is None else float(raw_ts)
            label = _json.dumps(r["label"])
            if r.get("row_id") is not None:
                updates.append(("row_id", str(r["row_id"]), label, ts))
            elif r.get("key") is not None:
                updates.append(("key", str(r["key"]), label, ts))
            else:
                raise InputError(f"feedback row {i} has neither row_id nor key; join outcomes by one of them.")
        P = S.predictions

        def run(conn: Connection) -> int:
            total = 0
            for by, value, label, ts in updates:
                cond = and_(P.c.model == model, P.c[by] == value)
                if by == "key":
                    cond = and_(cond, P.c.label.is_(None))
                total += conn.execute(update(P).where(cond).values(label=label, label_ts=ts)).rowcount or 0
            return total

        return int(self._write(run))

    # ------------------------------------------------------------------ comments
    def add_comment(self, target_kind: str, target: str, *, by: str, text: str, rating: int | None = None) -> Comment:
        """Store a comment on a run (id), a version (``MODEL@VERSION``) or an experiment (name).

        Raises:
            InputError: unknown kind, empty ``by``/``text``, or a rating outside 1-5.
        """
        if target_kind not in COMMENT_KINDS:
            raise InputError(f"comment target kind {target_kind!r} is not one of {', '.join(COMMENT_KINDS)}.")
        if not by.strip() or not text.strip():
            raise InputError("a comment needs --by NAME and a non-empty --text.")
        if rating is not None and not 1 <= int(rating) <= 5:
            raise InputError(f"rating {rating} is outside 1-5; rate from 1 (poor) to 5 (excellent).")
        created = time.time()
        clean = self._redact_text(text.strip()) or ""
        who, stars = by.strip(), None if rating is None else int(rating)
        row = {"target_kind": target_kind, "target": target, "by": who, "text": clean, "rating": stars, "created": created}
        def run(conn: Connection) -> int:
            key = conn.execute(insert(S.comments).values(**row)).inserted_primary_key
            return int(key[0]) if key is not None else 0

        new_id = self._write(run)
        return Comment(int(new_id), target_kind, target, who, clean, stars, created)

    def comments(self, target_kind: str, target: str) -> list[Comment]:
        """Comments on one target, oldest first."""
        C = S.comments
        q = select(C).where(and_(C.c.target_kind == target_kind, C.c.target == target)).order_by(C.c.created, C.c.id)
        rows = self._read(lambda conn: conn.execute(q).all())
        return [Comment(r.id, r.target_kind, r.target, r.by, r.text, r.rating, r.created) for r in rows]
