"""What the page shows of one conversation: its turns, their citations, and the selection.

The chat column and the sources panel are both drawn from one ChatSession, which lives in
gr.State, one copy per browser tab. Turns come from the pipeline's updates while an answer
streams, or from the conversation log when the user resumes a past conversation. Sessions
are immutable: handlers return a new one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from chat_ui.log import LoggedTurn
from chat_ui.pipeline import AnswerUpdate
from chat_ui.prompt import Exchange


@dataclass(frozen=True)
class ShownCitation:
    """One numbered source of an answer, as the sources panel lists it."""

    n: int
    file_name: str
    page: int | None  # 1-based, or None when the log recorded no page
    snippet: str  # the start of the chunk, or "" for turns read back from the log
    source_uri: str | None
    chunk_id: int | None
    text: str = ""  # the context the model was given for this number, or "" from the log


@dataclass(frozen=True)
class ShownTurn:
    """One question and what the page shows of its answer."""

    question: str
    answer: str = ""
    reasoning: str = ""
    citations: tuple[ShownCitation, ...] = ()
    search_query: str | None = None  # the query actually searched, after follow-up rewriting
    status: str = "streaming"  # the pipeline's status: streaming, ok, no_answer, error, interrupted
    notice: str | None = None  # a localised message from the pipeline or the page
    turn_id: str | None = None  # the log's id, needed for feedback, or None until logged


@dataclass(frozen=True)
class ChatSession:
    """The conversation shown in one browser tab."""

    conversation_id: str = ""
    turns: tuple[ShownTurn, ...] = ()
    selected: int | None = None  # turn whose sources the panel shows; None means the last
    opened: int | None = None  # citation number open in the page viewer

    @property
    def selected_turn(self) -> ShownTurn | None:
        if not self.turns:
            return None
        index = self.selected if self.selected is not None and 0 <= self.selected < len(self.turns) else -1
        return self.turns[index]

    @property
    def streaming(self) -> bool:
        return bool(self.turns) and self.turns[-1].status == "streaming"

    def history(self) -> list[Exchange]:
        """The answered turns, oldest first, as the pipeline takes them as history."""
        return [
            Exchange(question=t.question, answer=t.answer, search_query=t.search_query)
            for t in self.turns
            if t.status == "ok"
        ]

    def with_turn(self, turn: ShownTurn) -> ChatSession:
        """Append `turn` and select it, closing the page viewer."""
        return replace(self, turns=(*self.turns, turn), selected=None, opened=None)

    def with_last_turn(self, turn: ShownTurn, conversation_id: str | None = None) -> ChatSession:
        """Replace the last turn, as each streamed update does."""
        return replace(self, turns=(*self.turns[:-1], turn), conversation_id=conversation_id or self.conversation_id)

    def without_last_turn(self) -> ChatSession:
        return replace(self, turns=self.turns[:-1], selected=None, opened=None)


def turn_from_update(update: AnswerUpdate) -> ShownTurn:
    """Return the turn that a pipeline update shows."""
    citations = tuple(
        ShownCitation(
            n=c.n,
            file_name=c.file_name,
            page=c.page,
            snippet=c.snippet,
            source_uri=c.source_uri,
            chunk_id=c.chunk_id,
            text=c.text,
        )
        for c in update.citations
    )
    return ShownTurn(
        question=update.question,
        answer=update.answer,
        reasoning=update.reasoning,
        citations=citations,
        search_query=update.search_query,
        status=update.status,
        notice=update.notice,
        turn_id=update.turn_id,
    )


def turn_from_log(turn: LoggedTurn) -> ShownTurn:
    """Return a turn read back from the conversation log, for a resumed conversation."""
    citations = tuple(
        ShownCitation(
            n=int(source["n"]),
            file_name=str(source.get("file_name") or ""),
            page=source.get("page"),
            snippet="",
            source_uri=source.get("source_uri"),
            chunk_id=_int_or_none(source.get("chunk_id")),
        )
        for source in sorted(turn.sources, key=lambda source: source.get("n", 0))
    )
    return ShownTurn(
        question=turn.question,
        answer=turn.answer,
        reasoning=turn.reasoning or "",
        citations=citations,
        search_query=turn.search_query,
        status=turn.status,
        turn_id=turn.turn_id,
    )


def session_from_log(conversation_id: str, turns: list[LoggedTurn]) -> ChatSession:
    """Return the session of a resumed conversation; the next question continues it."""
    return ChatSession(conversation_id=conversation_id, turns=tuple(turn_from_log(t) for t in turns))


def _int_or_none(value: object) -> int | None:
    # The log stores chunk ids as the JSON the pipeline wrote; older rows may hold strings.
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None

