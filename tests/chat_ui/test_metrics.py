"""Prometheus metrics: counted from the real pipeline's final updates and scraped over HTTP.

The pipeline runs on the real index of two sample PDFs with the fake TGI server; the chat
app is launched on 127.0.0.1 and its `ask` endpoint is called through gradio_client.
"""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from chat_ui.answer import AnswerUpdate
from chat_ui.metrics import MAX_ERROR_TYPES, ChatMetrics
from chat_ui.ops_settings import OpsSettings
from chat_ui.server import metrics_served
from chat_ui.settings import ChatSettings

QUESTION = "특허출원은 언제 공개되나요?"
TOKEN = "scrape-token-1234"


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    """Map (sample name, sorted labels) to value for every sample of a scrape."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _final(**fields) -> AnswerUpdate:
    return AnswerUpdate(conversation_id="c", question=QUESTION, language="ko", **fields)


def test_observe_counts_one_final_update():
    metrics = ChatMetrics()

    metrics.observe(
        _final(
            status="ok",
            retrieval_ms=30.0,
            first_token_ms=400.0,
            latency_ms=2500.0,
            input_tokens=900,
            output_tokens=120,
        )
    )
    samples = _samples(metrics.render().decode())

    assert samples[("veraclaim_answers_total", (("status", "ok"),))] == 1
    assert samples[("veraclaim_first_token_seconds_count", ())] == 1
    assert samples[("veraclaim_first_token_seconds_sum", ())] == pytest.approx(0.4)
    assert samples[("veraclaim_first_token_seconds_bucket", (("le", "0.5"),))] == 1
    assert samples[("veraclaim_first_token_seconds_bucket", (("le", "0.25"),))] == 0
    assert samples[("veraclaim_answer_latency_seconds_sum", ())] == pytest.approx(2.5)
    assert samples[("veraclaim_retrieval_seconds_sum", ())] == pytest.approx(0.03)
    assert samples[("veraclaim_input_tokens_total", ())] == 900
    assert samples[("veraclaim_output_tokens_total", ())] == 120


def test_missing_timings_are_not_observed():
    metrics = ChatMetrics()

    metrics.observe(_final(status="no_answer", retrieval_ms=12.0, latency_ms=15.0))
    samples = _samples(metrics.render().decode())

    assert samples[("veraclaim_answers_total", (("status", "no_answer"),))] == 1
    assert samples[("veraclaim_first_token_seconds_count", ())] == 0
    assert samples[("veraclaim_input_tokens_total", ())] == 0


def test_error_types_are_capped():
    metrics = ChatMetrics()

    for number in range(MAX_ERROR_TYPES + 5):
        metrics.observe(_final(status="error", latency_ms=1.0, error_type=f"Error{number}"))
    samples = _samples(metrics.render().decode())

    error_labels = {labels for name, labels in samples if name == "veraclaim_answer_errors_total"}
    assert len(error_labels) == MAX_ERROR_TYPES + 1
    assert samples[("veraclaim_answer_errors_total", (("error_type", "other"),))] == 5


def test_two_instances_keep_separate_counts():
    first, second = ChatMetrics(), ChatMetrics()

    first.observe(_final(status="ok", latency_ms=1.0))

    assert ("veraclaim_answers_total", (("status", "ok"),)) not in _samples(second.render().decode())


@pytest.mark.parametrize(
    ("host", "share", "fields", "expected"),
    [
        ("127.0.0.1", False, {}, True),  # loopback, no token: a local scraper
        ("::1", False, {}, True),  # IPv6 loopback
        ("0.0.0.0", False, {}, False),  # every interface needs a token
        ("chat.internal", False, {}, False),  # a host name may resolve anywhere
        ("127.0.0.1", True, {}, False),  # share traffic arrives from 127.0.0.1 too
        ("0.0.0.0", True, {"metrics_token": SecretStr(TOKEN)}, True),  # the token protects it
        ("127.0.0.1", False, {"metrics_enabled": False}, False),  # switched off
    ],
)
def test_metrics_served_only_where_safe(host, share, fields, expected):
    settings = ChatSettings(host=host)

    assert metrics_served(settings, OpsSettings(**fields), share=share) is expected


# ---------------------------------------------------------------------------------------
# The launched app


@pytest.fixture
def serve(launch_chat_app):
    """A function that starts the chat app with the given OpsSettings fields and returns its URL."""

    def start(**ops_fields) -> str:
        return launch_chat_app(OpsSettings(**ops_fields)).url

    return start


def test_scrape_after_questions_through_the_app(serve, fake_tgi):
    from gradio_client import Client

    url = serve()
    fake_tgi.queue(deltas=["출원일부터 ", "1년 6개월 후 공개됩니다 [1]."])
    fake_tgi.queue(deltas=["부분"], error_event={"error": "CUDA out of memory", "error_type": "generation"})
    client = Client(url, verbose=False)

    answer, _sources, _conversation = client.predict(QUESTION, "", api_name="/ask")
    assert "1년 6개월" in answer
    client.predict(QUESTION, "", api_name="/ask")

    with httpx.Client(base_url=url, trust_env=False, timeout=30) as http:
        response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    assert samples[("veraclaim_answers_total", (("status", "ok"),))] == 1
    assert samples[("veraclaim_answers_total", (("status", "error"),))] == 1
    assert sum(value for (name, _), value in samples.items() if name == "veraclaim_answer_errors_total") == 1
    assert samples[("veraclaim_first_token_seconds_count", ())] == 2
    assert samples[("veraclaim_answer_latency_seconds_count", ())] == 2
    assert samples[("veraclaim_retrieval_seconds_count", ())] == 2
    assert samples[("veraclaim_input_tokens_total", ())] > 0
    assert samples[("veraclaim_output_tokens_total", ())] > 0
    assert ("process_cpu_seconds_total", ()) in samples


def test_metrics_token_is_required_when_set(serve):
    url = serve(metrics_token=SecretStr(TOKEN))

    with httpx.Client(base_url=url, trust_env=False, timeout=30) as http:
        missing = http.get("/metrics")
        wrong = http.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
        right = http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert TOKEN not in missing.text
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert "veraclaim_answer_latency_seconds" in right.text


def test_metrics_off_when_disabled(serve):
    url = serve(metrics_enabled=False)

    with httpx.Client(base_url=url, trust_env=False, timeout=30) as http:
        assert http.get("/metrics").status_code == 404
