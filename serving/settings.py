"""Settings of the serving package, read from `VERACLAIM_*` environment variables.

An explicit argument wins over the environment, and the environment over the defaults.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_model_cache() -> Path:
    """Return the folder that contains converted models: `$XDG_CACHE_HOME/veraclaim/models`.

    Without XDG_CACHE_HOME the folder is `~/.cache/veraclaim/models`.
    """
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "veraclaim" / "models"


class ServingSettings(BaseSettings):
    """Settings of the model server connection and of the local model cache."""

    # NOTE: no `env_file` here. With extra="forbid", pydantic-settings rejects every
    # VERACLAIM_* key of a shared `.env` file that another package owns, so the CLIs load
    # `.env` into the environment instead.
    model_config = SettingsConfigDict(env_prefix="VERACLAIM_", extra="forbid")

    model_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible base URL of the model server, e.g. http://host:8080/v1. "
        "None means the local engine that `veraclaim-serve local` starts.",
    )
    model_id: str | None = Field(
        default=None,
        description="Model id sent as `model` in each request. TGI ignores it, and "
        "`transformers serve` needs the id that its /v1/models lists.",
    )
    model_api_key: SecretStr | None = Field(default=None, description="Bearer token for the model server.")
    model_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Seconds to wait for the connection and for each streamed chunk.",
    )
    model_cache: Path = Field(
        default_factory=default_model_cache,
        description="Folder that contains the converted local model.",
    )

    @field_validator("model_base_url", "model_id")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        # An exported but empty variable (VERACLAIM_MODEL_BASE_URL=) means "not set".
        if value is None or not value.strip():
            return None
        return value.strip()

    @field_validator("model_base_url")
    @classmethod
    def _check_url_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"model_base_url must start with http:// or https://, got {value!r}")
        return value

    @field_validator("model_cache")
    @classmethod
    def _expand_user(cls, value: Path) -> Path:
        return value.expanduser()
