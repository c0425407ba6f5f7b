"""Failures against the fake TGI: retries before the first token, a booting pod, stalls, drops.

Every test has a timeout, and every retry policy a deadline of a few seconds at most.
"""

from __future__ import annotations

import random
import socket
import threading
import time

import pytest

from serving.client import ChatClient
from serving.errors import ModelServerRejected, ModelServerTimeout, ModelServerUnavailable, ModelStreamError
from serving.health import wait_until_healthy
from serving.retry import RetryPolicy
from serving.stream import StreamEvent

pytestmark = pytest.mark.timeout(30)

QUESTION = [{"role": "user", "content": "청구항 1을 요약해 주세요."}]


def fast_retry(deadline_s: float = 5.0) -> RetryPolicy:
    # Short waits keep the tests quick, and a seeded generator keeps them repeatable.
    return RetryPolicy(deadline_s=deadline_s, initial_delay_s=0.05, max_delay_s=0.2, rng=random.Random(7))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def collect(client: ChatClient, **options) -> list[StreamEvent]:
    return list(client.stream_events(QUESTION, **options))


def statuses(events: list[StreamEvent]) -> list[StreamEvent]:
    return [event for event in events if event.kind == "status"]


def test_refused_connection_retries_until_deadline() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    client = ChatClient(url, "m", retry=fast_retry(deadline_s=1.0))
    events: list[StreamEvent] = []
    started = time.monotonic()

    with pytest.raises(ModelServerUnavailable) as caught:
        for event in client.stream_events(QUESTION):
            events.append(event)

    elapsed = time.monotonic() - started
    assert 0.5 < elapsed < 3.0
    assert len(statuses(events)) >= 3
    assert all(event.status.condition == "unreachable" for event in statuses(events))
    assert url in str(caught.value)


def test_refused_until_server_listens(unstarted_fake_tgi) -> None:
    port = free_port()
    client = ChatClient(f"http://127.0.0.1:{port}/v1", "Qwen/Qwen3-8B", retry=fast_retry())
    fake = None

    def start_late() -> None:
        nonlocal fake
        fake = unstarted_fake_tgi(port)
        fake.queue(deltas=["늦었지만 ", "답합니다."])
        fake.start()

    # The port stays closed (connection refused) until the timer binds it.
    starter = threading.Timer(0.5, start_late)
    starter.start()
    try:
        events = collect(client)
    finally:
        starter.join()

    assert "".join(event.text for event in events if event.kind == "answer") == "늦었지만 답합니다."
    assert len(statuses(events)) >= 1
    assert statuses(events)[0].status.condition == "unreachable"


def test_503_then_429_then_answer(fake_tgi) -> None:
    fake_tgi.queue(status=503, body="no healthy upstream")
    fake_tgi.queue(status=429, body={"error": "Model is overloaded", "error_type": "overloaded"})
    fake_tgi.queue(deltas=["답변"])
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id, retry=fast_retry())

    stream = client.stream_events(QUESTION)
    events = list(stream)

    assert [event.kind for event in events] == ["status", "status", "answer"]
    assert [event.status.attempt for event in statuses(events)] == [1, 2]
    assert statuses(events)[1].status.condition == "overloaded"
    assert len(fake_tgi.chat_requests()) == 3
    assert stream.result.attempts == 3


def test_booting_pod_is_waited_for(fake_tgi) -> None:
    # While TGI loads the model, /health returns 503. Before that, RunPod's proxy returns 502.
    fake_tgi.health_statuses = [502, 503, 200]
    fake_tgi.queue(status=502, body="Bad Gateway")
    fake_tgi.queue(status=503, body={"error": "unhealthy", "error_type": "healthcheck"})
    fake_tgi.queue(deltas=["ready"])
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id, retry=fast_retry())

    events = collect(client)

    assert [event.status.condition for event in statuses(events)] == ["starting", "starting"]
    assert "starting" in statuses(events)[0].text
    assert events[-1] == StreamEvent("answer", "ready")


def test_overloaded_event_before_first_token_is_retried(fake_tgi) -> None:
    # TGI streams a full queue as an error event inside a 200 response.
    fake_tgi.queue(error_event={"error": "Model is overloaded", "error_type": "overloaded"})
    fake_tgi.queue(deltas=["ok"])
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id, retry=fast_retry())

    events = collect(client)

    assert statuses(events)[0].status.condition == "overloaded"
    assert events[-1] == StreamEvent("answer", "ok")


