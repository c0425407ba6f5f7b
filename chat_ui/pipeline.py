"""The answer pipeline: retrieve, build the prompt, stream the model's answer, cite, log.

Every question that reaches retrieval is handed to the log exactly once, whatever happens
to the stream: a model failure keeps the partial answer, and a closed stream (the user left
or pressed stop) is logged as "interrupted". The log writes in the background, so a process
killed with SIGKILL can lose turns still in its queue.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from langchain_core.documents import Document

from chat_ui.errors import ChatUIError
from chat_ui.language import Language, detect_language, translate
from chat_ui.log import ConversationLog, TurnRecord
from chat_ui.prompt import Exchange, build_messages
from chat_ui.retrieve import IndexRetriever
from chat_ui.settings import ChatSettings
from serving.budget import TokenCounter, TokenLimits, fit_prompt
from serving.client import ChatClient
from serving.errors import ModelServerError, ModelServerUnavailable, PromptTooLong
from serving.stream import StreamEvent, StreamResult

logger = logging.getLogger(__name__)

Status = Literal["streaming", "ok", "no_answer", "error", "interrupted"]

# Long enough for a pasted claim set; longer input is almost always a pasted document,
# which belongs in the index rather than in the prompt.
MAX_QUESTION_CHARS = 4000


@dataclass(frozen=True)
class PromptBudget:
    """The model server's token limits and a counter of prompt tokens in its tokenizer."""

    limits: TokenLimits
    counter: TokenCounter


@dataclass(frozen=True)
class Citation:
    """A numbered source given to the model, as shown under the answer."""

    n: int
    file_name: str
    page: int
    snippet: str
    score: float
    chunk_id: int
    source_uri: str


@dataclass(frozen=True)
class AnswerUpdate:
    """The state of one answer: yielded after every streamed piece and once at the end."""

    conversation_id: str
    question: str
    language: Language
    answer: str = ""
    reasoning: str = ""  # the model's think block, shown apart and never as the answer
    citations: tuple[Citation, ...] = field(default_factory=tuple)
    status: Status = "streaming"
    notice: str | None = None  # a localised message for the user, e.g. why the answer stopped
    turn_id: str | None = None

    @property
    def done(self) -> bool:
        return self.status != "streaming"


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


