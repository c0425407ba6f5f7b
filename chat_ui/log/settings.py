"""Settings of the conversation log, read from arguments, then VERACLAIM_LOG_* variables.

The database URL itself is ``ChatSettings.log_database_url`` (``VERACLAIM_LOG_DATABASE_URL``),
passed to ``ConversationLog.open(url)``. These settings set the sources of its secrets, the
connection pool, the background writer and journal, redaction, and retention.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_JOURNAL_DIR = Path("var/journal")


class LogSettings(BaseSettings):
    """Connection, writer, redaction and retention settings of the conversation log."""

    model_config = SettingsConfigDict(env_prefix="VERACLAIM_LOG_", extra="forbid")

    # Secrets. See credentials.py for the order in which they apply.
    database_password: SecretStr | None = Field(
        None,
        description="Password for the MySQL URL's user, used when the URL contains none.",
    )
    ssm_database_url_parameter: str | None = Field(
        None,
        description="Name of an SSM Parameter Store SecureString holding the whole database "
        "URL. When set, it replaces the URL given to ConversationLog.open().",
    )
    ssm_database_password_parameter: str | None = Field(
        None,
        description="Name of an SSM Parameter Store SecureString holding the MySQL password.",
    )
    aws_region: str | None = Field(
        None, description="AWS region of Parameter Store; by default boto3's own lookup."
    )

    # Connection pool (MySQL only; SQLite opens one connection per call).
    pool_max_connections: int = Field(10, ge=1, le=1000, description="Pooled connections.")
    pool_wait_timeout_s: float = Field(
        10.0, gt=0, description="Seconds a request waits for a free pooled connection."
    )
    pool_max_age_s: int = Field(
        3600,
        ge=1,
        description="Seconds after which a pooled connection is replaced even when the "
        "server's wait_timeout is longer, so a DNS failover reaches every connection.",
    )

    # Background writer and journal.
    journal_dir: Path = Field(
        DEFAULT_JOURNAL_DIR,
        description="Directory of the local journal that keeps records while the database "
        "is unavailable. Relative paths are resolved against the working directory.",
    )
    writer_queue_size: int = Field(
        10_000, ge=1, description="Records held in memory before new ones go to the journal."
    )
    writer_batch_size: int = Field(100, ge=1, le=10_000, description="Records per transaction.")
    replay_batch_size: int = Field(
        100, ge=1, le=10_000, description="Journal records per transaction during a replay."
    )
    replay_interval_s: float = Field(
        5.0, gt=0, description="Seconds between attempts to replay the journal."
    )
    read_wait_s: float = Field(
        5.0,
        ge=0,
        description="Seconds a read waits for this process's pending writes to the same "
        "database, so a read sees the turns recorded before it.",
    )
    close_timeout_s: float = Field(
        30.0, gt=0, description="Seconds close() waits for the writer to drain its queue."
    )

    # Schema, privacy and retention.
    auto_migrate: bool = Field(
        True,
        description="Apply pending schema migrations at open. When false, open() fails "
        "until `veraclaim-chat log migrate` has run.",
    )
    redact_personal_data: bool = Field(
        False,
        description="Replace e-mail addresses, phone numbers and Korean resident registration "
        "numbers in stored text with placeholders.",
    )
    retention_days: int | None = Field(
        None, ge=1, description="Days that `veraclaim-chat log purge` keeps; unset keeps all."
    )
