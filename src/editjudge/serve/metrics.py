"""The service's Prometheus metrics (``GET /metrics``), kept by the ingress for every judge replica."""

from __future__ import annotations

from collections import OrderedDict

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: N811

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ServiceMetrics:
    """Requests, items, dynamic batch sizes, latency and errors by kind, in a registry of their own."""

    def __init__(self, remember_batches: int = 4096) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "editjudge_requests", "HTTP requests by route and status code", ["route", "code"], registry=self.registry
        )
        self.items = Counter(
            "editjudge_items", "items answered, by outcome (ok, unparsed, input_error, backend_error)", ["outcome"],
            registry=self.registry,
        )
        self.errors = Counter("editjudge_errors", "refusals and failures by reason", ["reason"], registry=self.registry)
        self.batch_size = Histogram(
            "editjudge_batch_size", "items per dynamic batch sent to a judge replica", buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "editjudge_request_seconds", "request latency in seconds", ["route"], buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge("editjudge_in_flight_requests", "requests being answered", registry=self.registry)
        self._seen: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._remember = remember_batches

    def observe_batch(self, replica: str, seq: int, size: int) -> None:
        """Count a replica's batch once, however many of its items this ingress sees."""
        key = (replica, seq)
        if key in self._seen:
            return
        self._seen[key] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        self.batch_size.observe(size)

    def item_outcome(self, error: str | None, score: int | None) -> None:
        if score is not None:
            outcome = "ok"
        elif error and error.startswith(("input_error", "backend_error")):
            outcome = error.split(":", 1)[0]
        else:
            outcome = "unparsed"
        self.items.labels(outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["ServiceMetrics", "CONTENT_TYPE"]
