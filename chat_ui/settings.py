"""Settings of the chat app, read once from arguments, then VERACLAIM_* environment variables.

Model-server settings (base URL, model id, API key) belong to `serving.settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from chat_ui.log import DEFAULT_DATABASE_URL
from chat_ui.relevance import RELEVANCE_FLOOR


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
    query_rewrite: Literal["model", "rules", "off"] = Field(
        "model",
        description=(
            "How a follow-up question becomes a standalone search query: the model rewrites it "
            "(falling back to rules), rules only (the previous question's key terms are prepended), "
            "or off (the follow-up is searched as typed)."
        ),
    )
    rewrite_timeout_s: float = Field(
        10.0, gt=0, le=120, description="Seconds the model may take to rewrite a follow-up before the rules take over."
    )
    rewrite_max_tokens: int = Field(64, ge=8, le=512, description="Maximum new tokens of the model's rewritten query.")
    relevance_floor: float = Field(
        RELEVANCE_FLOOR,
        ge=0.0,
        le=1.0,
        description=(
            "Minimum relevance (0 to 1) of the best retrieved passage: the share of the question's key terms "
            "it contains, or for English questions its embedding similarity if higher. Below it, the "
            "question gets a 'not covered' notice without a model call; 0 turns the floor off."
        ),
    )
    context_chars: int = Field(
        800,
        ge=0,
        le=20000,
        description=(
            "Maximum characters of each matched chunk's neighbourhood (the chunk with the chunks before "
            "and after it on its page) given to the model; 0 sends the chunk alone."
        ),
    )
    reranker_model: str | None = Field(
        None,
        description=(
            "sentence-transformers CrossEncoder (local folder or cached hub id) that reorders retrieved chunks. "
            "Unset turns reranking off."
        ),
    )
    rerank_candidates: int = Field(
        3, ge=1, le=10, description="With a reranker, top_k times this many chunks are retrieved and reranked."
    )
    concurrency_limit: int = Field(8, ge=2, le=256, description="Chats generated at once; Gradio's default is 1.")
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
