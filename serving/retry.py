"""When and how long the client waits before it sends a failed request again.

A request is retried only while the model server is unavailable: connection refused or
dropped, HTTP 429, 502 or 503, or TGI's `overloaded` error event. It is retried only before
the first token reached the caller, so a retry never repeats text that the caller showed.
Retries stop at a deadline counted from the first attempt.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

from serving.errors import ModelServerError, ModelServerUnavailable, ModelStreamError

ServerCondition = Literal["starting", "overloaded", "unreachable", "unavailable"]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by a deadline.

    The n-th wait (n from 1) is drawn uniformly from [d/2, d], where
    d = min(max_delay_s, initial_delay_s * 2 ** (n - 1)). Drawing it at random spreads the
    retries of many chat replicas after one shared outage. `deadline_s=0` disables retries.
    """

    deadline_s: float = 30.0
    initial_delay_s: float = 0.5
    max_delay_s: float = 8.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.deadline_s < 0:
            raise ValueError(f"deadline_s must be 0 or more seconds, got {self.deadline_s!r}")
        if self.initial_delay_s <= 0 or self.max_delay_s < self.initial_delay_s:
            raise ValueError(
                f"delays must satisfy 0 < initial_delay_s <= max_delay_s, "
                f"got {self.initial_delay_s!r} and {self.max_delay_s!r}"
            )

    def delay(self, retry: int) -> float:
        """Return the seconds to wait before retry number `retry` (1 for the first retry)."""
        if retry < 1:
            raise ValueError(f"retry numbers start at 1, got {retry!r}")
        ceiling = min(self.max_delay_s, self.initial_delay_s * 2 ** (retry - 1))
        return self.rng.uniform(ceiling / 2, ceiling)


NO_RETRY = RetryPolicy(deadline_s=0)


def is_retryable(error: ModelServerError) -> bool:
    """Return True for failures that a later attempt can fix: the server is unavailable."""
    if isinstance(error, ModelServerUnavailable):
        return True
    # TGI streams "Model is overloaded" as an error event when its queue is full.
    return isinstance(error, ModelStreamError) and error.error_type == "overloaded"


def condition_of(error: ModelServerError, health_status: int | None) -> ServerCondition:
    """Describe why the server is unavailable, from the failure and a `/health` probe.

    `health_status` is the HTTP status of `GET /health`, or None when the probe got no
    response. TGI returns 503 on /health until its model is ready, and RunPod's proxy
    returns 502 while the pod's port is not listening yet.
    """
    if error.status_code == 429 or (isinstance(error, ModelStreamError) and error.error_type == "overloaded"):
        return "overloaded"
    if health_status in (502, 503, 404):
        return "starting"
    if health_status is None:
        return "unreachable"
    return "unavailable"
