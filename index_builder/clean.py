"""Cleaning of extracted page text before chunking, with Korean PDFs in mind.

The output is NFC-normalised, contains no control characters other than ``\\n``, has
single spaces inside lines, no blank lines at either end, and at most one blank line
between paragraphs. Page footers of the form ``- 234 -`` are dropped, because the chunk
keeps the PDF page number for citations, and letter-spaced Korean headings such as
``발 명 의 명 칭`` are joined.
"""

from __future__ import annotations

import re
import unicodedata

from index_builder.normalize import join_letter_spacing

# C0 and C1 controls, DEL, and the noncharacters U+FFFE and U+FFFF. Tab, LF, VT, FF and
# NEL are left to the whitespace rule below so that they separate words. Some PDFs carry
# NUL bytes in their text strings.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]")

# pdfium writes U+FFFE (get_text_range) where a line ended in a hyphen, and joins the two
# lines. Between Latin letters that is a word hyphenated at the line end ("Foun\ufffedation"),
# which is joined. Elsewhere the hyphen was a real dash ("장치\ufffe수치범위" for "장치-" at
# a line end), which is put back with its line break. A U+FFFE after a space marks no
# word and is dropped with the other control characters.
_LATIN_HYPHENATION = re.compile("(?<=[A-Za-z])\ufffe(?=[A-Za-z])")
_OTHER_LINE_END_HYPHEN = re.compile("(?<=\\S)\ufffe")

# A line that is only a page footer such as "- 234 -" or "– 5 –".
_PAGE_FOOTER = re.compile(r"^[-–—]\s*\d{1,5}\s*[-–—]$")

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

    # 2. Line-end hyphens, the Unicode form and control characters.
    text = _LATIN_HYPHENATION.sub("", text)
    text = _OTHER_LINE_END_HYPHEN.sub("-\n", text)
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub("", text)

    # 3. Whitespace: one space inside a line, trimmed lines, at most one blank line. Then
    #    footers and letter-spaced words, which the single spaces make easy to match.
    lines = [_INLINE_SPACE.sub(" ", line).strip() for line in text.split("\n")]
    # join_letter_spacing is the rule that normalize.py also applies to queries.
    lines = ["" if _PAGE_FOOTER.match(line) else join_letter_spacing(line) for line in lines]
    text = "\n".join(lines)
    text = _MANY_BLANK_LINES.sub("\n\n", text)
    return text.strip()

