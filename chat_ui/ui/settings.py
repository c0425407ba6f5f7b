"""The answer settings panel: thinking, number of sources and temperature, per request.

The panel's values go with every question as AnswerOptions, so one user's choice never
changes another user's answers. A value left at the server's default is sent as None, and
the pipeline then uses ChatSettings.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from chat_ui.language import Language
from chat_ui.pipeline import AnswerOptions
from chat_ui.settings import ChatSettings
from chat_ui.ui.labels import Labels

# The thinking switch's values. "default" sends None, which leaves ChatSettings.thinking.
THINKING_CHOICES = [
    ("settings.thinking.default", "default"),
    ("settings.thinking.on", "on"),
    ("settings.thinking.off", "off"),
]
_THINKING = {"default": None, "on": True, "off": False}

# Upper bound of the sources slider. More passages rarely help a small context window, and
# the prompt budget drops the lowest-ranked ones that do not fit anyway.
MAX_TOP_K = 20
# The temperature slider's value when ChatSettings leaves temperature to the model.
NEUTRAL_TEMPERATURE = 0.7


@dataclass(frozen=True)
class SettingsPanel:
    accordion: gr.Accordion
    thinking: gr.Radio
    top_k: gr.Slider
    temperature: gr.Slider
    temperature_default: gr.Checkbox

    @property
    def inputs(self) -> list[gr.components.Component]:
        """The components whose values answer_options takes, in its argument order."""
        return [self.thinking, self.top_k, self.temperature, self.temperature_default]


def build_settings_panel(labels: Labels, settings: ChatSettings) -> SettingsPanel:
    """Lay out the settings panel, starting from the server's settings."""
    with labels.make(gr.Accordion, {"label": "settings.title"}, open=False, elem_id="settings") as accordion:
        initial_thinking = {None: "default", True: "on", False: "off"}[settings.thinking]
        thinking = labels.make(
            gr.Radio,
            {"label": "settings.thinking", "info": "settings.thinking.info", "choices": THINKING_CHOICES},
            value=initial_thinking,
            elem_id="settings-thinking",
        )
        top_k = labels.make(
            gr.Slider,
            {"label": "settings.top_k", "info": "settings.top_k.info"},
            minimum=1,
            maximum=max(MAX_TOP_K, settings.top_k),
            step=1,
            value=settings.top_k,
            elem_id="settings-top-k",
        )
        temperature_default = labels.make(
            gr.Checkbox,
            {"label": "settings.temperature_default"},
            value=settings.temperature is None,
            elem_id="settings-temperature-default",
        )
        temperature = labels.make(
            gr.Slider,
            {"label": "settings.temperature", "info": "settings.temperature.info"},
            minimum=0.0,
            maximum=2.0,
            step=0.05,
            value=NEUTRAL_TEMPERATURE if settings.temperature is None else settings.temperature,
            interactive=settings.temperature is not None,
            elem_id="settings-temperature",
        )
    temperature_default.change(
        lambda use_default: gr.update(interactive=not use_default),
        inputs=temperature_default,
        outputs=temperature,
        queue=False,
        show_progress="hidden",
        api_visibility="private",
    )
    return SettingsPanel(accordion, thinking, top_k, temperature, temperature_default)


def answer_options(
    thinking: str | None,
    top_k: float | None,
    temperature: float | None,
    temperature_default: bool,
    language: Language | None = None,
) -> AnswerOptions:
    """Return the per-request options for the panel's values (as the browser sent them).

    `language` is the page's language switch, in which the pipeline writes its notices.
    """
    return AnswerOptions(
        thinking=_THINKING.get(thinking or "default"),
        top_k=None if top_k is None else int(top_k),
        temperature=None if temperature_default or temperature is None else float(temperature),
        language=language if language in ("ko", "en") else None,
    )
