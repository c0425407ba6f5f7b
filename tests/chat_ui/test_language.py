import json
from importlib import resources

import pytest

from chat_ui.language import LANGUAGES, catalog, detect_language, translate


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
