"""The admin page at /admin: usage statistics of the conversation log, for admin users only.

The page is a Gradio app of its own, mounted beside the chat on the same server. Its own
sign-in accepts only the users in VERACLAIM_ADMIN_USERS, so other users never see it.
Every request for statistics checks the admin right again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import gradio as gr
from fastapi import FastAPI
from starlette.routing import BaseRoute, Mount

from chat_ui.app import build_i18n
from chat_ui.auth import Accounts
from chat_ui.language import Language, translate
from chat_ui.log import ConversationLog
from chat_ui.log.stats import LogStats, collect_stats

logger = logging.getLogger(__name__)

ADMIN_PATH = "/admin"
WINDOW_CHOICES = (7, 30)  # days


def request_language(request: gr.Request | None) -> Language:
    """Korean for a browser whose first preferred language is Korean, else English, as gr.I18n picks."""
    header = request.headers.get("accept-language", "") if request is not None else ""
    return "ko" if header.strip().lower().startswith("ko") else "en"


def stats_tables(stats: LogStats, language: Language) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the per-day table and the unanswered-questions table as Dataframe values."""
    per_day = {
        "headers": [
            translate("admin.day", language),
            translate("admin.turns", language),
            translate("admin.errors", language),
            translate("admin.no_answer", language),
        ],
        "data": [[row.day.isoformat(), row.turns, row.errors, row.no_answer] for row in stats.per_day],
    }
    unanswered = {
        "headers": [translate("admin.asked_at", language), translate("admin.question", language)],
        "data": [
            [item.asked_at.strftime("%Y-%m-%d %H:%M UTC"), item.question] for item in stats.unanswered
        ],
    }
    return per_day, unanswered


def _rounded(value: float | None, digits: int = 0) -> float | None:
    return None if value is None else round(value, digits)


def _percent(value: float | None) -> float | None:
    return None if value is None else round(value * 100.0, 1)


def build_admin(log: ConversationLog, accounts: Accounts) -> gr.Blocks:
    """Lay out the admin page over `log`; only users that `accounts` names as admins get data."""
    i18n = build_i18n()

    def show_stats(window: int, request: gr.Request) -> tuple:
        """Read the statistics of the chosen window for an admin user."""
        language = request_language(request)
        if not accounts.is_admin(request.username):
            # The mount's sign-in admits admins only, so this is a second line of defence.
            logger.warning("rejected a statistics request of user %r: not an admin", request.username)
            raise gr.Error(translate("admin.forbidden", language))

        stats = collect_stats(log, int(window))
        per_day, unanswered = stats_tables(stats, language)
        return (
            stats.turns,
            _percent(stats.error_rate),
            _rounded(stats.latency_median_ms),
            _rounded(stats.latency_p95_ms),
            _rounded(stats.first_token_median_ms),
            _rounded(stats.first_token_p95_ms),
            stats.feedback_up,
            stats.feedback_down,
            _percent(stats.feedback_up_ratio),
            per_day,
            unanswered,
        )

    with gr.Blocks(title="Veraclaim admin", analytics_enabled=False) as admin:
        gr.Markdown(f"## {i18n('admin.title')}")
        gr.Markdown(i18n("admin.intro"))
        with gr.Row():
            window = gr.Radio(
                list(WINDOW_CHOICES), value=WINDOW_CHOICES[0], label=i18n("admin.window"), elem_id="admin-window"
            )
            refresh = gr.Button(i18n("admin.refresh"), elem_id="admin-refresh")
        with gr.Row():
            turns = gr.Number(label=i18n("admin.turns"), interactive=False)
            error_rate = gr.Number(label=i18n("admin.error_rate"), interactive=False)
            latency_median = gr.Number(label=i18n("admin.latency_median"), interactive=False)
            latency_p95 = gr.Number(label=i18n("admin.latency_p95"), interactive=False)
            first_token_median = gr.Number(label=i18n("admin.first_token_median"), interactive=False)
            first_token_p95 = gr.Number(label=i18n("admin.first_token_p95"), interactive=False)
        with gr.Row():
            feedback_up = gr.Number(label=i18n("admin.feedback_up"), interactive=False)
            feedback_down = gr.Number(label=i18n("admin.feedback_down"), interactive=False)
            feedback_ratio = gr.Number(label=i18n("admin.feedback_ratio"), interactive=False)
        per_day = gr.Dataframe(label=i18n("admin.per_day"), interactive=False, elem_id="admin-per-day")
        unanswered = gr.Dataframe(
            label=i18n("admin.unanswered"), interactive=False, wrap=True, elem_id="admin-unanswered"
        )

        outputs = [
            turns,
            error_rate,
            latency_median,
            latency_p95,
            first_token_median,
            first_token_p95,
            feedback_up,
            feedback_down,
            feedback_ratio,
            per_day,
            unanswered,
        ]
        # "stats" is the named endpoint for scripts (gradio_client with an admin's password).
        refresh.click(show_stats, inputs=[window], outputs=outputs, api_name="stats")
        window.change(show_stats, inputs=[window], outputs=outputs, api_visibility="private")
        admin.load(show_stats, inputs=[window], outputs=outputs, api_visibility="private")

    admin.queue(default_concurrency_limit=2)
    return admin


def admin_mount(
    admin: gr.Blocks, accounts: Accounts, *, theme: Any = None
) -> tuple[list[BaseRoute], Callable[[Any], contextlib.AbstractAsyncContextManager]]:
    """Return the /admin mount and the lifespan that starts its queue, for the chat server's app.

    Gradio's launch() builds the chat's FastAPI app and starts serving at once, so the admin
    app cannot be mounted on it afterwards. So gr.mount_gradio_app mounts it on a carrier
    app, and the carrier's Mount route and lifespan go into the chat app through launch's
    `app_kwargs`, as FastAPI's `routes` and `lifespan` arguments.
    """
    carrier = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    gr.mount_gradio_app(
        carrier,
        admin,
        path=ADMIN_PATH,
        auth=accounts.verify_admin_async,
        i18n=build_i18n(),
        theme=theme,
        show_error=False,
        footer_links=[],
    )
    mounts = [route for route in carrier.routes if isinstance(route, Mount)]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        async with carrier.router.lifespan_context(carrier):
            yield

    return mounts, lifespan
