"""Operations settings of the chat server: sign-in, admin users, /metrics and application logs.

Read once from arguments, then VERACLAIM_* environment variables. The chat's own settings
(index, model, host and port) are in `chat_ui.settings.ChatSettings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

LogFormat = Literal["text", "json"]


class OpsSettings(BaseSettings):
    """Sign-in accounts, admin users, /metrics protection and application log settings."""

    model_config = SettingsConfigDict(env_prefix="VERACLAIM_", extra="forbid")

    auth_users: SecretStr | None = Field(
        None,
        description="Comma-separated user:password or user:hash pairs, e.g. alice:pbkdf2_sha256$...; "
        "passwords given here cannot contain commas.",
    )
    auth_file: Path | None = Field(
        None,
        description="File of user:password or user:hash lines. Only its owner may read it (chmod 600).",
    )
    admin_users: str = Field("", description="Comma-separated users who may open /admin.")
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token that /metrics requires. Unset serves /metrics only to a "
        "server bound to a loopback address and not shared.",
    )
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics at /metrics.")
    log_format: LogFormat = Field("text", description="Application log lines as plain text or JSON.")
    log_questions: bool = Field(
        False,
        description="Keep question text in application logs; false masks it. The conversation "
        "log in the database always stores questions.",
    )

    def admin_names(self) -> frozenset[str]:
        """Return the admin user names listed in `admin_users`."""
        return frozenset(name.strip() for name in self.admin_users.split(",") if name.strip())
