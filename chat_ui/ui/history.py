"""The history panel: the signed-in user's conversations, to resume, rename, delete or export.

The user is gr.Request.username, None in an app without sign-in, and ConversationHistory
only ever shows or changes that user's own conversations.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import gradio as gr

from chat_ui.errors import ChatUIError
from chat_ui.history import (
    ConversationHistory,
    ConversationNotFound,
    InvalidTitle,
    InvisibleTitle,
    TitleCharacterRejected,
)
from chat_ui.language import Language, translate
from chat_ui.render import escape_document_text
from chat_ui.ui.exports import ExportFolder
from chat_ui.ui.labels import Labels, Text
from chat_ui.ui.session import ChatSession, session_from_log

logger = logging.getLogger(__name__)

# Conversations listed; older ones stay in the log and in exports made before.
LIST_LIMIT = 50


@dataclass(frozen=True)
class HistoryPanel:
    conversations: gr.Radio
    refresh: gr.Button
    open: gr.Button
    delete: gr.Button
    confirm_delete: gr.Button  # hidden until Delete is pressed
    cancel_delete: gr.Button  # hidden until Delete is pressed
    title: gr.Textbox
    rename: gr.Button
    export_markdown: gr.Button
    export_json: gr.Button
    file: gr.File
    status: gr.Markdown


def build_history_panel(labels: Labels) -> HistoryPanel:
    """Lay out the list of conversations and the actions on the chosen one."""
    with gr.Column(elem_id="history"):
        labels.make(gr.Markdown, {"value": Text("history.title", "### {}")})
        conversations = labels.make(gr.Radio, {"label": "history.list"}, choices=[], elem_id="history-list")
        with gr.Row():
            refresh = _button(labels, "history.refresh", "history-refresh")
            resume = _button(labels, "history.open", "history-open", variant="primary")
            delete = _button(labels, "history.delete", "history-delete", variant="stop")
        # Deleting cannot be undone, so Delete only reveals this second step.
        with gr.Row():
            confirm_delete = _button(
                labels, "history.confirm_delete", "history-confirm-delete", variant="stop", visible=False
            )
            cancel_delete = _button(labels, "history.cancel_delete", "history-cancel-delete", visible=False)
        with gr.Row(equal_height=True):
            title = labels.make(
                gr.Textbox, {"label": "history.new_title"}, max_lines=1, scale=3, elem_id="history-title"
            )
            rename = _button(labels, "history.rename", "history-rename", scale=1)
        with gr.Row():
            export_markdown = _button(labels, "history.export_markdown", "history-export-markdown")
            export_json = _button(labels, "history.export_json", "history-export-json")
        # Hidden until an export: an empty File shows a large drop area.
        file = labels.make(
            gr.File, {"label": "history.export_file"}, interactive=False, visible=False, elem_id="history-export-file"
        )
        status = gr.Markdown(elem_id="history-status")
    return HistoryPanel(
        conversations,
        refresh,
        resume,
        delete,
        confirm_delete,
        cancel_delete,
        title,
        rename,
        export_markdown,
        export_json,
        file,
        status,
    )


def _button(labels: Labels, key: str, elem_id: str, **kwargs: Any) -> gr.Button:
    return labels.make(gr.Button, {"value": key}, size="sm", elem_id=elem_id, **kwargs)


def conversation_label(title: str, updated_at: datetime) -> str:
    """Return the list's label for a conversation: its title and the time of its last turn."""
    # NOTE: the time is in the server's time zone, because the server does not know the browser's.
    return f"{title or '…'} · {updated_at.astimezone():%Y-%m-%d %H:%M}"


