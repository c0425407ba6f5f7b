"""Wire the configured index, model server and conversation log into an answer pipeline."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from chat_ui.log import ConversationLog
from chat_ui.pipeline import AnswerPipeline
from chat_ui.retrieve import IndexRetriever
from chat_ui.settings import ChatSettings
from index_builder.store import open_index
from serving.client import ChatClient

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelEndpoint:
    """Where answers come from: an OpenAI-compatible base URL and the model id to request."""

    base_url: str
    model_id: str
    api_key: str | None = None
    timeout_s: float = 120.0


def build_pipeline(settings: ChatSettings, endpoint: ModelEndpoint) -> AnswerPipeline:
    """Open the index and the log, and connect a streaming client to `endpoint`."""
    reader = open_index(settings.index_dir)
    log = ConversationLog.open(settings.log_database_url)
    client = ChatClient(endpoint.base_url, endpoint.model_id, api_key=endpoint.api_key, timeout=endpoint.timeout_s)
    logger.info(
        "answering from index %s (%d chunks) with model %s at %s",
        settings.index_dir,
        reader.chunk_count,
        endpoint.model_id,
        endpoint.base_url,
    )
    return AnswerPipeline(
        IndexRetriever(reader=reader, k=settings.top_k, mode=settings.retrieval_mode),
        client,
        log,
        settings,
        model_id=endpoint.model_id,
        model_base_url=endpoint.base_url,
    )
