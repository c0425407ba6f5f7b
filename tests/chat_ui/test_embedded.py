"""The embedded default's settings: concurrency matched to the local engine, retries as `serve`."""

from __future__ import annotations

from chat_ui.embedded import LOCAL_ENGINE_CONCURRENCY, match_local_engine
from chat_ui.service import ModelEndpoint
from chat_ui.settings import ChatSettings
from serving.settings import ServingSettings


def test_local_engine_limits_concurrency(monkeypatch):
    monkeypatch.delenv("VERACLAIM_CONCURRENCY_LIMIT", raising=False)

    settings = match_local_engine(ChatSettings())

    assert settings.concurrency_limit == LOCAL_ENGINE_CONCURRENCY
    assert ChatSettings().concurrency_limit == 8  # the default elsewhere stays


def test_operator_limit_wins_over_engine(monkeypatch):
    monkeypatch.setenv("VERACLAIM_CONCURRENCY_LIMIT", "12")

    settings = match_local_engine(ChatSettings())

    assert settings.concurrency_limit == 12


def test_local_model_gets_the_configured_retries_and_timeouts(monkeypatch):
    # `embedded` builds its endpoint this way. Without retries, a refused local connection
    # would fail at once, without the reconnecting status.
    monkeypatch.setenv("VERACLAIM_MODEL_RETRY_DEADLINE_S", "12")
    monkeypatch.setenv("VERACLAIM_MODEL_STALL_TIMEOUT_S", "40")

    endpoint = ModelEndpoint.from_settings(ServingSettings(), "http://127.0.0.1:1/v1", "local-model")

    assert endpoint.retry.deadline_s == 12
    assert endpoint.stall_timeout_s == 40
    assert endpoint.timeout_s == ServingSettings().model_timeout_s
    assert endpoint.api_key is None


def test_default_local_endpoint_retries(monkeypatch):
    monkeypatch.delenv("VERACLAIM_MODEL_RETRY_DEADLINE_S", raising=False)

    endpoint = ModelEndpoint.from_settings(ServingSettings(), "http://127.0.0.1:1/v1", "local-model")

    assert endpoint.retry.deadline_s > 0
