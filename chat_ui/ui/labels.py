"""The page's translatable texts, and the switch between Korean and English at runtime.

Gradio 6 translates gr.I18n keys in the browser, by the browser's language (the frontend
reads navigator.language), and offers the app no way to change that language: only the
Settings dialog in Gradio's footer can. So the page is built with gr.I18n keys, and the
first paint follows the browser. Every component made through `Labels.make` is recorded
with its keys. Switching language sends one gr.update per recorded component with the text
from the catalogs, and the server renders its own messages in the chosen language. The
choice is kept in the browser's localStorage (gr.BrowserState) and applied on page load.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from chat_ui.language import LANGUAGES, Language, translate

@dataclass(frozen=True)
class Text:
    """A catalog key placed into a template, such as a Markdown heading: Text("app.title", "## {}")."""

    key: str
    template: str = "{}"


class Labels:
    """Makes components with translated texts, and re-labels all of them in another language."""

    def __init__(self, i18n: gr.I18n) -> None:
        self.i18n = i18n
        self._entries: list[tuple[gr.blocks.Block, dict[str, Any]]] = []

    def make(self, factory: Callable[..., Any], texts: Mapping[str, Any], /, **kwargs: Any) -> Any:
        """Call `factory(**kwargs)` with each property in `texts` set from its catalog key.

        A text is a catalog key, a Text, or radio choices as a list of (key, value) pairs.
        """
        initial = {prop: self._initial(spec) for prop, spec in texts.items()}
        component = factory(**initial, **kwargs)
        self._entries.append((component, dict(texts)))
        return component

    @property
    def components(self) -> list[gr.blocks.Block]:
        """The recorded components, in the order of `updates`."""
        return [component for component, _ in self._entries]

    def updates(self, language: Language) -> list[dict[str, Any]]:
        """Return one gr.update per recorded component, with its texts in `language`."""
        return [
            gr.update(**{prop: _plain(spec, language) for prop, spec in texts.items()})
            for _, texts in self._entries
        ]

    def _initial(self, spec: Any) -> Any:
        if isinstance(spec, str):
            return self.i18n(spec)
        if isinstance(spec, Text):
            # I18n keys inside a longer string are translated by the frontend too.
            return spec.template.format(self.i18n(spec.key))
        return [(self.i18n(key), value) for key, value in spec]


def _plain(spec: Any, language: Language) -> Any:
    if isinstance(spec, str):
        return translate(spec, language)
    if isinstance(spec, Text):
        return spec.template.format(translate(spec.key, language))
    return [(translate(key, language), value) for key, value in spec]


def language_from_header(accept_language: str | None) -> Language:
    """Return the first of Korean or English that an Accept-Language header prefers, else English.

    English is the fallback because gr.I18n falls back to English for other browser languages.
    """
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        # q=0 means "not acceptable" (RFC 9110), and a malformed quality counts as 0.
        if quality > 0:
            ranked.append((-quality, position, tag.strip().lower().split("-")[0]))
    for _, _, primary in sorted(ranked):
        if primary in LANGUAGES:
            return primary  # type: ignore[return-value]
    return "en"


def chosen_language(stored: object, accept_language: str | None) -> Language:
    """Return the language stored in the browser if valid, else the one its header prefers."""
    if isinstance(stored, str) and stored in LANGUAGES:
        return stored  # type: ignore[return-value]
    return language_from_header(accept_language)


def language_choices() -> Sequence[tuple[str, str]]:
    """Return the language switch's choices, each named in its own language so either reader finds theirs."""
    return [("한국어", "ko"), ("English", "en")]
