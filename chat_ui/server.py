"""Serve the chat app: host, port, theme and the I18n catalogs passed to Gradio's launch."""

from __future__ import annotations

import logging

import gradio as gr

from chat_ui.app import build_i18n
from chat_ui.settings import ChatSettings

logger = logging.getLogger(__name__)

# System fonts only: the default theme loads Google Fonts, which a closed network never answers.
_THEME = gr.themes.Default(
    font=["Noto Sans KR", "Apple SD Gothic Neo", "Malgun Gothic", "NanumGothic", "sans-serif"],
    font_mono=["ui-monospace", "monospace"],
)


def launch(demo: gr.Blocks, settings: ChatSettings, *, prevent_thread_lock: bool = False) -> None:
    """Serve `demo` on the configured host and port, never through a share link."""
    logger.info("serving the chat on http://%s:%d", settings.host, settings.port)
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=False,
        i18n=build_i18n(),
        theme=_THEME,
        prevent_thread_lock=prevent_thread_lock,
        show_error=False,
        quiet=True,
    )
