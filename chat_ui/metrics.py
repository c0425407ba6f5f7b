"""Prometheus metrics of the answer pipeline, and the /metrics route that serves them.

`ChatMetrics` keeps its own CollectorRegistry, so two servers in one process (or two tests)
never share counters. The pipeline calls `ChatMetrics.observe` once with the final update of
every question that passed input validation. Times are exported in seconds, the Prometheus
base unit; the pipeline measures them in milliseconds.

NOTE: there is no gauge of questions in progress, because the pipeline reports only
finished questions to its observers.
"""

from __future__ import annotations

import hmac
import itertools
import logging
import threading
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

logger = logging.getLogger(__name__)

# Bucket bounds in seconds. A first token takes about 0.2 s on the local model and several
# seconds on a cold GPU pod; a whole answer streams for up to the client's 120 s timeout.
FIRST_TOKEN_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
LATENCY_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
RETRIEVAL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# error_type comes from exception class names and TGI's error events. Past this many
# distinct values, new ones count as "other", so a misbehaving server cannot grow the
# series without bound.
MAX_ERROR_TYPES = 50


class ChatMetrics:
    """Counters and histograms of answered questions, fed by `observe`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.answers = Counter(
            "veraclaim_answers",
            "Questions answered, by final status (ok, no_answer, error, interrupted).",
            ["status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "veraclaim_answer_errors",
            "Failed answers, by error type.",
            ["error_type"],
            registry=self.registry,
        )
        self.first_token = Histogram(
            "veraclaim_first_token_seconds",
            "Time from receiving the question to the first streamed token.",
            buckets=FIRST_TOKEN_BUCKETS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "veraclaim_answer_latency_seconds",
            "Time from receiving the question to the end of the answer.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.retrieval = Histogram(
            "veraclaim_retrieval_seconds",
            "Time to search, rerank and expand the context of one question.",
            buckets=RETRIEVAL_BUCKETS,
            registry=self.registry,
        )
        self.input_tokens = Counter(
            "veraclaim_input_tokens", "Prompt tokens sent to the model.", registry=self.registry
        )
        self.output_tokens = Counter(
            "veraclaim_output_tokens", "Tokens the model generated.", registry=self.registry
        )
        ProcessCollector(registry=self.registry)
        self._error_types: set[str] = set()
        self._lock = threading.Lock()

    def observe(self, update: Any) -> None:
        """Count the final `AnswerUpdate` of one question."""
        self.answers.labels(status=update.status).inc()
        if update.status == "error":
            self.errors.labels(error_type=self._error_label(update.error_type)).inc()

        for histogram, milliseconds in (
            (self.first_token, update.first_token_ms),
            (self.latency, update.latency_ms),
            (self.retrieval, update.retrieval_ms),
        ):
            if milliseconds is not None:
                histogram.observe(milliseconds / 1000.0)

        if update.input_tokens:
            self.input_tokens.inc(update.input_tokens)
        if update.output_tokens:
            self.output_tokens.inc(update.output_tokens)

    def render(self) -> bytes:
        """Return the metrics in Prometheus' text exposition format."""
        return generate_latest(self.registry)

    def _error_label(self, error_type: str | None) -> str:
        label = (error_type or "unknown")[:64]
        with self._lock:
            if label in self._error_types:
                return label
            if len(self._error_types) >= MAX_ERROR_TYPES:
                return "other"
            self._error_types.add(label)
        return label


def metrics_route(metrics: ChatMetrics, token: str | None) -> Route:
    """Return the GET /metrics route; with `token`, it requires `Authorization: Bearer <token>`."""
    expected = None if token is None else f"Bearer {token}".encode("utf-8")
    rejected = itertools.count(1)

    def serve_metrics(request: Request) -> Response:
        if expected is not None:
            presented = request.headers.get("authorization", "").encode("utf-8")
            if not hmac.compare_digest(presented, expected):
                count = next(rejected)
                # The first rejection and then every 100th, so a scanner cannot flood the log.
                if count == 1 or count % 100 == 0:
                    logger.warning(
                        "rejected /metrics request %d (from %s): missing or wrong bearer token",
                        count,
                        _client(request),
                    )
                return PlainTextResponse(
                    "Missing or wrong bearer token (VERACLAIM_METRICS_TOKEN).\n",
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", serve_metrics, methods=["GET"])


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown client"
