"""The server's prediction-log writer: a background thread that writes rows to the store in batches.

Request handlers only append rows to an in-memory queue; the writer thread takes up to
``batch_rows`` rows (or whatever arrived within ``interval`` seconds) and writes them in one
transaction, so logging costs a request almost nothing.

Durability: :meth:`PredictionWriter.close` (called on a clean shutdown: SIGINT, SIGTERM) writes
everything still queued before the server exits, so nothing is lost. A ``kill -9`` loses the rows
still in memory: at most the last batch (rows answered during the last ``interval`` seconds,
0.2 s by default, and never more than ``batch_rows`` per batch in flight).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger("nbtoolkit.serve")

_STOP = object()


class PredictionWriter:
    """Batched, thread-safe writer of prediction-log rows.

    Args:
        store: the store (its ``log_predictions`` is called from the writer thread).
        batch_rows: most rows per transaction.
        interval: longest a row waits in memory before it is written (seconds).
    """

    def __init__(self, store: Any, *, batch_rows: int = 2000, interval: float = 0.2) -> None:
        self.store = store
        self.batch_rows = batch_rows
        self.interval = interval
        self.written = 0
        self.failed = 0
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._loop, name="nbtk-predlog", daemon=True)
        self._thread.start()

    def add(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Queue rows for writing (never blocks on the database)."""
        if not rows:
            return
        with self._lock:
            self._pending += len(rows)
        self._queue.put(rows)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every row queued so far is written; ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float = 60.0) -> None:
        """Write everything queued, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _loop(self) -> None:
        stop = False
        while not stop:
            batch: list[Mapping[str, Any]] = []
            try:
                item = self._queue.get(timeout=self.interval)
            except queue.Empty:
                continue
            deadline = time.monotonic() + self.interval
            while True:
                if item is _STOP:
                    stop = True
                else:
                    batch.extend(item)
                if stop or len(batch) >= self.batch_rows:
                    break
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list[Mapping[str, Any]]) -> None:
        if not batch:
            return
        try:
            self.written += self.store.log_predictions(batch)
        except Exception as exc:  # noqa: BLE001 - the writer thread must outlive any failure: count it, keep serving
            self.failed += len(batch)
            log.error("prediction log: %d rows not written: %s", len(batch), exc)
        finally:
            with self._idle:
                self._pending -= len(batch)
                self._idle.notify_all()
