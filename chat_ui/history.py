"""A user's own conversations: list, read, rename, delete, export and rate them.

``ConversationHistory`` wraps the conversation log for the app and the API and adds one
rule: a user only ever sees or changes conversations whose ``user`` column is theirs.
``user=None`` is the single local user of an app without sign-in, who owns the
conversations started without a user. Asking for another user's conversation raises the
same ConversationNotFound as asking for one that does not exist, so ids cannot be probed.

    history = ConversationHistory(log)
    for info in history.list("examiner-7"):
        print(info.title, info.updated_at)
    markdown = history.export_markdown("examiner-7", info.conversation_id)

Exports hold every turn with its citations (number, file and page) and search query. The
JSON export has a ``format`` key, the version of its layout (EXPORT_FORMAT).
"""

from __future__ import annotations

import builtins
import json
import logging
import re
import unicodedata
from datetime import datetime, timezone
from typing import Any, Literal

from chat_ui.errors import ConversationNotFoundError, InvalidLogValueError, TurnNotFoundError
from chat_ui.language import Language, translate
from chat_ui.log import ConversationInfo, ConversationLog, LoggedTurn
from chat_ui.log.records import MAX_TITLE_LENGTH

logger = logging.getLogger(__name__)

# Version of the JSON export's layout. Raise it when a key changes meaning or goes away;
# adding a key keeps it.
EXPORT_FORMAT = 1

Rating = Literal["up", "down", 1, -1]
_RATINGS: dict[object, int] = {"up": 1, "down": -1, 1: 1, -1: -1}

# Characters rejected in a title: controls (a title is one line), and the bidirectional
# overrides and isolates, which can make a title display as different text.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_REJECTED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})

# Letters and symbols that render as blank space: the Hangul fillers and the blank braille
# pattern. A title of only these would show as an empty entry, as one of format characters does.
_BLANK_LOOKING = frozenset("\u115f\u1160\u3164\uffa0\u2800")

# Characters of a question kept in the automatic title of its conversation.
AUTOMATIC_TITLE_CHARS = 80


class ConversationNotFound(ConversationNotFoundError):
    """No conversation with this id belongs to the user (it may not exist at all)."""


class TurnNotFound(ConversationNotFound, TurnNotFoundError):
    """No turn with this id is in a conversation of the user (it may not exist at all)."""


class InvalidTitle(InvalidLogValueError):
    """A conversation title is empty, too long or contains characters a title cannot hold."""


class TitleCharacterRejected(InvalidTitle):
    """A conversation title contains a character that a one-line title cannot hold."""

    def __init__(self, message: str, character: str) -> None:
        super().__init__(message)
        self.character = character


class InvisibleTitle(InvalidTitle):
    """A conversation title contains only format characters, such as zero-width spaces."""


def clean_title(title: object) -> str:
    """Return ``title`` NFC-normalised and stripped, or raise InvalidTitle naming the problem.

    NFC joins the decomposed Hangul jamo that some systems (macOS) type into syllables, so
    the same title is stored the same way whatever the browser's platform.
    """
    if not isinstance(title, str):
        raise InvalidTitle(f"A title must be text, got {type(title).__name__}.")
    cleaned = unicodedata.normalize("NFC", title.strip())
    if not cleaned:
        raise InvalidTitle("The title is empty. Type at least one character that is not a space.")
    if len(cleaned) > MAX_TITLE_LENGTH:
        raise InvalidTitle(
            f"The title has {len(cleaned)} characters, more than the maximum of "
            f"{MAX_TITLE_LENGTH}. Shorten it."
        )
    for position, character in enumerate(cleaned):
        if character in _BIDI_CONTROLS or unicodedata.category(character) in _REJECTED_CATEGORIES:
            raise TitleCharacterRejected(
                f"The title contains the character U+{ord(character):04X} at position "
                f"{position}, which a one-line title cannot hold. Remove line breaks, tabs "
                "and other control characters.",
                character,
            )

    # Zero-width spaces, joiners and byte order marks (category Cf) and the blank-looking
    # fillers render as nothing, so a title made only of them would show as an empty entry.
    if not has_visible_text(cleaned):
        codes = " ".join(f"U+{ord(character):04X}" for character in cleaned[:8])
        raise InvisibleTitle(
            f"The title contains no visible character, only invisible or blank ones ({codes}). "
            "Type at least one letter, digit or symbol."
        )
    return cleaned


