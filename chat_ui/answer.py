"""The data the answer pipeline takes and yields: per-request options, citations and updates.

`chat_ui.pipeline` re-exports every name here, and callers import them from there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from langchain_core.documents import Document

from chat_ui.language import Language
from chat_ui.log import TurnRecord
from chat_ui.log.records import SamplingValue

Status = Literal["streaming", "ok", "no_answer", "error", "interrupted"]


@dataclass(frozen=True)
class AnswerOptions:
    """Per-request overrides of ChatSettings, e.g. from the UI's settings panel. None keeps the setting."""

    thinking: bool | None = None
    top_k: int | None = None
    temperature: float | None = None
    # The language of notices (errors, "not covered"), e.g. the UI's language switch. None
    # uses the question's language. The model is still asked in the question's language.
    language: Language | None = None

    def __post_init__(self) -> None:
        if self.language is not None and self.language not in ("ko", "en"):
            raise ValueError(f"language must be 'ko' or 'en', got {self.language!r}")
        if self.top_k is not None and (isinstance(self.top_k, bool) or not 1 <= self.top_k <= 50):
            raise ValueError(f"top_k must be an int from 1 to 50, got {self.top_k!r}")
        if self.temperature is not None and not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be from 0.0 to 2.0, got {self.temperature!r}")


@dataclass(frozen=True)
class Citation:
    """A numbered source given to the model, as shown under the answer."""

    n: int
    file_name: str
    page: int
    snippet: str  # the start of the matched chunk, for display
    score: float
    chunk_id: int
    source_uri: str
    text: str = ""  # the whole context given to the model under [n]: the chunk's neighbourhood
    chunk_no: int = 0  # the chunk's position in its document, from 0


@dataclass(frozen=True)
class AnswerUpdate:
    """The state of one answer: yielded after every streamed piece and once at the end.

    Times are milliseconds from receiving the question. The measurements, token counts and
    error type are filled on the final update only.
    """

    conversation_id: str
    question: str
    language: Language
    answer: str = ""
    reasoning: str = ""  # the model's think block, shown apart and never as the answer
    citations: tuple[Citation, ...] = field(default_factory=tuple)
    status: Status = "streaming"
    notice: str | None = None  # a localised message for the user, e.g. why the answer stopped
    turn_id: str | None = None
    search_query: str | None = None  # the standalone query searched, after follow-up rewriting
    retrieval_ms: float | None = None  # search, relevance floor, reranking and widening
    first_token_ms: float | None = None
    latency_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    error_type: str | None = None  # the exception's class name, e.g. "ModelServerUnavailable"

    @property
    def done(self) -> bool:
        return self.status != "streaming"


def citations_of(documents: Sequence[Document], snippet_chars: int) -> Iterator[Citation]:
    """Number the documents given to the model from 1, as the prompt numbers them."""
    for n, document in enumerate(documents, start=1):
        meta = document.metadata
        chunk_text = " ".join(meta.get("chunk_text", document.page_content).split())
        snippet = chunk_text if len(chunk_text) <= snippet_chars else chunk_text[:snippet_chars] + "…"
        yield Citation(
            n=n,
            file_name=meta["file_name"],
            page=meta["page"],
            snippet=snippet,
            score=float(meta["score"]),
            chunk_id=meta["chunk_id"],
            source_uri=meta["source_uri"],
            text=document.page_content,
            chunk_no=meta["chunk_no"],
        )


def turn_record(
    final: AnswerUpdate,
    *,
    model_id: str,
    model_base_url: str,
    index_version: str | None,
    error: Exception | None,
    sampling: Mapping[str, SamplingValue],
    invalid_citations: int,
) -> TurnRecord:
    """Return the log record of a final update."""
    return TurnRecord(
        conversation_id=final.conversation_id,
        question=final.question,
        answer=final.answer,
        sources=[
            {
                "n": c.n,
                "chunk_id": c.chunk_id,
                "file_name": c.file_name,
                "page": c.page,
                "score": c.score,
                "source_uri": c.source_uri,
            }
            for c in final.citations
        ],
        model_id=model_id,
        model_base_url=model_base_url,
        latency_ms=final.latency_ms or 0.0,
        first_token_ms=final.first_token_ms,
        status=final.status,
        error_type=final.error_type,
        error_message=None if error is None else str(error),
        index_version=index_version,
        search_query=final.search_query,
        reasoning=final.reasoning or None,
        sampling_params=sampling,
        input_tokens=final.input_tokens,
        output_tokens=final.output_tokens,
        invalid_citations=invalid_citations,
    )
