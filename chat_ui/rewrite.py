"""Turn a follow-up question into a standalone search query before retrieval.

"그 기간은 단축할 수 있나요?" finds nothing on its own: the index does not know what "그
기간" refers to. With history, the model rewrites the follow-up into a query that names its
subject. The model's output is unusable when it is empty, far too long, without Hangul or
Latin letters, or an echo of the prompt. Then, or when the call fails or times out, rules
take over and put the key terms of the previous search query in front of the follow-up.
Without history the question is searched as it is, and no model call is made.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from chat_ui.language import Language
from chat_ui.prompt import Exchange
from chat_ui.relevance import key_terms
from index_builder.keyword import analyze
from serving.client import ChatClient
from serving.errors import ModelServerError

logger = logging.getLogger(__name__)

RewriteMode = Literal["model", "rules", "off"]
RewriteMethod = Literal["question", "model", "rules"]

# Exchanges and answer characters shown to the model: the subject of a follow-up is almost
# always in the last turn or two, and long answers only slow the call down.
_HISTORY_EXCHANGES = 2
_ANSWER_CHARS = 400
# Key terms taken from the previous query by the rules.
_MAX_RULE_TERMS = 8
# A query may be at most this many characters longer than the follow-up and the previous
# query together. Anything longer is an answer or an explanation, not a query.
_REWRITE_SLACK_CHARS = 40

_INSTRUCTIONS: dict[Language, str] = {
    "ko": (
        "당신은 검색어를 만드는 도우미입니다. 대화의 마지막 후속 질문을 이전 대화 없이도 이해되는 "
        "하나의 독립된 질문으로 다시 쓰세요. '그', '이것', '그 기간'처럼 앞의 내용을 가리키는 말은 "
        "이전 대화의 구체적인 용어로 바꾸세요. 질문에 답하지 말고, 다시 쓴 질문 한 줄만 출력하세요."
    ),
    "en": (
        "You write search queries. Rewrite the last follow-up question of the conversation as one "
        "standalone question that can be understood without the conversation. Replace words that "
        "refer back ('it', 'that period') with the specific terms from the conversation. Do not "
        "answer the question: output only the rewritten question, on one line."
    ),
}
_LABELS: dict[Language, dict[str, str]] = {
    "ko": {"question": "질문", "answer": "답변", "follow_up": "후속 질문", "standalone": "독립된 질문"},
    "en": {"question": "Question", "answer": "Answer", "follow_up": "Follow-up question", "standalone": "Standalone question"},
}
_LETTER = re.compile(r"[A-Za-z\uac00-\ud7a3]")


@dataclass(frozen=True)
class SearchQuery:
    """The query to search for a question, and how it was made."""

    text: str
    method: RewriteMethod


def build_rewrite_messages(question: str, history: Sequence[Exchange], language: Language) -> list[dict]:
    """Return the chat messages that ask the model to rewrite `question` as a standalone query."""
    labels = _LABELS[language]
    lines = []
    for exchange in history[-_HISTORY_EXCHANGES:]:
        answer = " ".join(exchange.answer.split())
        if len(answer) > _ANSWER_CHARS:
            answer = answer[:_ANSWER_CHARS] + "…"
        lines.append(f"{labels['question']}: {exchange.question.strip()}")
        lines.append(f"{labels['answer']}: {answer}")
    lines.append("")
    lines.append(f"{labels['follow_up']}: {question.strip()}")
    lines.append(f"{labels['standalone']}:")
    return [
        {"role": "system", "content": _INSTRUCTIONS[language]},
        {"role": "user", "content": "\n".join(lines)},
    ]


def clean_rewrite(output: str, question: str, history: Sequence[Exchange]) -> str | None:
    """Return the query in the model's `output`, or None when it is unusable.

    Unusable means: empty, without Hangul or Latin letters, an echo of the prompt's labels
    or instructions, or longer than the follow-up and the previous query together allow.
    """
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    if not lines:
        return None
    text = lines[0]

    # Models often repeat the label they were given ("독립된 질문: ...") or quote the query.
    for labels in _LABELS.values():
        for label in (labels["standalone"], labels["follow_up"]):
            if text.lower().startswith(label.lower() + ":"):
                text = text[len(label) + 1 :].strip()
    text = text.strip("\"'`“”‘’「」 ").strip()

    if not _LETTER.search(text):
        return None
    if _echoes_prompt(text):
        return None
    previous = previous_query(history)
    if len(text) > len(question) + len(previous) + _REWRITE_SLACK_CHARS:
        return None
    return text


def _echoes_prompt(text: str) -> bool:
    lowered = text.lower()
    for language, labels in _LABELS.items():
        if any(f"{label.lower()}:" in lowered for label in labels.values()):
            return True
        # The instructions' first sentence is the likeliest echo.
        if _INSTRUCTIONS[language].split(".")[0].lower() in lowered:
            return True
    return False


def previous_query(history: Sequence[Exchange]) -> str:
    """Return the query searched for the last exchange: its logged search query, else its question."""
    if not history:
        return ""
    last = history[-1]
    return (last.search_query or last.question).strip()


def rule_rewrite(question: str, history: Sequence[Exchange]) -> str:
    """Put the previous query's key terms that `question` lacks in front of it.

    Key terms are the keyword index's tokens without question words (`relevance.key_terms`),
    so BM25 matches them exactly as it matches indexed chunks.
    """
    previous = previous_query(history)
    if not previous:
        return question
    present = set(analyze(question))
    terms = [term for term in key_terms(previous) if term not in present]
    if not terms:
        return question
    return f"{' '.join(terms[:_MAX_RULE_TERMS])} {question}"


class QueryRewriter:
    """Make the search query of each question, by the configured mode.

    `client` is needed for mode "model" only; give it a short timeout, because the answer
    waits for the rewrite. `thinking` is passed through to the client: False sends Qwen3's
    /no_think switch, None sends no switch (for models without one).
    """

    def __init__(
        self,
        mode: RewriteMode,
        client: ChatClient | None = None,
        *,
        timeout_s: float = 10.0,
        max_tokens: int = 64,
        thinking: bool | None = False,
    ) -> None:
        if mode == "model" and client is None:
            raise ValueError("query rewrite mode 'model' needs a ChatClient: pass client, or use mode 'rules'")
        self.mode = mode
        self.client = client
        self.timeout_s = timeout_s
        self.max_tokens = max_tokens
        self.thinking = thinking

    def search_query(self, question: str, history: Sequence[Exchange], language: Language) -> SearchQuery:
        """Return the standalone query to search for `question`, given the conversation so far."""
        if not history or self.mode == "off":
            return SearchQuery(question, "question")

        if self.mode == "model":
            rewritten = self._ask_model(question, history, language)
            if rewritten is not None:
                return SearchQuery(rewritten, "model")

        return SearchQuery(rule_rewrite(question, history), "rules")

    def _ask_model(self, question: str, history: Sequence[Exchange], language: Language) -> str | None:
        messages = build_rewrite_messages(question, history, language)
        deadline = time.monotonic() + self.timeout_s
        pieces: list[str] = []
        try:
            with self.client.stream_events(
                messages, thinking=self.thinking, max_tokens=self.max_tokens, temperature=0.0
            ) as events:
                for event in events:
                    if event.kind == "answer":
                        pieces.append(event.text)
                    # The client's timeout bounds each wait for a token; this bounds the whole call.
                    if time.monotonic() > deadline:
                        logger.warning("query rewrite took over %.1f s, so the rules rewrite the query", self.timeout_s)
                        return None
        except ModelServerError as exc:
            logger.warning("query rewrite failed (%s), so the rules rewrite the query", exc)
            return None

        output = "".join(pieces)
        rewritten = clean_rewrite(output, question, history)
        if rewritten is None:
            logger.info(
                "model's query rewrite is unusable, so the rules rewrite the query",
                extra={"search_query": output[:200]},
            )
        return rewritten
