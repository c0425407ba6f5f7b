"""Wire the history panel's events: list, resume, rename, delete and export conversations.

HistoryActions (history.py) does the work and returns the text to show. The handlers here
pass values between it and the page's components, and show or hide the delete confirmation.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from chat_ui.language import translate
from chat_ui.ui.history import HistoryActions
from chat_ui.ui.page import QUICK, Page, UIContext, user_of


def wire_history(page: Page, context: UIContext, answer_events: list[Any], stopped: Any) -> None:
    """Wire listing, resuming, renaming, deleting and exporting conversations."""
    actions = HistoryActions(context.history, context.exports)
    history = page.history
    listed = [history.conversations, history.status]

    # Delete only reveals Confirm delete and Cancel, with a prompt in the status line.
    # Choosing another conversation or listing them again hides both, so a confirmation
    # never applies to a conversation it was not asked for, and the prompt never outlives it.
    confirmation = [history.confirm_delete, history.cancel_delete]

    def confirmation_shown(visible: bool) -> dict[Any, Any]:
        return {button: gr.update(visible=visible) for button in confirmation}

    def list_conversations(selected, language, request: gr.Request):
        choices, status = actions.choices(user_of(request), selected, language)
        return {history.conversations: choices, history.status: status, **confirmation_shown(False)}

    # A new conversation appears in the list once its first answer is done or stopped.
    for event in (*answer_events, stopped):
        event.then(list_conversations, [history.conversations, page.language], [*listed, *confirmation], **QUICK)
    history.refresh.click(
        list_conversations, [history.conversations, page.language], [*listed, *confirmation], **QUICK
    )

    def choose(conversation_id, request: gr.Request):
        try:
            title = context.history.get(user_of(request), conversation_id).title if conversation_id else ""
        except LookupError:
            title = ""
        return {history.title: title, history.status: "", **confirmation_shown(False)}

    history.conversations.input(
        choose, [history.conversations], [history.title, history.status, *confirmation], **QUICK
    )

    def resume(conversation_id, language, request: gr.Request):
        session, status = actions.resume(user_of(request), conversation_id, language)
        if session is None:
            return {history.status: status}
        return {**page.cleared(language), **page.show(session, language), history.status: status}

    history.open.click(
        resume,
        [history.conversations, page.language],
        [*page.answer_outputs, history.status],
        cancels=answer_events,
        **QUICK,
    )

    def rename(conversation_id, title, language, request: gr.Request):
        status = actions.rename(user_of(request), conversation_id, title, language)
        choices, _ = actions.choices(user_of(request), conversation_id, language)
        return {history.conversations: choices, history.status: status}

    history.rename.click(rename, [history.conversations, history.title, page.language], listed, **QUICK)

    def ask_delete(conversation_id, language, request: gr.Request):
        ask, status = actions.ask_delete(user_of(request), conversation_id, language)
        return {history.status: status, **confirmation_shown(ask)}

    history.delete.click(
        ask_delete, [history.conversations, page.language], [history.status, *confirmation], **QUICK
    )

    def cancel_delete(language):
        return {history.status: translate("history.delete_cancelled", language), **confirmation_shown(False)}

    history.cancel_delete.click(cancel_delete, [page.language], [history.status, *confirmation], **QUICK)

    def delete(conversation_id, session, language, request: gr.Request):
        deleted, status = actions.delete(user_of(request), conversation_id, language)
        choices, _ = actions.choices(user_of(request), None, language)
        update = {history.conversations: choices, history.status: status, history.title: ""}
        update.update(confirmation_shown(False))
        if deleted and session.conversation_id == conversation_id:
            update.update(page.cleared(language))
        return update

    history.confirm_delete.click(
        delete,
        [history.conversations, page.session, page.language],
        [*page.answer_outputs, *listed, history.title, *confirmation],
        **QUICK,
    )

    def export(kind):
        def handler(conversation_id, language, request: gr.Request):
            path, status = actions.export(user_of(request), conversation_id, kind, language)
            file = gr.update(value=str(path), visible=True) if path else gr.update(value=None, visible=False)
            return {history.file: file, history.status: status}

        return handler

    for button, kind in ((history.export_markdown, "markdown"), (history.export_json, "json")):
        button.click(export(kind), [history.conversations, page.language], [history.file, history.status], **QUICK)