def test_failure_after_first_token_is_not_retried(fake_tgi) -> None:
    fake_tgi.queue(deltas=["이미 ", "보낸 글"], drop=True)
    fake_tgi.queue(deltas=["never requested"])
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id, retry=fast_retry())

    with pytest.raises(ModelServerUnavailable) as caught:
        collect(client)

    assert caught.value.partial_text == "이미 보낸 글"
    assert len(fake_tgi.chat_requests()) == 1


def test_rejected_request_is_not_retried(fake_tgi) -> None:
    fake_tgi.queue(status=422, body={"error": "Input validation error: bad", "error_type": "validation"})
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id, retry=fast_retry())

    with pytest.raises(ModelServerRejected):
        collect(client)

    assert len(fake_tgi.chat_requests()) == 1


def test_generation_error_event_is_not_retried(fake_tgi) -> None:
    fake_tgi.queue(error_event={"error": "Request failed during generation", "error_type": "generation"})
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id, retry=fast_retry())

    with pytest.raises(ModelStreamError):
        collect(client)

    assert len(fake_tgi.chat_requests()) == 1


def test_stall_with_keepalives_times_out(fake_tgi) -> None:
    # The server stays connected and sends keep-alive comments, but no token.
    fake_tgi.queue(deltas=["first part"], stall_s=5.0, keepalive_s=0.1)
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id, timeout=10, stall_timeout=0.5)
    started = time.monotonic()

    with pytest.raises(ModelServerTimeout) as caught:
        collect(client)

    assert time.monotonic() - started < 2.5
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.partial_text == "first part"
    assert "no token for 0.5 s" in str(caught.value)
    assert "VERACLAIM_MODEL_STALL_TIMEOUT_S" in str(caught.value)


def test_silent_stall_before_first_token_times_out(fake_tgi) -> None:
    fake_tgi.queue(deltas=[], stall_s=5.0)
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id, timeout=10, stall_timeout=0.5)
    started = time.monotonic()

    with pytest.raises(ModelServerTimeout) as caught:
        collect(client)

    assert time.monotonic() - started < 2.5
    assert caught.value.partial_text == ""


def test_stall_is_not_retried(fake_tgi) -> None:
    fake_tgi.queue(deltas=[], stall_s=3.0)
    fake_tgi.queue(deltas=["never requested"])
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id, stall_timeout=0.3, retry=fast_retry())

    with pytest.raises(ModelServerTimeout):
        collect(client)

    assert len(fake_tgi.chat_requests()) == 1


def test_wait_until_healthy_reports_progress(fake_tgi) -> None:
    fake_tgi.health_statuses = [502, 503, 503, 200]
    seen: list[str] = []

    probe = wait_until_healthy(
        fake_tgi.base_url, timeout=5, interval=0.05, on_progress=lambda probe, _: seen.append(probe.describe())
    )

    assert probe.ready
    assert seen == ["HTTP 502", "HTTP 503", "HTTP 503"]
    assert probe.url == f"{fake_tgi.root_url}/health"


def test_wait_until_healthy_times_out(fake_tgi) -> None:
    fake_tgi.health_statuses = [503]

    with pytest.raises(ModelServerTimeout) as caught:
        wait_until_healthy(fake_tgi.base_url, timeout=0.3, interval=0.05)

    assert "HTTP 503" in str(caught.value)
    assert isinstance(caught.value, TimeoutError)


# Each row: retry number, and the bounds of its wait for initial 0.5 s and maximum 8 s.
DELAY_CASES = [
    # The first wait is drawn from [0.25, 0.5].
    (1, 0.25, 0.5),
    # Doubling: the third is drawn from [1, 2].
    (3, 1.0, 2.0),
    # Capped at the maximum from the sixth on: 0.5 * 2**5 = 16 > 8.
    (6, 4.0, 8.0),
    (20, 4.0, 8.0),
]


@pytest.mark.parametrize(("retry", "low", "high"), DELAY_CASES)
def test_backoff_delay_bounds(retry: int, low: float, high: float) -> None:
    policy = RetryPolicy(deadline_s=60, initial_delay_s=0.5, max_delay_s=8.0, rng=random.Random(retry))

    delays = [policy.delay(retry) for _ in range(200)]

    assert min(delays) >= low
    assert max(delays) <= high
    # Jitter: the waits differ from each other.
    assert len(set(delays)) > 100


def test_invalid_retry_policy_is_rejected() -> None:
    with pytest.raises(ValueError, match="initial_delay_s"):
        RetryPolicy(initial_delay_s=2.0, max_delay_s=1.0)
