import json
from importlib import resources

import pytest

from chat_ui.language import LANGUAGES, catalog, detect_language, translate
from chat_ui.ui.labels import chosen_language, language_from_header


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("특허출원은 언제 공개되나요?", "ko"),  # plain Korean
        ("청구항 1의 IPC 분류는 A63B인가요?", "ko"),  # Korean with Latin codes mixed in
        ("When is a patent application published?", "en"),  # plain English
        ("What does 출원공개 mean?", "en"),  # English with one Korean term
        ("10-2020-0012345", "ko"),  # no letters at all: the first users work in Korean
    ],
)
def test_detect_language(text, expected):
    assert detect_language(text) == expected


def test_catalogs_have_same_keys():
    keys = {language: set(catalog(language)) for language in LANGUAGES}
    assert keys["ko"] == keys["en"]


def test_catalogs_are_valid_json_with_text():
    for language in LANGUAGES:
        raw = resources.files("chat_ui").joinpath("locales", f"{language}.json").read_text(encoding="utf-8")
        for key, text in json.loads(raw).items():
            assert text.strip(), f"{language}:{key} is empty"


def test_translate_fills_fields():
    assert translate("sources.page", "ko", page=3) == "3쪽"
    assert translate("sources.page", "en", page=3) == "p. 3"


# The page's language: from the browser, and switched at runtime.


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("ko-KR,ko;q=0.9,en-US;q=0.8", "ko"),  # a Korean browser
        ("en-US,en;q=0.9", "en"),  # an English browser
        ("ja-JP,ko;q=0.8,en;q=0.5", "ko"),  # Korean preferred over English after an unsupported language
        ("en;q=0.4, ko;q=0.7", "ko"),  # quality values decide, not the order
        ("fr-FR", "en"),  # no supported language: English, as gr.I18n falls back
        ("", "en"),  # no header
        ("ko;q=abc", "en"),  # a malformed quality counts as 0
    ],
)
def test_language_from_accept_language_header(header, expected):
    assert language_from_header(header) == expected


def test_stored_choice_wins_over_header():
    assert chosen_language("en", "ko-KR") == "en"
    assert chosen_language("xx", "ko-KR") == "ko"  # an invalid stored value is ignored
    assert chosen_language(None, None) == "en"


def test_labels_switch_every_recorded_text():
    import gradio as gr

    from chat_ui.app import build_i18n
    from chat_ui.ui.labels import Labels, Text

    labels = Labels(build_i18n())
    button = labels.make(gr.Button, {"value": "input.submit"}, elem_id="send")
    heading = labels.make(gr.Markdown, {"value": Text("app.title", "## {}")})
    radio = labels.make(gr.Radio, {"label": "settings.thinking", "choices": [("settings.thinking.on", "on")]})

    updates = dict(zip(labels.components, labels.updates("en"), strict=True))

    assert labels.components == [button, heading, radio]
    assert updates[button]["value"] == "Send"
    assert updates[heading]["value"] == "## " + translate("app.title", "en")
    assert updates[radio]["label"] == "Thinking (reasoning)"
    assert updates[radio]["choices"] == [("On", "on")]
    assert labels.updates("ko")[0]["value"] == "보내기"