def has_visible_text(text: str) -> bool:
    """Return whether `text` shows anything: a character that is not space, control, format or blank-looking."""
    return bool(_visible_text(text).strip())


def _visible_text(text: str) -> str:
    """Return `text` without its control (Cc), format (Cf) and blank-looking characters."""
    return "".join(
        character
        for character in text
        if unicodedata.category(character) not in ("Cc", "Cf") and character not in _BLANK_LOOKING
    )


def automatic_title(question: str) -> str:
    """Return the title of a conversation that starts with `question`: its first line of text.

    Control and format characters are removed, runs of whitespace (line breaks and tabs
    among them) become one space, and the text is NFC-normalised and cut to
    AUTOMATIC_TITLE_CHARS. A question without visible text gets the empty title, which the
    history list shows as "…".
    """
    # Whitespace controls (line breaks, tabs) separate words, so they become spaces before
    # the other controls are removed.
    spaced = "".join(" " if character.isspace() else character for character in question)
    words = unicodedata.normalize("NFC", _visible_text(spaced)).split()
    return " ".join(words)[:AUTOMATIC_TITLE_CHARS].rstrip()


class ConversationHistory:
    """Per-user access to the conversations in one ConversationLog."""

    def __init__(self, log: ConversationLog) -> None:
        self.log = log

    def list(self, user: str | None, limit: int = 50) -> builtins.list[ConversationInfo]:
        """Return up to ``limit`` of ``user``'s conversations, most recently active first."""
        return self.log.conversations(user, limit)

    def get(self, user: str | None, conversation_id: str) -> ConversationInfo:
        """Return the metadata of ``user``'s conversation; raises ConversationNotFound."""
        try:
            info = self.log.get_conversation(conversation_id)
        except ConversationNotFoundError:
            raise self._not_found(user, conversation_id) from None
        if info.user != user:
            logger.warning(
                "User %r requested conversation %s of another user; returned not found",
                user,
                conversation_id,
            )
            raise self._not_found(user, conversation_id)
        return info

    def turns(self, user: str | None, conversation_id: str) -> builtins.list[LoggedTurn]:
        """Return the turns of ``user``'s conversation, oldest first."""
        self.get(user, conversation_id)
        try:
            return self.log.turns(conversation_id)
        except ConversationNotFoundError:
            # Deleted between the two reads.
            raise self._not_found(user, conversation_id) from None

    def rename(self, user: str | None, conversation_id: str, title: str) -> None:
        """Set the title of ``user``'s conversation. Raises InvalidTitle for a bad title."""
        cleaned = clean_title(title)
        try:
            self.log.rename_conversation(conversation_id, cleaned, user=user)
        except ConversationNotFoundError:
            raise self._not_found(user, conversation_id) from None

    def delete(self, user: str | None, conversation_id: str) -> None:
        """Delete ``user``'s conversation with all its turns and their feedback."""
        try:
            self.log.delete_conversation(conversation_id, user=user)
        except ConversationNotFoundError:
            raise self._not_found(user, conversation_id) from None

    def feedback(
        self, user: str | None, turn_id: str, rating: Rating, comment: str | None = None
    ) -> str:
        """Store ``user``'s rating ("up" or 1, "down" or -1) of a turn of their own; return
        the feedback id. Raises TurnNotFound for a turn in another user's conversation."""
        if isinstance(rating, bool) or not isinstance(rating, (str, int)) or rating not in _RATINGS:
            raise InvalidLogValueError(
                f"rating must be 'up', 'down', 1 or -1, got {rating!r}."
            )
        try:
            turn = self.log.get_turn(turn_id)
            self.get(user, turn.conversation_id)
        except (TurnNotFoundError, ConversationNotFoundError):
            raise TurnNotFound(f"No turn with id {turn_id!r} for user {user!r}.") from None
        return self.log.record_feedback(turn_id, _RATINGS[rating], comment or "", user=user)

    def export_json(self, user: str | None, conversation_id: str) -> str:
        """Return the conversation as JSON text; see conversation_document() for the keys."""
        info = self.get(user, conversation_id)
        document = conversation_document(info, self.turns(user, conversation_id))
        return json.dumps(document, ensure_ascii=False, indent=2)

    def export_markdown(
        self, user: str | None, conversation_id: str, language: Language = "ko"
    ) -> str:
        """Return the conversation as a Markdown document with labels in ``language``."""
        info = self.get(user, conversation_id)
        return conversation_markdown(info, self.turns(user, conversation_id), language)

    def _not_found(self, user: str | None, conversation_id: str) -> ConversationNotFound:
        return ConversationNotFound(
            f"No conversation with id {conversation_id!r} for user {user!r}. "
            "List the user's conversations to get a valid id."
        )


