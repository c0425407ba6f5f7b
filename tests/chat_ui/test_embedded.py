"""The embedded default's settings: concurrency matched to the local engine."""

from __future__ import annotations

from chat_ui.embedded import LOCAL_ENGINE_CONCURRENCY, match_local_engine
from chat_ui.settings import ChatSettings


def test_local_engine_limits_concurrency(monkeypatch):
    monkeypatch.delenv("VERACLAIM_CONCURRENCY_LIMIT", raising=False)

    settings = match_local_engine(ChatSettings())

    assert settings.concurrency_limit == LOCAL_ENGINE_CONCURRENCY
    assert ChatSettings().concurrency_limit == 8  # the default elsewhere stays


def test_operator_limit_wins_over_engine(monkeypatch):
    monkeypatch.setenv("VERACLAIM_CONCURRENCY_LIMIT", "12")

    settings = match_local_engine(ChatSettings())

    assert settings.concurrency_limit == 12
