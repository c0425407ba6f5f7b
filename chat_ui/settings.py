"""Settings of the chat app, read once from arguments, then VERACLAIM_* environment variables.

Model-server settings (base URL, model id, API key) belong to `serving.settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from chat_ui.log import DEFAULT_DATABASE_URL


class ChatSettings(BaseSettings):
    """Where the index and the log live, and how each answer is built and served."""

    model_config = SettingsConfigDict(
        env_prefix="VERACLAIM_",
        # The CLI loads .env into the environment once, because one .env contains every
        # package's settings and "forbid" would reject the other packages' keys.
        extra="forbid",
    )

    index_dir: Path = Field(Path("var/index"), description="Index folder written by veraclaim-index build.")
    log_database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="Conversation log: sqlite:///PATH or mysql://USER:PASSWORD@HOST:PORT/DB.",
    )
    top_k: int = Field(5, ge=1, le=50, description="Chunks retrieved and cited per question.")
    retrieval_mode: Literal["dense", "keyword", "hybrid"] = Field(
        "hybrid", description="dense embeddings, keyword BM25 over Korean morphemes, or both fused."
    )
    history_turns: int = Field(3, ge=0, le=20, description="Earlier question-answer pairs sent with each question.")
    max_tokens: int = Field(512, ge=16, le=32768, description="Maximum new tokens per answer.")
    temperature: float | None = Field(
        None, ge=0.0, le=2.0, description="Sampling temperature; unset uses the model's recommended value."
    )
    thinking: bool | None = Field(
        None,
        description="Qwen3 reasoning: true or false sends /think or /no_think; unset sends neither.",
    )
    snippet_chars: int = Field(160, ge=40, le=2000, description="Characters of each source shown under the answer.")
    concurrency_limit: int = Field(8, ge=2, le=256, description="Chats generated at once; Gradio's default is 1.")
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
