"""Prometheus metrics of the inference service and the ASGI middleware that feeds them.

Metrics live in a registry of their own app (several apps may live in one process, e.g. in
tests); with several uvicorn workers ``/metrics`` merges every worker through
``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from permeability.scoring.decisions import APPROVE, REJECT, RETEST


class InferenceMetrics:
    """Prometheus metrics in a registry of this app (several apps may live in one process).

    With several uvicorn workers set ``PROMETHEUS_MULTIPROC_DIR`` to a shared empty folder
    and ``/metrics`` aggregates every worker (prometheus_client's multiprocess mode).
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "permeability_inference_requests",
            "HTTP requests by endpoint and status code.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "permeability_inference_request_seconds",
            "Request latency by endpoint.",
            ["endpoint"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0),
            registry=self.registry,
        )
        self.predictions = Counter(
            "permeability_inference_predictions",
            "Predictions made, by decision ('none' when no limit applied).",
            ["decision"],
            registry=self.registry,
        )
        self.load_errors = Counter(
            "permeability_inference_model_load_errors",
            "Versions that failed to load (missing or corrupt files).",
            ["version"],
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, int], Any] = {}
        self._latency_children: dict[str, Any] = {}
        self._decision_children = {
            d: self.predictions.labels(d) for d in (APPROVE, REJECT, RETEST, "none")
        }

    def observe(self, endpoint: str, status_code: int, seconds: float) -> None:
        """About a microsecond: label children are looked up once and kept."""
        key = (endpoint, status_code)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self.requests.labels(endpoint, str(status_code))
        counter.inc()
        histogram = self._latency_children.get(endpoint)
        if histogram is None:
            histogram = self._latency_children[endpoint] = self.latency.labels(endpoint)
        histogram.observe(seconds)

    def count_decision(self, decision: str | None, amount: int = 1) -> None:
        if amount:
            self._decision_children[decision or "none"].inc(amount)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import CollectorRegistry, multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


_ENDPOINTS: Final = frozenset(
    {
        "/inference",
        "/inference/batch",
        "/health",
        "/ready",
        "/versions",
        "/specs",
        "/metrics",
        "/monitoring",
    }
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class MetricsMiddleware:
    """Counts every HTTP answer (422s and 404s included) with its latency; pure ASGI, so it
    adds microseconds, not the tens a ``BaseHTTPMiddleware`` costs."""

    def __init__(self, app: ASGIApp, metrics: InferenceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = [500]

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                code[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            path = scope.get("path", "")
            endpoint = path if path in _ENDPOINTS else "other"
            self.metrics.observe(endpoint, code[0], time.perf_counter() - started)
