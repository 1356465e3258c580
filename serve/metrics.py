"""Prometheus metrics of one server: requests, latency, decode batch sizes, errors (own registry per app)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class ServeMetrics:
    """The server's counters; `render()` gives the Prometheus text exposition."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "shadow_serve_requests",
            "HTTP requests by endpoint and status",
            ["endpoint", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "shadow_serve_request_seconds",
            "time from request to response for POST /v1/command",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_rows = Histogram(
            "shadow_serve_batch_rows",
            "commands decoded together per decoder call",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "shadow_serve_errors", "failed or refused requests by kind", ["kind"], registry=r
        )
        self.routes = Counter("shadow_serve_decisions", "commands answered, by route", ["route"], registry=r)
        self.in_flight = Gauge(
            "shadow_serve_in_flight", "POST /v1/command requests being handled", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
