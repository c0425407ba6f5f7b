"""Wire the configured index, model server and conversation log into an answer pipeline."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from chat_ui.log import ConversationLog
from chat_ui.pipeline import AnswerPipeline, PromptBudget
from chat_ui.rerank import load_reranker
from chat_ui.retrieve import IndexRetriever
from chat_ui.rewrite import QueryRewriter
from chat_ui.settings import ChatSettings
from index_builder.store import open_index
from serving.budget import TokenLimits, read_token_limits, token_counter_for
from serving.client import ChatClient
from serving.errors import ModelServerError, TokenLimitsUnknown
from serving.retry import NO_RETRY, RetryPolicy
from serving.settings import ServingSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelEndpoint:
    """Where answers come from: an OpenAI-compatible base URL and the model id to request."""

    base_url: str
    model_id: str
    api_key: str | None = None
    timeout_s: float = 120.0
    stall_timeout_s: float | None = None  # end a stream that sends no token for this long
    retry: RetryPolicy = NO_RETRY  # retries before the first token
    token_limits: TokenLimits | None = None  # for servers without TGI's /info
    tokenizer_path: Path | None = None  # counts prompt tokens where the server cannot

    @classmethod
    def from_settings(
        cls,
        serving: ServingSettings,
        base_url: str,
        model_id: str,
        *,
        token_limits: TokenLimits | None = None,
        tokenizer_path: Path | None = None,
    ) -> ModelEndpoint:
        """Return the endpoint at `base_url` with the timeouts, retries and key of `serving`.

        `veraclaim-chat serve` and `embedded` both use it, so the local model gets the same
        retries and stall timeout as a remote server.
        """
        return cls(
            base_url,
            model_id,
            api_key=serving.model_api_key.get_secret_value() if serving.model_api_key else None,
            timeout_s=serving.model_timeout_s,
            stall_timeout_s=serving.model_stall_timeout_s,
            retry=serving.retry_policy(),
            token_limits=token_limits,
            tokenizer_path=tokenizer_path,
        )


def build_pipeline(settings: ChatSettings, endpoint: ModelEndpoint) -> AnswerPipeline:
    """Open the index, the reranker if configured, and the log, and connect a client to `endpoint`."""
    reader = open_index(settings.index_dir)
    # Loaded before the log opens, so a reranker setting that fails leaves nothing running.
    reranker = load_reranker(settings.reranker_model) if settings.reranker_model else None
    log = ConversationLog.open(settings.log_database_url)
    client = ChatClient(
        endpoint.base_url,
        endpoint.model_id,
        api_key=endpoint.api_key,
        timeout=endpoint.timeout_s,
        stall_timeout=endpoint.stall_timeout_s,
        retry=endpoint.retry,
    )
    logger.info(
        "answering from index %s (%d chunks) with model %s at %s",
        settings.index_dir,
        reader.chunk_count,
        endpoint.model_id,
        endpoint.base_url,
    )
    return AnswerPipeline(
        IndexRetriever(
            reader=reader, k=settings.top_k, mode=settings.retrieval_mode, index_path=Path(settings.index_dir)
        ),
        client,
        log,
        settings,
        model_id=endpoint.model_id,
        model_base_url=endpoint.base_url,
        budget=prompt_budget(endpoint),
        rewriter=query_rewriter(settings, endpoint),
        reranker=reranker,
    )


def query_rewriter(settings: ChatSettings, endpoint: ModelEndpoint) -> QueryRewriter:
    """Return the follow-up rewriter that `settings` configure, with a client of its own.

    The rewrite gets the shorter `rewrite_timeout_s` and no retries, because the answer
    waits for it and the rules can take over at once.
    """
    client = None
    if settings.query_rewrite == "model":
        client = ChatClient(
            endpoint.base_url,
            endpoint.model_id,
            api_key=endpoint.api_key,
            timeout=min(settings.rewrite_timeout_s, endpoint.timeout_s),
        )
    return QueryRewriter(
        settings.query_rewrite,
        client,
        timeout_s=settings.rewrite_timeout_s,
        max_tokens=settings.rewrite_max_tokens,
        # Reasoning would only delay the query. None sends no switch to models without one.
        thinking=None if settings.thinking is None else False,
    )


def prompt_budget(endpoint: ModelEndpoint) -> PromptBudget | None:
    """Read the server's token limits and pick a token counter, or return None when neither is known.

    Without a budget, a prompt over the server's limits gets TGI's 422, which the chat shows
    as a failed answer; the log records it.
    """
    try:
        limits = read_token_limits(endpoint.base_url, fallback=endpoint.token_limits, api_key=endpoint.api_key)
    except TokenLimitsUnknown as exc:
        logger.warning("prompts are not fitted to the model's token limits: %s", exc)
        return None
    except ModelServerError as exc:
        logger.warning("could not read the token limits of %s, so prompts are not fitted: %s", endpoint.base_url, exc)
        return None

    if endpoint.tokenizer_path is None and endpoint.token_limits is not None and limits is endpoint.token_limits:
        # Limits from settings mean a server without /info, which has no /chat_tokenize either.
        logger.warning("no tokenizer for %s: set VERACLAIM_MODEL_TOKENIZER to fit prompts", endpoint.base_url)
        return None
    counter = token_counter_for(endpoint.base_url, tokenizer_path=endpoint.tokenizer_path, api_key=endpoint.api_key)
    return PromptBudget(limits, counter)
