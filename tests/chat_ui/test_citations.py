"""Citation filtering: only the numbers of the given sources stay in the displayed answer."""

from __future__ import annotations

import pytest

from chat_ui.citations import filter_citations, visible_text

FIVE_SOURCES = range(1, 6)


@pytest.mark.parametrize(
    ("answer", "expected", "invalid"),
    [
        ("1년 6개월 후 공개됩니다 [1].", "1년 6개월 후 공개됩니다 [1].", 0),  # valid mark stays
        ("공개됩니다 [7].", "공개됩니다.", 1),  # beyond the given five: removed with its space
        ("공개됩니다 [0].", "공개됩니다.", 1),  # numbering starts at 1
        ("공개됩니다 [12, 3].", "공개됩니다 [3].", 1),  # list: the valid number stays
        ("공개됩니다 [1,2].", "공개됩니다 [1, 2].", 0),  # list without spaces, normalised
        ("공개됩니다 [6, 7, 8].", "공개됩니다.", 3),  # every number invalid: the mark goes
        ("공개됩니다 [1][7].", "공개됩니다 [1].", 1),  # adjacent marks are separate
        ("공개됩니다 [7] [2].", "공개됩니다 [2].", 1),  # removed mark before a valid one
        ("공개됩니다 [2] [7].", "공개됩니다 [2].", 1),  # removed mark after a valid one
        ("공개됩니다 [2-4].", "공개됩니다 [2-4].", 0),  # range inside the given numbers
        ("공개됩니다 [4-6].", "공개됩니다.", 1),  # range reaching past the last source
        ("공개됩니다 [ 2 ].", "공개됩니다 [2].", 0),  # spaces inside the brackets
        ("[7] 첫 줄\n둘째 줄", "첫 줄\n둘째 줄", 1),  # at a line start the following space goes
        ("첫 줄\n[9] 둘째 줄", "첫 줄\n둘째 줄", 1),  # same on a later line
        ("제[1차] 심사와 [청구항 1]", "제[1차] 심사와 [청구항 1]", 0),  # brackets with words are text
        ("배열 a[10]처럼", "배열 a처럼", 1),  # a bare number in brackets counts as a mark
        ("", "", 0),  # empty answer
    ],
)
def test_filter_citations_table(answer, expected, invalid):
    filtered = filter_citations(answer, FIVE_SOURCES)

    assert filtered.text == expected
    assert filtered.invalid == invalid


def test_filter_citations_without_sources_removes_every_mark():
    filtered = filter_citations("답 [1] 입니다 [2].", [])

    assert filtered.text == "답 입니다."
    assert filtered.invalid == 2


@pytest.mark.parametrize(
    ("pieces", "final_text"),
    [
        (["공개됩니다 [", "7", "]."], "공개됩니다."),  # invalid mark split in three
        (["공개됩니다 [1", "2]", " 그리고"], "공개됩니다 그리고"),  # "[1" then "2]": [12] is invalid
        (["공개됩니다 [1", "]", "."], "공개됩니다 [1]."),  # "[1" then "]": valid
        (["공개됩니다 [1,", " 9]."], "공개됩니다 [1]."),  # list split after the comma
        (["[", "1차] 심사"], "[1차] 심사"),  # looked like a mark until the next piece
        (["끝", " ", "[3]"], "끝 [3]"),  # a trailing space waits for the next piece
    ],
)
def test_streamed_pieces_never_show_invalid_mark(pieces, final_text):
    raw = ""
    shown: list[str] = []
    for piece in pieces:
        raw += piece
        shown.append(visible_text(raw, FIVE_SOURCES, final=False).text)
    final = visible_text(raw, FIVE_SOURCES, final=True).text

    assert final == final_text
    for text in shown:
        for invalid in ("[7", "[9", "[12", "[1,"):
            assert invalid not in text, (invalid, text)
    for earlier, later in zip(shown, [*shown[1:], final]):
        assert later.startswith(earlier), (earlier, later)


def test_streaming_releases_long_bracket_text():
    # An unclosed "[" followed by many digits is not a mark worth waiting for.
    raw = "표 [" + "1" * 30

    shown = visible_text(raw, FIVE_SOURCES, final=False).text

    assert shown == raw


def test_unfinished_mark_shown_when_final():
    filtered = visible_text("공개됩니다 [2", FIVE_SOURCES, final=True)

    assert filtered.text == "공개됩니다 [2"
    assert filtered.invalid == 0
