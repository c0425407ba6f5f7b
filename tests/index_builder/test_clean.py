"""Tests of Korean text cleaning."""

from __future__ import annotations

import pytest

from index_builder.clean import clean_text

CASES = [
    # pdfium ends lines with CRLF.
    ("첫 줄\r\n둘째 줄\r셋째 줄", "첫 줄\n둘째 줄\n셋째 줄"),
    # NUL bytes, which pypdf returned 21 times for lshort-ko.pdf.
    ("특\x00허", "특허"),
    # pdfium's U+FFFE marks a word that was hyphenated at a line end.
    ("Free Software Foun\ufffedation", "Free Software Foundation"),
    # Conjoining jamo compose to the precomposed syllable that a query contains.
    ("\u1112\u1161\u11ab\u1100\u1173\u11af", "한글"),
    # NBSP, ideographic space and tabs become one space.
    ("청구항\u00a0 1\u3000\t발명", "청구항 1 발명"),
    # Form feed and vertical tab separate words instead of joining them.
    ("요약\x0c청구항\x0b도면", "요약 청구항 도면"),
    # Other control characters are dropped. pdfium returns 0x12 and 0x7f for some glyphs of lshort-ko.pdf.
    ("a\x12b\x7fc\x1dd", "abcd"),
    # Runs of blank lines shrink to one blank line.
    ("문단 하나\n\n\n\n문단 둘", "문단 하나\n\n문단 둘"),
    # Spaces at line ends and around the text are trimmed.
    ("  앞 공백 \n 뒤 공백  \n", "앞 공백\n뒤 공백"),
    # A page of whitespace and control characters is empty after cleaning.
    (" \r\n\x00\t\ufffe ", ""),
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_clean_text(raw: str, expected: str) -> None:
    assert clean_text(raw) == expected


def test_clean_text_is_idempotent() -> None:
    raw = "특허\r\n\r\n\r\n청구\u00a0범위\x00 \ufffe끝"
    once = clean_text(raw)
    assert clean_text(once) == once
