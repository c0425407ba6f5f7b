"""Pick the language of a question, and look up user-facing text in the locale catalogs.

The catalogs in `locales/` contain every user-facing string, in Korean and English. The Gradio
app passes them to `gr.I18n` for the interface. Answers, errors and source labels are written
server-side in the language of the question, because the browser's locale does not tell which
language a user asked in.
"""

from __future__ import annotations

import json
import unicodedata
from functools import cache
from importlib import resources
from typing import Literal

Language = Literal["ko", "en"]
LANGUAGES: tuple[Language, ...] = ("ko", "en")

# A question counts as Korean when at least this share of its letters are Hangul. Patent
# questions mix in Latin terms ("IPC", "claim 1"), so a majority rule would misfire.
_HANGUL_SHARE = 0.3


def detect_language(text: str) -> Language:
    """Return "ko" when Hangul makes up a fair share of the letters in `text`, else "en"."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return "ko"
    hangul = sum(1 for ch in letters if _is_hangul(ch))
    return "ko" if hangul / len(letters) >= _HANGUL_SHARE else "en"


def _is_hangul(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith("HANGUL")


@cache
def catalog(language: Language) -> dict[str, str]:
    """Load the flat key-to-text catalog for `language` from the package's locales folder."""
    text = resources.files("chat_ui").joinpath("locales", f"{language}.json").read_text(encoding="utf-8")
    return json.loads(text)


def translate(key: str, language: Language, **values: object) -> str:
    """Return the text for `key` in `language`, with `{name}` fields filled from `values`."""
    return catalog(language)[key].format(**values)