class HistoryActions:
    """The panel's handlers; each returns Gradio values for the outputs that layout wires."""

    def __init__(self, history: ConversationHistory, exports: ExportFolder) -> None:
        self.history = history
        self.exports = exports

    def choices(self, user: str | None, selected: str | None, language: Language) -> tuple[Any, str]:
        """Return the list's update (keeping `selected` if it still exists) and a status line."""
        try:
            conversations = self.history.list(user, limit=LIST_LIMIT)
        except ChatUIError:
            logger.exception("could not list the conversations of user %r", user)
            return gr.update(), translate("history.failed", language)
        choices = [(conversation_label(c.title, c.updated_at), c.conversation_id) for c in conversations]
        value = selected if selected in {c.conversation_id for c in conversations} else None
        status = "" if choices else translate("history.empty", language)
        return gr.update(choices=choices, value=value), status

    def resume(
        self, user: str | None, conversation_id: str | None, language: Language
    ) -> tuple[ChatSession | None, str]:
        """Return the session of the chosen conversation (None on failure) and a status line."""
        if not conversation_id:
            return None, translate("history.none_selected", language)
        try:
            info = self.history.get(user, conversation_id)
            turns = self.history.turns(user, conversation_id)
        except ConversationNotFound:
            return None, translate("history.not_found", language)
        except ChatUIError:
            logger.exception("could not read conversation %s of user %r", conversation_id, user)
            return None, translate("history.failed", language)
        logger.info("user %r resumed conversation %s (%d turns)", user, conversation_id, len(turns))
        return session_from_log(conversation_id, turns), translate("history.opened", language, title=_status_title(info.title))

    def rename(self, user: str | None, conversation_id: str | None, title: str, language: Language) -> str:
        """Rename the chosen conversation; return a status line."""
        if not conversation_id:
            return translate("history.none_selected", language)
        try:
            self.history.rename(user, conversation_id, title)
        except InvisibleTitle:
            return translate("history.invisible_title", language)
        except TitleCharacterRejected as error:
            return translate("history.rejected_character", language, code=f"U+{ord(error.character):04X}")
        except InvalidTitle:
            return translate("history.invalid_title", language)
        except ConversationNotFound:
            return translate("history.not_found", language)
        except ChatUIError:
            logger.exception("could not rename conversation %s of user %r", conversation_id, user)
            return translate("history.failed", language)
        return translate("history.renamed", language, title=_status_title(title))

    def ask_delete(
        self, user: str | None, conversation_id: str | None, language: Language
    ) -> tuple[bool, str]:
        """Return whether to ask for confirmation of deleting the chosen conversation, and a
        status line: the question naming its title, or why there is nothing to delete."""
        if not conversation_id:
            return False, translate("history.none_selected", language)
        try:
            info = self.history.get(user, conversation_id)
        except ConversationNotFound:
            return False, translate("history.not_found", language)
        except ChatUIError:
            logger.exception("could not read conversation %s of user %r", conversation_id, user)
            return False, translate("history.failed", language)
        return True, translate("history.delete_prompt", language, title=_status_title(info.title))

    def delete(self, user: str | None, conversation_id: str | None, language: Language) -> tuple[bool, str]:
        """Delete the chosen conversation; return whether it was deleted, and a status line."""
        if not conversation_id:
            return False, translate("history.none_selected", language)
        try:
            self.history.delete(user, conversation_id)
        except ConversationNotFound:
            return False, translate("history.not_found", language)
        except ChatUIError:
            logger.exception("could not delete conversation %s of user %r", conversation_id, user)
            return False, translate("history.failed", language)
        logger.info("user %r deleted conversation %s", user, conversation_id)
        return True, translate("history.deleted", language)

    def export(
        self, user: str | None, conversation_id: str | None, kind: Literal["markdown", "json"], language: Language
    ) -> tuple[Path | None, str]:
        """Write the chosen conversation to a file to download; return its path and a status line."""
        if not conversation_id:
            return None, translate("history.none_selected", language)
        try:
            info = self.history.get(user, conversation_id)
            if kind == "markdown":
                text, suffix = self.history.export_markdown(user, conversation_id, language), ".md"
            else:
                text, suffix = self.history.export_json(user, conversation_id), ".json"
        except ConversationNotFound:
            return None, translate("history.not_found", language)
        except ChatUIError:
            logger.exception("could not export conversation %s of user %r", conversation_id, user)
            return None, translate("history.failed", language)
        return self.exports.write(info.title, suffix, text), translate("history.exported", language)


def _status_title(title: str) -> str:
    """Return a title for the Markdown status line, shown as typed: no link, image or markup."""
    return escape_document_text(" ".join(title.split()) or "…")
