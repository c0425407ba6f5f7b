"""A check that extracted page text is text, run on pdfium's raw output before cleaning.

Two kinds of garbage come out of PDFs whose fonts lack a usable ToUnicode map:
- glyph ids instead of characters: control characters, U+FFFD, private-use code points or
  ``(cid:NN)`` runs (the form that pdfminer-based tools write);
- Hangul syllables that no Korean text uses, where a wrong map sends Latin glyphs into the
  Hangul block. kotex-doc.pdf from Debian's texlive-lang-korean reads "version 3.0" as
  "쥶쥥쥲쥳쥩쥯쥮 줳줮줰" with pdfium (docs/extraction.md).

Real Korean text is written almost entirely in the 2,350 syllables of KS X 1001, which
occupy the cp949 lead bytes 0xB0–0xC8 with trail bytes 0xA1–0xFE. The other 8,822 modern
syllables sit in cp949's extension area. On the 17 PDFs of texlive-lang-korean, every page
of lshort-ko.pdf had 0% of its syllables outside KS X 1001, and the pages of kotex-doc.pdf
with Latin text had 8–79%.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_CID_RUN = re.compile(r"\(cid:\d+\)")

# A page is judged only with this many non-space characters: a page number alone is no evidence.
MIN_CHARACTERS = 20
# Share of non-space characters that are glyph ids rather than text.
MAX_GLYPH_ID_SHARE = 0.10
# Share of Hangul syllables outside KS X 1001, counted once a page has MIN_RARE_SYLLABLES of them.
# Rare names and loanwords stay far below 5%.
MAX_RARE_HANGUL_SHARE = 0.05
MIN_RARE_SYLLABLES = 5


@dataclass(frozen=True)
class TextQuality:
    """Counts behind the verdict on one page's text."""

    characters: int
    glyph_ids: int
    hangul: int
    rare_hangul: int

    @property
    def garbled_reason(self) -> str | None:
        """Why the page reads as garbage, or None when it reads as text."""
        if self.characters < MIN_CHARACTERS:
            return None
        if self.glyph_ids / self.characters > MAX_GLYPH_ID_SHARE:
            return (
                f"{self.glyph_ids} of {self.characters} characters are control, replacement or "
                "private-use characters (font without a usable ToUnicode map?)"
            )
        if self.rare_hangul >= MIN_RARE_SYLLABLES and self.rare_hangul / self.hangul > MAX_RARE_HANGUL_SHARE:
            return (
                f"{self.rare_hangul} of {self.hangul} Hangul syllables are outside KS X 1001 "
                "(font with a wrong ToUnicode map?)"
            )
        return None


def is_common_hangul(character: str) -> bool:
    """Return whether a precomposed Hangul syllable is one of the 2,350 of KS X 1001."""
    encoded = character.encode("cp949")
    return 0xB0 <= encoded[0] <= 0xC8 and encoded[1] >= 0xA1


def assess(text: str) -> TextQuality:
    """Count the characters of raw page text that show whether it is garbage."""
    cid_characters = sum(len(match) for match in _CID_RUN.findall(text))
    text = _CID_RUN.sub("", text)

    characters = cid_characters
    glyph_ids = cid_characters
    hangul = 0
    rare_hangul = 0
    for character in text:
        if character.isspace():
            continue
        characters += 1
        if "\uac00" <= character <= "\ud7a3":
            hangul += 1
            if not is_common_hangul(character):
                rare_hangul += 1
        elif character == "\ufffd" or unicodedata.category(character) in ("Cc", "Co"):
            glyph_ids += 1
    return TextQuality(characters=characters, glyph_ids=glyph_ids, hangul=hangul, rare_hangul=rare_hangul)
