"""Keep an answer's citation marks to the sources the model was given.

The prompt numbers its sources [1] to [n] and tells the model to cite no other number, but
small models still write [7] after five sources, or [0]. A mark like that points at nothing
the user can open, so it is removed from the displayed answer and counted for the log.

A citation mark is a bracket that contains only numbers, separated by commas, with
optional ranges: "[1]", "[1, 3]", "[2-4]". Brackets that contain anything else ("[1차]",
"[청구항 1]") are text and stay. In a list, the valid numbers stay and the invalid ones
go ("[12, 3]" becomes "[3]"). A range stays only when every number in it was given.

While the answer streams, a mark may arrive split across pieces ("... [1" then "2]."), so
`visible_text` holds back an unfinished mark and trailing spaces until the next piece
shows what they are. The text it returns therefore only grows as pieces arrive.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

# A number or a range, with ASCII hyphen, en dash or tilde, as models write them.
_ITEM = r"\d{1,4}(?:\s*[-–~]\s*\d{1,4})?"
# The mark with the spaces or tabs before it, which go with it when it is removed.
_MARK = re.compile(rf"(?P<space>[ \t]*)\[\s*(?P<items>{_ITEM}(?:\s*[,，]\s*{_ITEM})*)\s*\]")
_ITEM_SPLIT = re.compile(r"\s*[,，]\s*")
_RANGE = re.compile(r"(\d+)\s*[-–~]\s*(\d+)")

# An unfinished mark at the end of a streamed answer: "[", "[1", "[1, ", "[2-".
_OPEN_MARK = re.compile(r"\[[\d\s,，\-–~]*$")
# An unfinished mark longer than this is plain text, and holding it back would stall the stream.
_MAX_OPEN_MARK_CHARS = 24


@dataclass(frozen=True)
class FilteredAnswer:
    """An answer with its invalid citation marks removed."""

    text: str
    invalid: int  # citation numbers removed, counting each number or range once


def filter_citations(text: str, valid: Collection[int]) -> FilteredAnswer:
    """Remove the citation numbers of `text` that are not in `valid`.

    A mark left empty is removed with the spaces before it, so "입니다 [7]." becomes
    "입니다.". A removed mark at the start of a line takes the spaces after it instead.
    """
    allowed = set(valid)
    invalid = 0
    pieces: list[str] = []
    position = 0
    strip_following = False

    for match in _MARK.finditer(text):
        between = text[position : match.start()]
        pieces.append(between.lstrip(" \t") if strip_following else between)
        position = match.end()

        kept: list[str] = []
        for item in _ITEM_SPLIT.split(match.group("items").strip()):
            if _item_is_valid(item, allowed):
                kept.append(item)
            else:
                invalid += 1
        if kept:
            pieces.append(f"{match.group('space')}[{', '.join(kept)}]")
            strip_following = False
        else:
            strip_following = match.start() == 0 or text[match.start() - 1] == "\n"

    rest = text[position:]
    pieces.append(rest.lstrip(" \t") if strip_following else rest)
    return FilteredAnswer("".join(pieces), invalid)


def visible_text(raw: str, valid: Collection[int], *, final: bool) -> FilteredAnswer:
    """Return the part of a streaming answer that can be shown now, filtered.

    Until `final`, an unfinished mark at the end and the spaces before it wait for the
    next piece, because they may still become a mark that must be removed.
    """
    if not final:
        raw = _without_open_tail(raw)
    return filter_citations(raw, valid)


def _without_open_tail(raw: str) -> str:
    tail = _OPEN_MARK.search(raw)
    if tail is not None and len(raw) - tail.start() <= _MAX_OPEN_MARK_CHARS:
        raw = raw[: tail.start()]
    # Spaces before a mark go with it when it is removed, so they wait too.
    return raw.rstrip(" \t")


def _item_is_valid(item: str, allowed: set[int]) -> bool:
    span = _RANGE.fullmatch(item)
    if span is None:
        return int(item) in allowed
    first, last = int(span.group(1)), int(span.group(2))
    return first <= last and all(n in allowed for n in range(first, last + 1))

