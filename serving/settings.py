"""Settings of the serving package, read from `VERACLAIM_*` environment variables.

An explicit argument wins over the environment, and the environment over the defaults.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from serving.budget import TokenLimits
from serving.retry import RetryPolicy


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
    model_stall_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="Seconds without a new token after which a stream is abandoned. None means model_timeout_s.",
    )
    model_retry_deadline_s: float = Field(
        default=30.0,
        ge=0,
        description="Seconds to keep retrying an unavailable server (refused, 429, 502, 503) before the first "
        "token. 0 disables retries.",
    )
    model_max_input_tokens: int | None = Field(
        default=None,
        gt=0,
        description="Input token limit of a server without TGI's /info, such as `transformers serve`.",
    )
    model_max_total_tokens: int | None = Field(
        default=None,
        gt=0,
        description="Input plus new token limit of a server without TGI's /info.",
    )
    model_tokenizer: Path | None = Field(
        default=None,
        description="Local model folder whose tokenizer counts prompt tokens for a server without "
        "TGI's /chat_tokenize. None uses /chat_tokenize.",
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

    @field_validator("model_cache", "model_tokenizer")
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @model_validator(mode="after")
    def _check_token_limits(self) -> ServingSettings:
        input_limit, total_limit = self.model_max_input_tokens, self.model_max_total_tokens
        if (input_limit is None) != (total_limit is None):
            raise ValueError(
                "set both VERACLAIM_MODEL_MAX_INPUT_TOKENS and VERACLAIM_MODEL_MAX_TOTAL_TOKENS, or neither"
            )
        if input_limit is not None and total_limit is not None and input_limit > total_limit:
            raise ValueError(
                f"model_max_input_tokens ({input_limit}) must not exceed model_max_total_tokens ({total_limit})"
            )
        return self

    def token_limits(self) -> TokenLimits | None:
        """Return the token limits from the settings, or None when they are not set."""
        if self.model_max_input_tokens is None or self.model_max_total_tokens is None:
            return None
        return TokenLimits(self.model_max_input_tokens, self.model_max_total_tokens, source="settings")

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(deadline_s=self.model_retry_deadline_s)


class RunPodSettings(BaseSettings):
    """Secrets and addresses for `veraclaim-serve runpod`. The pod itself is set in runpod.toml.

    The RunPod API key and the Hugging Face token are read under their usual names
    (RUNPOD_API_KEY, HF_TOKEN) or with the VERACLAIM_ prefix. Neither is written to a file.
    """

    model_config = SettingsConfigDict(env_prefix="VERACLAIM_RUNPOD_", extra="forbid", populate_by_name=True)

    api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("VERACLAIM_RUNPOD_API_KEY", "RUNPOD_API_KEY", "api_key"),
        description="RunPod API key, sent to RunPod's API only.",
    )
    hf_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("VERACLAIM_HF_TOKEN", "HF_TOKEN", "hf_token"),
        description="Hugging Face token passed to the pod for gated models. Qwen3 needs none.",
    )
    config_path: Path = Field(default=Path("runpod.toml"), description="The RunPod project file.")
    proxy_url_template: str = Field(
        default="https://{pod_id}-{port}.proxy.runpod.net",
        description="Public address of a pod's HTTP port, from RunPod's proxy.",
    )
