"""Cleaning of extracted page text before chunking, with Korean PDFs in mind.

The output is NFC-normalised, contains no control characters other than ``\\n``, has
single spaces inside lines, no blank lines at either end, and at most one blank line
between paragraphs.
"""

from __future__ import annotations

import re
import unicodedata

# C0 and C1 controls, DEL, and the noncharacters U+FFFE and U+FFFF. Tab, LF, VT, FF and
# NEL are left to the whitespace rule below so that they separate words. pdfium writes
# U+FFFE (get_text_range) or U+0002 (get_text_bounded) where it joined a word hyphenated
# at a line end, and some PDFs carry NUL bytes in their text strings.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]")

# Whitespace other than the line feed, such as tab, NBSP and the ideographic space.
_INLINE_SPACE = re.compile(r"[^\S\n]+")

_MANY_BLANK_LINES = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """Return ``text`` normalised for indexing and display.

    NFC matters for Korean: PDFs may store Hangul as conjoining jamo (U+1100 block) that
    NFC composes into the precomposed syllables that queries use.
    """
    # 1. One line-end convention: pdfium ends lines with \r\n.
    text = text.replace("\r\n", "\n").replace("\r", "\n")

    # 2. Unicode form and control characters.
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub("", text)

    # 3. Whitespace: one space inside a line, trimmed lines, at most one blank line.
    lines = [_INLINE_SPACE.sub(" ", line).strip() for line in text.split("\n")]
    text = "\n".join(lines)
    text = _MANY_BLANK_LINES.sub("\n\n", text)
    return text.strip()