# The JSON export.


def _timestamp(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _citations(turn: LoggedTurn) -> builtins.list[dict[str, Any]]:
    keys = ("n", "file_name", "page", "chunk_id", "score", "source_uri")
    sources = sorted(turn.sources, key=lambda source: source.get("n", 0))
    return [{key: source.get(key) for key in keys} for source in sources]


def conversation_document(
    info: ConversationInfo, turns: builtins.list[LoggedTurn]
) -> dict[str, Any]:
    """Return the export's JSON object. Times are ISO 8601 UTC ("2025-01-31T09:30:00Z").

    Keys: format, conversation (id, title, created_at, updated_at) and turns, each with
    turn_id, created_at, question, answer, reasoning, status, error_type, search_query,
    index_version, model_id, latency_ms, first_token_ms, input_tokens, output_tokens and
    citations (n, file_name, page, chunk_id, score, source_uri). The user name, the model
    server's address and raw error messages stay out, because exports get passed around.
    """
    return {
        "format": EXPORT_FORMAT,
        "conversation": {
            "id": info.conversation_id,
            "title": info.title,
            "created_at": _timestamp(info.created_at),
            "updated_at": _timestamp(info.updated_at),
        },
        "turns": [
            {
                "turn_id": turn.turn_id,
                "created_at": _timestamp(turn.created_at),
                "question": turn.question,
                "answer": turn.answer,
                "reasoning": turn.reasoning,
                "status": turn.status,
                "error_type": turn.error_type,
                "search_query": turn.search_query,
                "index_version": turn.index_version,
                "model_id": turn.model_id,
                "latency_ms": turn.latency_ms,
                "first_token_ms": turn.first_token_ms,
                "input_tokens": turn.input_tokens,
                "output_tokens": turn.output_tokens,
                "citations": _citations(turn),
            }
            for turn in turns
        ],
    }


# The Markdown export. User text is escaped so that it shows as typed; the answer is the
# model's Markdown and is kept, inside a block quote so that an unclosed code fence or a
# heading in it cannot spill into the rest of the document.

_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&#])")
# Characters that start a list item or a rule at the start of a line; "#" (heading) and
# ">" (quote) are escaped everywhere by _INLINE_SPECIAL.
_LINE_START_SPECIAL = re.compile(r"^([+=-]|\d+(?=[.)]))")
_WHITESPACE = re.compile(r"\s+")


def escape_markdown(text: str) -> str:
    """Return one line of plain text that renders as itself in CommonMark.

    Backslash escapes are the ones CommonMark defines for ASCII punctuation; Hangul and
    other letters never need one. Leading spaces go, since four of them start a code block.
    """
    escaped = _INLINE_SPECIAL.sub(r"\\\1", text.lstrip())
    match = _LINE_START_SPECIAL.match(escaped)
    if match is None:
        return escaped
    if match.group(1)[0].isdigit():
        # "1. " starts a list through its "."; escape that instead of the number.
        end = match.end()
        return escaped[:end] + "\\" + escaped[end:]
    return "\\" + escaped


def code_span(text: str) -> str:
    """Return ``text`` as an inline code span, on one line, whatever backticks it holds."""
    flat = _WHITESPACE.sub(" ", text).strip()
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    padding = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{padding}{flat}{padding}{fence}"


def _quote_plain(text: str) -> builtins.list[str]:
    """Block-quote plain text, keeping its line breaks."""
    lines = text.splitlines() or [""]
    quoted = []
    for index, line in enumerate(lines):
        escaped = escape_markdown(line)
        following = lines[index + 1] if index + 1 < len(lines) else ""
        # A backslash at the end of a line is a hard line break, between non-empty lines.
        hard_break = "\\" if escaped.strip() and following.strip() else ""
        quoted.append(f"> {escaped}{hard_break}".rstrip())
    return quoted


_SCRIPT_LINK = re.compile(r"\]\(\s*(?:javascript|vbscript|data):", re.IGNORECASE)


def _quote_markdown(text: str) -> builtins.list[str]:
    """Block-quote the model's Markdown, with raw HTML and script links made inert.

    Many Markdown viewers render raw HTML, so "<" outside code fences becomes "&lt;" and a
    javascript:, vbscript: or data: link target becomes "#".
    """
    quoted = []
    in_fence = False
    for line in text.splitlines() or [""]:
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        elif not in_fence:
            line = _SCRIPT_LINK.sub("](#", line.replace("<", "&lt;"))
        quoted.append(f"> {line}".rstrip())
    return quoted


def _human_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _turn_markdown(number: int, turn: LoggedTurn, language: Language) -> builtins.list[str]:
    heading = translate("export.turn", language, n=number)
    lines = [f"## {heading} · {_human_time(turn.created_at)}", ""]
    lines += [f"**{translate('export.question', language)}**", ""]
    lines += _quote_plain(turn.question) + [""]

    lines += [f"**{translate('export.answer', language)}**", ""]
    answer = turn.answer if turn.answer.strip() else translate("export.no_answer_text", language)
    lines += _quote_markdown(answer) + [""]
    if turn.status != "ok":
        status = translate(f"export.status.{turn.status}", language)
        lines += [f"*{translate('export.status', language, status=status)}*", ""]

    if turn.search_query:
        lines += [f"{translate('export.search_query', language)}: {code_span(turn.search_query)}", ""]
    citations = _citations(turn)
    if citations:
        lines += [f"**{translate('export.sources', language)}**", ""]
        for citation in citations:
            label = f"- \\[{citation['n']}\\] {code_span(str(citation['file_name']))}"
            if citation["page"] is not None:
                label += ", " + translate("export.page", language, page=citation["page"])
            lines.append(label)
        lines.append("")
    return lines


def conversation_markdown(
    info: ConversationInfo, turns: builtins.list[LoggedTurn], language: Language = "ko"
) -> str:
    """Return the conversation as Markdown: a title, its times, then one section per turn."""
    title = _WHITESPACE.sub(" ", info.title).strip() or translate("export.untitled", language)
    lines = [f"# {escape_markdown(title)}", ""]
    lines.append(f"- {translate('export.conversation_id', language)}: {code_span(info.conversation_id)}")
    lines.append(f"- {translate('export.started', language)}: {_human_time(info.created_at)}")
    lines.append(f"- {translate('export.updated', language)}: {_human_time(info.updated_at)}")
    lines.append("")
    for number, turn in enumerate(turns, start=1):
        lines += _turn_markdown(number, turn, language)
    return "\n".join(lines).rstrip("\n") + "\n"
