"""The notices the answer pipeline shows the user, and the checks of a question before any work.

Every notice is text from the language catalogs (chat_ui/locales), in the language the user
reads. Nothing here logs, so the pipeline logs the cases it needs with their ids.
"""

from __future__ import annotations

from chat_ui.answer import AnswerUpdate, Status
from chat_ui.history import has_visible_text
from chat_ui.language import Language, translate
from serving.errors import ModelServerError, ModelServerTimeout, ModelServerUnavailable
from serving.stream import StreamEvent, StreamResult

# Catalog keys of the notice shown while the client waits to retry, by server condition.
# Other conditions get "answer.server_busy".
_STATUS_NOTICES = {"starting": "answer.server_starting", "unreachable": "answer.server_reconnecting"}

# Long enough for a pasted claim set; longer input is almost always a pasted document,
# which belongs in the index rather than in the prompt.
MAX_QUESTION_CHARS = 4000


def check_question(question: str, language: Language) -> str | None:
    """Return the notice that rejects `question`, or None for a question the model may see."""
    # Zero-width spaces alone look empty to the user, and give the model nothing to answer.
    if not has_visible_text(question):
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


def outcome(update: AnswerUpdate, result: StreamResult, language: Language) -> tuple[Status, str | None]:
    """Return the status and notice of a stream that ended normally with `update`'s answer."""
    if update.answer.strip():
        return "ok", None
    if result.ended_in_reasoning:
        # The token limit ended the think block: its text is reasoning, never an answer.
        return "error", translate("answer.reasoning_cut", language)
    return "error", translate("answer.empty_answer", language)


def status_notice(event: StreamEvent, language: Language) -> str:
    """Return the notice shown while the client waits to retry the model server."""
    retry = event.status
    # "unreachable" means no response at all, such as a refused connection.
    key = _STATUS_NOTICES.get(retry.condition, "answer.server_busy")
    return translate(key, language, seconds=max(1, round(retry.retry_in_s)))


def failure_notice(exc: ModelServerError, language: Language) -> str:
    """Return the notice for a model call that failed with `exc`."""
    if isinstance(exc, ModelServerUnavailable):
        return translate("answer.model_unavailable", language)
    if isinstance(exc, ModelServerTimeout):
        return translate("answer.model_timeout", language)
    return translate("answer.model_failed", language, error_type=type(exc).__name__)
