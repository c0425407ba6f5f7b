"""The answer pipeline: rewrite, retrieve, build the prompt, stream the model's answer, cite, log.

The steps of one question:

1. A follow-up becomes a standalone search query (rewrite.py).
2. The index returns candidates, each widened to its neighbourhood (retrieve.py).
3. A question whose best candidate is below the relevance floor gets a "not covered"
   notice without a model call (relevance.py).
4. An optional cross-encoder reorders the candidates (rerank.py).
5. The model streams its answer, whose citation marks are kept to the numbers it was
   given (citations.py).

Before step 1, conversations.py picks the conversation that the turn is logged in. The
notices the user reads come from notices.py, and one question's measurements from
question_run.py.

Every question that passes input validation is handed to the log and to the observers
exactly once, whatever happens to the stream: a model failure keeps the partial answer, and
a stopped or closed stream (the user pressed stop or left) is logged as "interrupted". The log writes
in the background, so a process killed with SIGKILL can lose turns still in its queue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from langchain_core.documents import Document

from chat_ui.answer import AnswerOptions, AnswerUpdate, Citation, Status, citations_of, turn_record
from chat_ui.citations import visible_text
from chat_ui.conversations import ConversationResolver
from chat_ui.errors import ChatUIError
from chat_ui.language import Language, detect_language, translate
from chat_ui.log import ConversationLog
from chat_ui.notices import check_question, failure_notice, outcome, status_notice
from chat_ui.prompt import Exchange, build_messages
from chat_ui.question_run import QuestionRun, elapsed_ms, final_answer, measured, sampling_of
from chat_ui.relevance import relevance
from chat_ui.rerank import Reranker, load_reranker
from chat_ui.retrieve import IndexRetriever, drop_repeated, widen
from chat_ui.rewrite import QueryRewriter
from chat_ui.settings import ChatSettings
from chat_ui.stopping import StopRequested, StoppableEvents
from serving.budget import TokenCounter, TokenLimits, fit_prompt
from serving.client import ChatClient
from serving.errors import ModelServerError, PromptTooLong

logger = logging.getLogger(__name__)

__all__ = ["AnswerOptions", "AnswerPipeline", "AnswerUpdate", "Citation", "PromptBudget", "Status"]

# Candidates that the relevance floor looks at, however small the question's top_k.
MIN_FLOOR_CANDIDATES = 10


@dataclass(frozen=True)
class PromptBudget:
    """The model server's token limits and a counter of prompt tokens in its tokenizer."""

    limits: TokenLimits
    counter: TokenCounter


