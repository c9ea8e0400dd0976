"""Prometheus metrics of a server (``GET /metrics``), through the ``prometheus_client`` library.

Per model version and arm: requests, rows, errors (the model raised), and a latency histogram of
the model call in seconds. Each server has its own registry, so tests can run several servers in
one process.
"""

from __future__ import annotations

from typing import Any

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServeMetrics:
    """The counters and histogram of one server."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        labels = ("model", "version", "arm")
        self.requests = Counter("nbtk_requests", "Scoring calls answered per model version and arm", labels, registry=self.registry)
        self.rows = Counter("nbtk_rows", "Rows scored per model version and arm", labels, registry=self.registry)
        self.errors = Counter("nbtk_errors", "Scoring calls where the model raised", labels, registry=self.registry)
        self.bad_requests = Counter("nbtk_bad_requests", "Requests refused with 400 (bad input)", registry=self.registry)
        self.latency = Histogram(
            "nbtk_latency_seconds", "Model call latency per model version and arm", labels,
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.canary_share = Gauge("nbtk_canary_percent", "Share of keys routed to the challenger (percent)", registry=self.registry)

    def observe(self, model: str, version: str, arm: str, *, rows: int, seconds: float, ok: bool) -> None:
        """Record one model call."""
        self.requests.labels(model, version, arm).inc()
        if ok:
            self.rows.labels(model, version, arm).inc(rows)
            self.latency.labels(model, version, arm).observe(seconds)
        else:
            self.errors.labels(model, version, arm).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        from prometheus_client import generate_latest

        out: Any = generate_latest(self.registry)
        return bytes(out)
