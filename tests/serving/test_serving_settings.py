"""ServingSettings: defaults, VERACLAIM_* environment variables, and their validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from serving.settings import ServingSettings

SETTING_VARIABLES = [
    "VERACLAIM_MODEL_BASE_URL",
    "VERACLAIM_MODEL_ID",
    "VERACLAIM_MODEL_API_KEY",
    "VERACLAIM_MODEL_TIMEOUT_S",
    "VERACLAIM_MODEL_CACHE",
    "VERACLAIM_MODEL_STALL_TIMEOUT_S",
    "VERACLAIM_MODEL_RETRY_DEADLINE_S",
    "VERACLAIM_MODEL_MAX_INPUT_TOKENS",
    "VERACLAIM_MODEL_MAX_TOTAL_TOKENS",
    "VERACLAIM_MODEL_TOKENIZER",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in SETTING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_defaults_select_local_engine(tmp_path: Path) -> None:
    settings = ServingSettings()

    assert settings.model_base_url is None
    assert settings.model_id is None
    assert settings.model_api_key is None
    assert settings.model_timeout_s == 60.0
    assert settings.model_cache == tmp_path / "home" / ".cache" / "veraclaim" / "models"


def test_environment_sets_every_field(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VERACLAIM_MODEL_BASE_URL", "https://abc123-8080.proxy.runpod.net/v1")
    monkeypatch.setenv("VERACLAIM_MODEL_ID", "Qwen/Qwen3-8B")
    monkeypatch.setenv("VERACLAIM_MODEL_API_KEY", "rp_secret")
    monkeypatch.setenv("VERACLAIM_MODEL_TIMEOUT_S", "12.5")
    monkeypatch.setenv("VERACLAIM_MODEL_CACHE", str(tmp_path / "models"))

    settings = ServingSettings()

    assert settings.model_base_url == "https://abc123-8080.proxy.runpod.net/v1"
    assert settings.model_id == "Qwen/Qwen3-8B"
    assert settings.model_api_key.get_secret_value() == "rp_secret"
    assert settings.model_timeout_s == 12.5
    assert settings.model_cache == tmp_path / "models"


def test_argument_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERACLAIM_MODEL_ID", "from-environment")

    assert ServingSettings(model_id="from-argument").model_id == "from-argument"


def test_api_key_hidden_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERACLAIM_MODEL_API_KEY", "rp_secret")

    assert "rp_secret" not in repr(ServingSettings())


def test_xdg_cache_home_moves_model_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))

    assert ServingSettings().model_cache == tmp_path / "xdg" / "veraclaim" / "models"


def test_tilde_in_model_cache_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VERACLAIM_MODEL_CACHE", "~/models")

    assert ServingSettings().model_cache == tmp_path / "home" / "models"


def test_blank_variables_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERACLAIM_MODEL_BASE_URL", "")
    monkeypatch.setenv("VERACLAIM_MODEL_ID", "  ")

    settings = ServingSettings()

    assert settings.model_base_url is None
    assert settings.model_id is None


# Each row: a field and a value that validation must reject.
INVALID_VALUES = [
    # No scheme: the client would take it for a Hub model id.
    ("model_base_url", "127.0.0.1:8000/v1"),
    # A zero timeout would fail every request at once.
    ("model_timeout_s", 0),
    # Negative seconds make no sense either.
    ("model_timeout_s", -1),
    # A zero stall timeout would abandon every stream.
    ("model_stall_timeout_s", 0),
    # A negative retry deadline.
    ("model_retry_deadline_s", -1),
    # A token limit of zero.
    ("model_max_input_tokens", 0),
]


@pytest.mark.parametrize(("field", "value"), INVALID_VALUES)
def test_invalid_value_rejected(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        ServingSettings(**{field: value})


def test_unknown_argument_rejected() -> None:
    with pytest.raises(ValidationError, match="model_url"):
        ServingSettings(model_url="http://127.0.0.1:8000/v1")


def test_token_limits_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERACLAIM_MODEL_MAX_INPUT_TOKENS", "6144")
    monkeypatch.setenv("VERACLAIM_MODEL_MAX_TOTAL_TOKENS", "8192")

    limits = ServingSettings().token_limits()

    assert (limits.max_input_tokens, limits.max_total_tokens) == (6144, 8192)
    assert limits.source == "settings"


def test_token_limits_unset_by_default() -> None:
    assert ServingSettings().token_limits() is None


# Each row: token limit settings that must be rejected together, and the message part.
INVALID_LIMITS = [
    # Only one of the two limits.
    ({"model_max_input_tokens": 1000}, "set both"),
    # Input above total.
    ({"model_max_input_tokens": 9000, "model_max_total_tokens": 8192}, "must not exceed"),
]


@pytest.mark.parametrize(("values", "message"), INVALID_LIMITS)
def test_invalid_token_limits_rejected(values: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ServingSettings(**values)


def test_retry_and_stall_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERACLAIM_MODEL_RETRY_DEADLINE_S", "0")
    monkeypatch.setenv("VERACLAIM_MODEL_STALL_TIMEOUT_S", "20")

    settings = ServingSettings()

    assert settings.retry_policy().deadline_s == 0
    assert settings.model_stall_timeout_s == 20
