"""The server's prediction-log writer: a background thread that writes rows to the store in batches.

Request handlers only append rows to an in-memory buffer; every ``interval`` seconds the writer
thread takes what the buffer holds and writes it in transactions of at most ``batch_rows`` rows,
so logging costs a request almost nothing.

Durability: :meth:`PredictionWriter.close` (called on a clean shutdown: SIGINT, SIGTERM) writes
everything still queued before the server exits, so nothing is lost. A ``kill -9`` loses the rows
still in memory: the rows answered since the last write began (``interval`` seconds, 0.2 s by
default, plus the time that write takes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger("nbtoolkit.serve")


class PredictionWriter:
    """Batched, thread-safe writer of prediction-log rows.

    Request handlers append to an in-memory buffer without waking anything (a queue that woke
    the writer thread on every request cost each request a thread switch); the writer thread
    wakes every ``interval`` seconds, or at once on :meth:`flush` / :meth:`close`, and writes
    what the buffer holds in transactions of at most ``batch_rows`` rows.

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
        self._buffer: list[Mapping[str, Any]] = []
        self._pending = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="nbtk-predlog", daemon=True)
        self._thread.start()

    def add(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Queue rows for writing (never blocks on the database, never wakes the writer)."""
        if not rows:
            return
        with self._lock:
            self._buffer.extend(rows)
            self._pending += len(rows)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every row queued so far is written; ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._idle:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float = 60.0) -> None:
        """Write everything queued, then stop the thread."""
        with self._lock:
            self._stop = True
        self._wake.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._lock:
                batch, self._buffer, stop = self._buffer, [], self._stop
            for start in range(0, len(batch), self.batch_rows):
                self._write(batch[start:start + self.batch_rows])
            if stop:
                return

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