class AnswerPipeline:
    """Answer questions from one index with one model server, and log every turn.

    `rewriter` and `reranker` default to what `settings` configure: a rewriter that uses
    `client`, and the cross-encoder named by `settings.reranker_model`, if any.
    """

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
        rewriter: QueryRewriter | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        self.retriever = retriever
        self.client = client
        self.log = log
        self.settings = settings
        self.model_id = model_id
        self.model_base_url = model_base_url
        self.budget = budget
        self.rewriter = rewriter or QueryRewriter(
            settings.query_rewrite,
            client if settings.query_rewrite == "model" else None,
            timeout_s=settings.rewrite_timeout_s,
            max_tokens=settings.rewrite_max_tokens,
            thinking=None if settings.thinking is None else False,
        )
        if reranker is None and settings.reranker_model:
            reranker = load_reranker(settings.reranker_model)
        self.reranker = reranker
        self._observers: list[Callable[[AnswerUpdate], None]] = []
        self._conversations = ConversationResolver(log)

    def add_observer(self, observer: Callable[[AnswerUpdate], None]) -> None:
        """Call `observer` with the final update of every question that passes input validation.

        That includes "no_answer", "error" and "interrupted" turns. An exception raised by
        the observer is logged and does not reach the user.
        """
        self._observers.append(observer)

    def stream(
        self,
        question: str,
        history: Sequence[Exchange] | None = None,
        conversation_id: str | None = None,
        user: str | None = None,
        options: AnswerOptions | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[AnswerUpdate]:
        """Yield the growing answer to `question`, then a final update with status and turn id.

        `history=None` continues `conversation_id` with its logged turns. A new conversation
        starts instead for an id that is not a UUID, for another user's conversation, and
        for an id that is neither in the log nor started by this pipeline. Every update's
        `conversation_id` names the conversation that the turn is logged in. `options`
        overrides the settings' thinking, top_k and temperature for this question. Setting
        `stop` ends the answer as "interrupted" within stopping.POLL_S seconds, even while the model
        sends nothing; closing the generator ends it at the next token.
        """
        run = QuestionRun(received=time.monotonic())
        options = options or AnswerOptions()
        run.thinking = self.settings.thinking if options.thinking is None else options.thinking
        run.temperature = self.settings.temperature if options.temperature is None else options.temperature
        top_k = options.top_k or self.settings.top_k
        question = (question or "").strip()
        language = detect_language(question)
        shown_language = options.language or language  # of the notices the user reads
        update = AnswerUpdate(conversation_id=conversation_id or "", question=question, language=language)

        # 1. Reject input the model should never see; nothing is logged for it.
        notice = check_question(question, shown_language)
        if notice is not None:
            yield replace(update, status="error", notice=notice)
            return

        conversation_id, history = self._conversations.resolve(conversation_id, history, user, question)
        update = replace(update, conversation_id=conversation_id)
        history = list(history)[-self.settings.history_turns :] if self.settings.history_turns else []

        # 2. An empty index is a setup problem the user must hear about, not a crash.
        if self.retriever.reader.chunk_count == 0:
            yield self._finish(update, run, "no_answer", translate("answer.no_documents", shown_language))
            return

        # 3. Search for the standalone form of a follow-up, then keep the chunks above the
        # relevance floor. Below it, the model is never asked.
        try:
            search_query = self.rewriter.search_query(question, history, language)
            update = replace(update, search_query=search_query.text)
            retrieval_started = time.monotonic()
            documents = self._retrieve(search_query.text, top_k)
            run.retrieval_ms = elapsed_ms(retrieval_started)
        except Exception as exc:
            # A broken index is a bug or an outage for the edge to report, but the turn and
            # the observers still learn about it.
            run.error = exc
            self._finish(update, run, "error", None)
            raise
        if not documents:
            yield self._finish(update, run, "no_answer", translate("answer.not_covered", shown_language))
            return

        # 4. Fit the prompt to the server's token limits: the lowest-ranked chunks go first,
        # then the oldest turns. The citations list only the chunks the model was given.
        try:
            messages, documents = self._fit_prompt(question, documents, history, language, run.thinking)
        except PromptTooLong as exc:
            logger.warning("question of conversation %s does not fit the model: %s", conversation_id, exc)
            run.error = exc
            yield self._finish(update, run, "error", translate("answer.prompt_too_long", shown_language))
            return
        update = replace(update, citations=tuple(citations_of(documents, self.settings.snippet_chars)))
        valid_numbers = range(1, len(update.citations) + 1)

        # 5. Stream the answer. The finally clause logs the turn even when the consumer
        # closes the generator (stop button, closed tab): that turn stays "interrupted".
        status: Status = "interrupted"
        notice = None
        events = StoppableEvents(
            lambda: self.client.stream_events(
                messages, thinking=run.thinking, max_tokens=self.settings.max_tokens, temperature=run.temperature
            ),
            stop or threading.Event(),
        )
        try:
            for event in events:
                if event.kind == "status":
                    update = replace(update, notice=status_notice(event, shown_language))
                    yield update
                    continue
                if run.first_token is None:
                    run.first_token = time.monotonic()
                if event.kind == "reasoning":
                    update = replace(update, reasoning=update.reasoning + event.text, notice=None)
                else:
                    run.raw_answer += event.text
                    shown = visible_text(run.raw_answer, valid_numbers, final=False).text
                    update = replace(update, answer=shown, notice=None)
                yield update
            run.result = events.result
            update = final_answer(update, run, valid_numbers)
            status, notice = outcome(update, run.result, shown_language)
        except StopRequested:
            # The status stays "interrupted". The stop handler has logged the stop already.
            pass
        except ModelServerError as exc:
            status, run.error = "error", exc
            notice = failure_notice(exc, shown_language)
            logger.warning("model call failed for conversation %s: %s", conversation_id, exc)
        except Exception as exc:
            status, run.error = "error", exc
            raise
        finally:
            events.close()
            if run.result is None:
                # The stream ended early: show and log what arrived, filtered as at the end.
                update = final_answer(update, run, valid_numbers)
            final = self._finish(update, run, status, notice)

        yield final

    def _retrieve(self, query: str, top_k: int) -> list[Document]:
        """Return the passages to give the model for `query`, best first, or [] below the relevance floor."""
        # 1. Candidates, widened to what the model would read. The floor judges at least
        # MIN_FLOOR_CANDIDATES of them, so a small top_k does not hide the best match.
        fetch = top_k * self.settings.rerank_candidates if self.reranker is not None else top_k
        candidates = self.retriever.invoke(query, k=max(fetch, MIN_FLOOR_CANDIDATES))
        candidates = widen(self.retriever.reader, candidates, self.settings.context_chars)

        # 2. The relevance floor.
        score = relevance(query, candidates)
        if score < self.settings.relevance_floor:
            # The query stays in `extra`, where the privacy filter masks it.
            logger.info(
                "best passage has relevance %.2f, below the floor %.2f",
                score,
                self.settings.relevance_floor,
                extra={"search_query": query},
            )
            return []

        # 3. The reranker's order, then top_k passages without repeats.
        if self.reranker is not None:
            candidates = self.reranker.rerank(query, candidates)
        return drop_repeated(candidates)[:top_k]

    def _finish(self, update: AnswerUpdate, run: QuestionRun, status: Status, notice: str | None) -> AnswerUpdate:
        """Log the turn, fill in the final update's measurements and hand it to the observers."""
        final = measured(update, run, status, notice)
        record = turn_record(
            final,
            model_id=self.model_id,
            model_base_url=self.model_base_url,
            index_version=self._index_version(),
            error=run.error,
            sampling=sampling_of(run, self.settings.max_tokens),
            invalid_citations=run.invalid_citations,
        )
        try:
            final = replace(final, turn_id=self.log.record_turn(record))
        except ChatUIError:
            logger.exception("could not log a %s turn of conversation %s", status, update.conversation_id)

        for observer in self._observers:
            try:
                observer(final)
            except Exception:
                logger.exception("answer observer %r failed on turn %s", observer, final.turn_id)
        return final

    def _fit_prompt(
        self,
        question: str,
        documents: list[Document],
        history: list[Exchange],
        language: Language,
        thinking: bool | None,
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
            thinking=thinking,
        )
        return fitted.messages, documents[: fitted.kept_chunks]

    def _index_version(self) -> str | None:
        reader = self.retriever.reader
        version = getattr(reader, "version", None) or reader.manifest.get("created_at")
        return None if version is None else str(version)