class AnswerPipeline:
    """Answer questions from one index with one model server, and log every turn."""

    def __init__(
        self,
        retriever: IndexRetriever,
        client: ChatClient,
        log: ConversationLog,
        settings: ChatSettings,
        *,
        model_id: str,
        model_base_url: str,
        budget: PromptBudget | None = None,
    ) -> None:
        self.retriever = retriever
        self.client = client
        self.log = log
        self.settings = settings
        self.model_id = model_id
        self.model_base_url = model_base_url
        self.budget = budget

    def stream(
        self,
        question: str,
        history: Sequence[Exchange] | None = None,
        conversation_id: str | None = None,
        user: str | None = None,
    ) -> Iterator[AnswerUpdate]:
        """Yield the growing answer to `question`, then a final update with status and turn id.

        `history=None` continues `conversation_id` with its logged turns. An id that is not a
        UUID cannot be logged, so it starts a new conversation instead.
        """
        question = (question or "").strip()
        language = detect_language(question)
        update = AnswerUpdate(conversation_id=conversation_id or "", question=question, language=language)

        # 1. Reject input the model should never see; nothing is logged for it.
        notice = self._check_question(question, language)
        if notice is not None:
            yield replace(update, status="error", notice=notice)
            return

        if conversation_id and not _is_uuid(conversation_id):
            logger.warning("conversation id %r is not a UUID, so a new conversation starts", conversation_id[:80])
            conversation_id, history = None, []
        if history is None:
            history = self._logged_history(conversation_id) if conversation_id else []
        if not conversation_id:
            conversation_id = self._start_conversation(user, question)
        update = replace(update, conversation_id=conversation_id)

        # 2. Retrieve. An empty index is a setup problem the user must hear about, not a crash.
        if self.retriever.reader.chunk_count == 0:
            notice = translate("answer.no_documents", language)
            turn_id = self._record(update, status="no_answer", started=time.monotonic(), first_token=None)
            yield replace(update, status="no_answer", notice=notice, turn_id=turn_id)
            return
        documents = self.retriever.invoke(question)

        # 3. Fit the prompt to the server's token limits: the lowest-ranked chunks go first,
        # then the oldest turns. The citations list only the chunks the model was given.
        history = list(history)[-self.settings.history_turns :] if self.settings.history_turns else []
        try:
            messages, documents = self._fit_prompt(question, documents, history, language)
        except PromptTooLong as exc:
            logger.warning("question of conversation %s does not fit the model: %s", conversation_id, exc)
            notice = translate("answer.prompt_too_long", language)
            turn_id = self._record(update, status="error", started=time.monotonic(), first_token=None, error=exc)
            yield replace(update, status="error", notice=notice, turn_id=turn_id)
            return
        update = replace(update, citations=tuple(self._citations(documents)))

        # 4. Stream the answer. The finally clause logs the turn even when the consumer
        # closes the generator (stop button, closed tab): that turn stays "interrupted".
        started = time.monotonic()
        first_token: float | None = None
        status: Status = "interrupted"
        error: Exception | None = None
        result: StreamResult | None = None
        try:
            with self.client.stream_events(
                messages,
                thinking=self.settings.thinking,
                max_tokens=self.settings.max_tokens,
                temperature=self.settings.temperature,
            ) as events:
                for event in events:
                    if event.kind == "status":
                        update = replace(update, notice=self._status_notice(event, language))
                        yield update
                        continue
                    if first_token is None:
                        first_token = time.monotonic()
                    if event.kind == "reasoning":
                        update = replace(update, reasoning=update.reasoning + event.text, notice=None)
                    else:
                        update = replace(update, answer=update.answer + event.text, notice=None)
                    yield update
                result = events.result
            status, notice = self._outcome(update, result, language)
        except ModelServerError as exc:
            status, error = "error", exc
            notice = self._failure_notice(exc, language)
            logger.warning("model call failed for conversation %s: %s", conversation_id, exc)
        except Exception as exc:
            status, error = "error", exc
            raise
        finally:
            turn_id = self._record(
                update, status=status, started=started, first_token=first_token, error=error, result=result
            )

        yield replace(update, status=status, notice=notice, turn_id=turn_id)

    def _fit_prompt(
        self, question: str, documents: list[Document], history: list[Exchange], language: Language
    ) -> tuple[list[dict], list[Document]]:
        def build(chunks: int, turns: int) -> list[dict]:
            return build_messages(question, documents[:chunks], history[len(history) - turns :], language)

        if self.budget is None:
            return build(len(documents), len(history)), documents

        fitted = fit_prompt(
            build,
            chunk_count=len(documents),
            turn_count=len(history),
            counter=self.budget.counter,
            limits=self.budget.limits,
            max_new_tokens=self.settings.max_tokens,
            thinking=self.settings.thinking,
        )
        return fitted.messages, documents[: fitted.kept_chunks]

    @staticmethod
    def _outcome(update: AnswerUpdate, result: StreamResult, language: Language) -> tuple[Status, str | None]:
        if update.answer.strip():
            return "ok", None
        if result.ended_in_reasoning:
            # The token limit ended the think block: its text is reasoning, never an answer.
            return "error", translate("answer.reasoning_cut", language)
        return "error", translate("answer.empty_answer", language)

    @staticmethod
    def _status_notice(event: StreamEvent, language: Language) -> str:
        retry = event.status
        key = "answer.server_starting" if retry.condition == "starting" else "answer.server_busy"
        return translate(key, language, seconds=max(1, round(retry.retry_in_s)))

    def _logged_history(self, conversation_id: str) -> list[Exchange]:
        try:
            turns = self.log.turns(conversation_id)
        except ChatUIError as exc:
            # An unknown id, or a log database that cannot be read: answer without history.
            logger.warning("no history for conversation %s: %s", conversation_id, exc)
            return []
        return [Exchange(question=t.question, answer=t.answer) for t in turns if t.status == "ok"]

    def _check_question(self, question: str, language: Language) -> str | None:
        if not question:
            return translate("answer.empty_question", language)
        try:
            question.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates (from a broken client) cannot be embedded, logged or sent.
            return translate("answer.invalid_characters", language)
        if len(question) > MAX_QUESTION_CHARS:
            return translate(
                "answer.question_too_long", language, length=len(question), limit=MAX_QUESTION_CHARS
            )
        return None

    def _citations(self, documents: Sequence[Document]) -> Iterator[Citation]:
        for n, document in enumerate(documents, start=1):
            meta = document.metadata
            text = " ".join(document.page_content.split())
            snippet = text if len(text) <= self.settings.snippet_chars else text[: self.settings.snippet_chars] + "…"
            yield Citation(
                n=n,
                file_name=meta["file_name"],
                page=meta["page"],
                snippet=snippet,
                score=float(meta["score"]),
                chunk_id=meta["chunk_id"],
                source_uri=meta["source_uri"],
            )

    @staticmethod
    def _failure_notice(exc: ModelServerError, language: Language) -> str:
        if isinstance(exc, ModelServerUnavailable):
            return translate("answer.model_unavailable", language)
        return translate("answer.model_failed", language, error_type=type(exc).__name__)

    def _start_conversation(self, user: str | None, question: str) -> str:
        try:
            return self.log.start_conversation(user=user, title=question[:80])
        except ChatUIError:
            # The log journals writes while its database is down, so this fails only on an
            # invalid value. The chat still answers, under an id the log never stored.
            conversation_id = str(uuid.uuid4())
            logger.exception("could not start conversation %s in the log", conversation_id)
            return conversation_id

    def _index_version(self) -> str | None:
        reader = self.retriever.reader
        version = getattr(reader, "version", None) or reader.manifest.get("created_at")
        return None if version is None else str(version)

    def _record(
        self,
        update: AnswerUpdate,
        *,
        status: Status,
        started: float,
        first_token: float | None,
        error: Exception | None = None,
        result: StreamResult | None = None,
    ) -> str | None:
        now = time.monotonic()
        record = TurnRecord(
            conversation_id=update.conversation_id,
            question=update.question,
            answer=update.answer,
            sources=[
                {
                    "n": c.n,
                    "chunk_id": c.chunk_id,
                    "file_name": c.file_name,
                    "page": c.page,
                    "score": c.score,
                    "source_uri": c.source_uri,
                }
                for c in update.citations
            ],
            model_id=self.model_id,
            model_base_url=self.model_base_url,
            latency_ms=(now - started) * 1000.0,
            first_token_ms=None if first_token is None else (first_token - started) * 1000.0,
            status=status,
            error_type=None if error is None else type(error).__name__,
            error_message=None if error is None else str(error),
            index_version=self._index_version(),
            reasoning=update.reasoning or None,
            sampling_params=(
                {"max_tokens": result.max_tokens, "thinking": result.thinking, **result.sampling}
                if result is not None
                else {"max_tokens": self.settings.max_tokens, "thinking": self.settings.thinking}
            ),
            input_tokens=None if result is None else result.prompt_tokens,
            output_tokens=None if result is None else result.completion_tokens,
        )
        try:
            return self.log.record_turn(record)
        except ChatUIError:
            logger.exception("could not log a %s turn of conversation %s", status, update.conversation_id)
            return None
