"""Probe a model server's `/health` route, once or until it is ready.

TGI, vLLM and `transformers serve` answer `GET /health` with 200 once they can generate, and
TGI answers 503 while it loads the model. Behind RunPod's proxy, a pod whose server is not
listening yet returns 502. The route sits at the server's root, not under `/v1`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx2
from huggingface_hub.utils import get_session

from serving.errors import ModelServerTimeout
from serving.hub_offline import allow_model_server

logger = logging.getLogger(__name__)

# Seconds that one probe may take. A server that cannot respond to /health this fast is
# busy enough to count as not ready.
PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class HealthProbe:
    """The result of one `GET /health`: its status, or None and the reason when no response came."""

    url: str
    status_code: int | None
    detail: str
    elapsed_s: float

    @property
    def ready(self) -> bool:
        return self.status_code == 200

    def describe(self) -> str:
        return f"HTTP {self.status_code}" if self.status_code is not None else self.detail


def root_url(base_url: str) -> str:
    """Return the server's root URL: `base_url` without a trailing `/v1`."""
    base = base_url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def probe_health(base_url: str, *, timeout: float = PROBE_TIMEOUT_S, api_key: str | None = None) -> HealthProbe:
    """Send one `GET /health` to the server of `base_url` and return what happened."""
    url = f"{root_url(base_url)}/health"
    allow_model_server(url)
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    started = time.monotonic()
    try:
        response = get_session().get(url, headers=headers, timeout=timeout)
    except httpx2.HTTPError as error:
        return HealthProbe(url, None, f"{type(error).__name__}: {error}", time.monotonic() - started)
    return HealthProbe(url, response.status_code, response.reason_phrase, time.monotonic() - started)


def wait_until_healthy(
    base_url: str,
    *,
    timeout: float,
    interval: float = 5.0,
    api_key: str | None = None,
    on_progress: Callable[[HealthProbe, float], None] | None = None,
) -> HealthProbe:
    """Poll `/health` until it returns 200, and return that probe.

    `on_progress(probe, elapsed_s)` runs after every probe that is not ready, so a CLI can
    show that the server is still starting. Raises `ModelServerTimeout` after `timeout` s.
    """
    if timeout <= 0 or interval <= 0:
        raise ValueError(f"timeout and interval must be positive seconds, got {timeout!r} and {interval!r}")

    started = time.monotonic()
    attempts = 0
    while True:
        remaining = timeout - (time.monotonic() - started)
        probe = probe_health(base_url, timeout=max(0.1, min(PROBE_TIMEOUT_S, remaining)), api_key=api_key)
        attempts += 1
        elapsed = time.monotonic() - started
        if probe.ready:
            logger.info("%s is ready after %.1f s (%d probes)", probe.url, elapsed, attempts)
            return probe

        logger.info("%s is not ready after %.1f s: %s (probe %d)", probe.url, elapsed, probe.describe(), attempts)
        if on_progress is not None:
            on_progress(probe, elapsed)
        remaining = timeout - (time.monotonic() - started)
        if remaining <= 0:
            raise ModelServerTimeout(
                f"model server at {root_url(base_url)} was not ready after {timeout:g} s "
                f"(last GET /health: {probe.describe()}): check the pod's log, or wait longer with a larger timeout",
                base_url=base_url,
                status_code=probe.status_code,
            )
        time.sleep(min(interval, remaining))
