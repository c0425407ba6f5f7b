"""Patent-aware normalisation of text, applied in the same way to indexed chunks and to queries.

normalize() returns the canonical text, which is what the dense model embeds, and the legal
and patent references found in it, which become single BM25 tokens (keyword.py). The
stored chunk text, which users see and the prompt quotes, stays as extracted.

Characters:
- NFC composes conjoining jamo (U+1100 block) into precomposed syllables.
- Full-width ASCII (U+FF01-U+FF5E) becomes ASCII, the ideographic space a space, decimal
  digits of any script ASCII digits, and Latin ligatures (U+FB00-U+FB06) their letters.
  NFKC is not applied to the whole text, because it would also turn the compatibility
  jamo "ㄱ" into a conjoining jamo and the circled ① into a bare 1.
- Runs of spaces and tabs become one space. Line breaks stay, because they mark the
  paragraphs of statutes.
- Three or more single Hangul syllables separated by single spaces are joined
  ("발 명 의 명 칭" becomes "발명의명칭"), as in letter-spaced headings.

References, each rewritten to one canonical form and given fixed tokens:
- Articles: "제29조", "29조" and "29 조" become "제29조" (token "제29조"). A branch article
  "제42조의2" or "제42조의 2" becomes "제42조의2", which is a different token from "제42조".
  The heading of an article in a statute, a reference that starts a line and is followed by
  its title in brackets ("제64조(출원공개)"), also gets the token "조문:제64조". Search adds
  that token to every query that cites the article (keyword.analyze_query), so the article's
  own text ranks above the many texts that only cite it.
- Paragraphs and items that follow an article: "제29조제2항", "제29조 2항", "29조 2항" and
  "제29조②" become "제29조 제2항" with the tokens "제29조" and "제29조제2항". A following
  item adds "제29조제2항제3호". The combined token makes a question about one paragraph
  rank the chunks that cite exactly that paragraph above those that cite only the article.
- Claims: "청구항 1", "청구항1", "청구항 제1항", "claim 1" and a "제1항" that no article
  precedes become "청구항1" (tokens "청구항1" and "청구항"). Lists keep their connectors:
  "청구항 1, 2 및 5" becomes "청구항1, 청구항2 및 청구항5".
- Ranges: in "청구항 1 내지 3", "제1항 내지 제3항", "청구항 1 ~ 3", "제1-3항", "claims 1-3"
  and "claims 1 to 3" the text keeps both ends ("청구항1 내지 청구항3"), and the reference of
  the last number also carries the tokens of the numbers between them ("청구항2"). So a
  question about claim 2 finds the chunk. Paragraph ranges of a named article work alike:
  "제29조 제1항 내지 제3항" adds "제29조제2항". The connectors 내지, 부터, ~, -, – and "to"
  or "through" mark a range. A range whose ends are more than MAX_RANGE_LENGTH apart, or
  one that counts down, keeps its two ends only.
- Application numbers: "10-2020-0012345", "10 2020 0012345" and "1020200012345" become the
  13 digits, one token.

Why a bare "제N항" is a claim, and when it is a paragraph instead: patent specifications
and office actions cite claims as "제1항에 있어서" or "청구항 제1항 내지 제6항", while
statutes cite paragraphs of the current article as "제1항". The text alone decides, so a
query and a chunk with the same words get the same tokens. A "제N항" is a paragraph when
1. a list connector (",", "및", "또는", "내지", "부터", "-") joins it to a previous paragraph
   or claim reference, whose kind and article it takes ("제36조제1항부터 제3항까지" cites
   paragraph 3 of article 36);
2. "같은 조" or "동조" precedes it, naming the last article cited ("제42조제3항 또는 같은
   조 제4항"), or "이 조" or "본조" precedes it, naming the current article;
3. an item follows it ("제1항제2호", "제1항 각 호"), because claims have no items;
4. the text contains a line that starts with a circled number, which is how statutes lay
   out their paragraphs.
Otherwise it is a claim.

Numbers followed by "조" are also a counter of sets ("2조의 롤러") and a unit of money
("3조 원"). Amounts of money are excluded. Words that start with 조 or 항 after an
ordinal, as in "제1 조성물" or "제1 항체", are not references, because only particles may
follow a reference.
NOTE: a counter of sets still becomes an article ("2조의 롤러" yields "제2조").

Change NORMALIZATION_VERSION with every change of the output: the manifest records it,
readers reject an index made with another version, and builds do not reuse its vectors.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

NORMALIZATION_VERSION = 2

# The largest distance between the two ends of a range whose numbers in between get tokens.
# Claim sets rarely exceed a few dozen claims, so a longer "range" is more likely a misread
# number ("청구항 1 - 200"), and the cap bounds the tokens that one reference adds.
MAX_RANGE_LENGTH = 50

# The token of the word "청구항", which every claim reference also yields. It is no
# identifier: it matches all claims.
CLAIM_WORD = "청구항"
_HEADING_PREFIX = "조문:"

ReferenceKind = Literal["article", "paragraph", "claim", "application"]

# Full-width ASCII, the ideographic space, and the Latin ligatures ﬀ to ﬆ.
_CHARACTER_MAP: dict[int, str] = {code: chr(code - 0xFEE0) for code in range(0xFF01, 0xFF5F)}
_CHARACTER_MAP[0x3000] = " "
_CHARACTER_MAP.update({code: unicodedata.normalize("NFKC", chr(code)) for code in range(0xFB00, 0xFB07)})

# Decimal digits other than ASCII ones: Python's \d matches every Unicode decimal digit.
_OTHER_DIGIT = re.compile(r"(?![0-9])\d")
_INLINE_SPACE = re.compile(r"[^\S\n]+")

# Three or more single Hangul syllables separated by single spaces. The original word
# breaks are lost, so the run is joined into one word, which the morpheme analyzer splits.
# NOTE: a sentence of three or more one-syllable words ("그 두 수 중") is joined as well.
_LETTER_SPACED = re.compile(r"(?<![^\s])[가-힣](?: [가-힣]){2,}(?![^\s])")

# Only particles, endings and the next part of a citation may follow 조 or 항 in a reference.
# Anything else that starts with a Hangul syllable continues a word ("제1 조성물", "제1 항체").
_AFTER_ARTICLE = r"(?=$|[^가-힣]|(?:에서|에|의|은|는|가|을|를|과|와|및|으로|로|부터|까지|내지|또는|이나|제|단서|본문|전단|후단))"
_AFTER_PARAGRAPH = r"(?=$|[^가-힣]|(?:에서|에|의|은|는|이|가|을|를|과|와|및|으로|부터|까지|내지|또는|이나|중|도|제|단서|본문|전단|후단))"
_NOT_MONEY = r"(?!\s?(?:원|달러|엔|위안|유로|\d+\s?(?:억|만|천)))"
# A number in a list of claims, unless a counter or unit follows it ("청구항 1 및 2개의").
_LIST_NUMBER = r"(?:제\s?)?\d{1,3}(?![\d.])(?!\s?(?:개|년|월|일|명|회|번|차|층|mm|cm|%))(?:\s?항)?"

_REFERENCE = re.compile(
    # Claims named as such, with any list that follows.
    rf"(?P<claims>청구항\s?{_LIST_NUMBER}(?:\s?(?:,|및|또는|내지|~|-|와|과)\s?{_LIST_NUMBER})*)"
    r"|(?P<english_claims>\bclaims?\s?\d{1,3}(?![\d.])(?:\s?(?:,|and|or|to|through|-|–)\s?\d{1,3}(?![\d.]))*)"
    # Korean application numbers: type code, year, serial number.
    r"|(?<![0-9\-])(?P<application>(?:10|20|30|40)[-‐‑– ]?(?:19|20)\d{2}[-‐‑– ]?\d{7})(?![0-9])"
    # An article with an optional branch, paragraph and item.
    r"|(?:(?<![가-힣0-9A-Za-z])제\s?|(?<![0-9A-Za-z.,\-/]))(?P<article>\d{1,4})\s?조"
    rf"(?:\s?의\s?(?P<branch>\d{{1,3}})(?!\d)|{_AFTER_ARTICLE}){_NOT_MONEY}"
    rf"(?:\s*(?:제\s?)?(?P<paragraph>\d{{1,2}})\s?항{_AFTER_PARAGRAPH}|[ ]?(?P<circled>[①-⑳]))?"
    rf"(?(paragraph)(?:\s?(?:제\s?)?(?P<item>\d{{1,3}})\s?호{_AFTER_PARAGRAPH})?)"
    # A paragraph or claim number without an article, or a range of them ("제1-6항").
    rf"|(?<![가-힣0-9])제\s?(?P<number>\d{{1,3}})(?:\s?[-~]\s?(?P<number_to>\d{{1,3}}))?\s?항{_AFTER_PARAGRAPH}",
    re.IGNORECASE,
)
_CLAIM_NUMBER = re.compile(r"(?:제\s?)?(\d{1,3})(?:\s?항)?")
_ENGLISH_CLAIM_NUMBER = re.compile(r"(\d{1,3})")
_CONNECTOR = re.compile(r"\s?(?:,|·|및|또는|내지|부터|와|과|이나|-|~)?\s?")
# A connector that makes the two numbers it joins the ends of a range, not two list items.
_RANGE_CONNECTORS = frozenset({"내지", "부터", "~", "-", "–", "to", "through"})
_RANGE_JOIN = re.compile(r"\s?(?:" + "|".join(map(re.escape, _RANGE_CONNECTORS)) + r")\s?", re.IGNORECASE)
_HANGUL_SYLLABLE = re.compile(r"[가-힣]")
_SAME_ARTICLE = re.compile(r"(?:같은|동)\s?조\s?$")
_THIS_ARTICLE = re.compile(r"(?:이|본)\s?조\s?$")
# Statutes start each paragraph on a new line with its circled number.
# NOTE: a chunk of a statute that starts and ends inside one paragraph has no such line, so
# its bare "제N항" become claims.
_STATUTE_LAYOUT = re.compile(r"(?m)^\s?[①-⑳]")
# The title in brackets after an article reference that starts a line.
_HEADING_TITLE = re.compile(r" ?\(")
# Characters before a bare "제N항" searched for "같은 조" and the like.
_CONTEXT_CHARS = 8
# An item after a bare "제N항", which makes it a paragraph.
_ITEM_AFTER = re.compile(r"\s?(?:제\s?\d{1,3}\s?호|각\s?호)")


@dataclass(frozen=True)
class Reference:
    """A reference in a canonical text: its kind, its span and the BM25 tokens it stands for.

    ``article`` is the cited article ("제42조의2") of an article or paragraph reference,
    when the text names it, and None otherwise.
    """

    kind: ReferenceKind
    start: int
    end: int
    tokens: tuple[str, ...]
    article: str | None = None

    @property
    def identifiers(self) -> tuple[str, ...]:
        """The tokens that name this reference and no other: all but the word "청구항"."""
        return tuple(token for token in self.tokens if token != CLAIM_WORD)


@dataclass(frozen=True)
class NormalizedText:
    """The canonical form of a text, and the references in it in text order."""

    text: str
    references: tuple[Reference, ...]


def normalize(text: str) -> NormalizedText:
    """Return the canonical text of ``text`` and the references in it.

    The function is idempotent: normalizing the canonical text again returns it unchanged,
    with the same references.
    """
    base = fold_characters(text)
    return _Rewriter(base).run()


def normalize_text(text: str) -> str:
    """Return the canonical text of ``text``, the form that the dense model embeds."""
    return normalize(text).text


def reference_tokens(text: str) -> list[str]:
    """Return the BM25 tokens of the references in ``text``, in text order."""
    return [token for reference in normalize(text).references for token in reference.tokens]


def heading_token(article: str) -> str:
    """Return the token of the heading of ``article`` ("제64조") in a statute."""
    return _HEADING_PREFIX + article


def fold_characters(text: str) -> str:
    """Apply the character rules: NFC, width and digit folding, spaces and letter-spaced words."""
    text = unicodedata.normalize("NFC", text)
    text = text.translate(_CHARACTER_MAP)
    text = _OTHER_DIGIT.sub(lambda match: str(unicodedata.decimal(match.group())), text)
    text = _INLINE_SPACE.sub(" ", text)
    return join_letter_spacing(text)


def join_letter_spacing(text: str) -> str:
    """Join runs of three or more single Hangul syllables separated by single spaces."""
    return _LETTER_SPACED.sub(lambda match: match.group(0).replace(" ", ""), text)


class _Rewriter:
    """One pass over a folded text that replaces each reference with its canonical form."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.statute_layout = bool(_STATUTE_LAYOUT.search(text))
        self.pieces: list[str] = []
        self.length = 0
        self.references: list[Reference] = []
        # Context for a bare "제N항": the previous reference and the last article cited.
        self.previous_end = -1
        self.previous_kind: ReferenceKind | None = None
        self.previous_article: str | None = None
        self.last_article: str | None = None
        # The claim or paragraph number of the previous reference, the start of a possible range.
        self.previous_number: int | None = None

    def run(self) -> NormalizedText:
        position = 0
        for match in _REFERENCE.finditer(self.text):
            self._append(self.text[position : match.start()])
            if match.group("claims") is not None:
                self._claims(match.group("claims")[len("청구항") :], _CLAIM_NUMBER, self._claim_range_start(match))
            elif match.group("english_claims") is not None:
                numbers_text = match.group("english_claims")[len("claim") :].lstrip("sS")
                self._claims(numbers_text, _ENGLISH_CLAIM_NUMBER, self._claim_range_start(match))
            elif match.group("application") is not None:
                digits = re.sub(r"\D", "", match.group("application"))
                self._reference("application", digits, (digits,))
            elif match.group("article") is not None:
                self._article(match)
            else:
                self._bare_number(match)
            self.previous_end = match.end()
            position = match.end()
        self._append(self.text[position:])
        return NormalizedText("".join(self.pieces), tuple(self.references))

    def _append(self, text: str) -> None:
        self.pieces.append(text)
        self.length += len(text)

    def _reference(
        self, kind: ReferenceKind, text: str, tokens: tuple[str, ...], article: str | None = None
    ) -> None:
        self.references.append(Reference(kind, self.length, self.length + len(text), tokens, article))
        self._append(text)

    def _claim_range_start(self, match: re.Match[str]) -> int | None:
        """Return the claim number that starts a range ending in ``match``, as in "청구항1 내지 청구항3"."""
        joining = self.text[self.previous_end : match.start()]
        if self.previous_kind == "claim" and _RANGE_JOIN.fullmatch(joining):
            return self.previous_number
        return None

    def _claims(self, numbers_text: str, number_pattern: re.Pattern[str], range_start: int | None) -> None:
        """Write each claim number of a list as "청구항N", keeping the connectors between them.

        ``range_start`` is the claim number of a previous reference that starts a range
        ending at the first number here.
        """
        position = 0
        previous: int | None = range_start
        for match in number_pattern.finditer(numbers_text):
            number = int(match.group(1))
            connector = numbers_text[position : match.start()].strip()
            if connector == ",":
                self._append(", ")
            elif connector in ("-", "~", "–"):
                self._append("-")
            elif connector:
                self._append(f" {connector} ")
            is_range = connector.lower() in _RANGE_CONNECTORS or (position == 0 and range_start is not None)
            between = _between(previous, number) if is_range else ()
            self._claim(number, between)
            previous = number
            position = match.end()
        self.previous_kind, self.previous_article, self.previous_number = "claim", None, previous

    def _claim(self, number: int, between: Sequence[int] = ()) -> None:
        """Write "청구항N"; ``between`` are the numbers of a range that ends here, before N."""
        tokens = (*(f"청구항{inner}" for inner in between), f"청구항{number}", CLAIM_WORD)
        self._reference("claim", f"청구항{number}", tokens)

    def _paragraph(self, number: int, article: str | None, between: Sequence[int] = ()) -> None:
        """Write "제N항" of ``article``; ``between`` are the numbers of a range that ends here, before N."""
        # A question rarely yields a paragraph token without its article ("제2항"), because a
        # bare "제2항" in a question is read as a claim. Filling in such a range would mostly
        # lengthen the chunk, which lowers its BM25 score for every other query.
        if article is None:
            between = ()
        tokens = tuple(f"{article or ''}제{paragraph}항" for paragraph in (*between, number))
        self._reference("paragraph", f"제{number}항", tokens, article)

    def _article(self, match: re.Match[str]) -> None:
        article = f"제{int(match.group('article'))}조"
        if match.group("branch") is not None:
            article += f"의{int(match.group('branch'))}"
        text, tokens = article, [article]

        paragraph = match.group("paragraph")
        if match.group("circled") is not None:
            paragraph = str(ord(match.group("circled")) - ord("①") + 1)
        if paragraph is not None:
            text += f" 제{int(paragraph)}항"
            tokens.append(f"{article}제{int(paragraph)}항")
            if match.group("item") is not None:
                text += f" 제{int(match.group('item'))}호"
                tokens.append(f"{tokens[-1]}제{int(match.group('item'))}호")

        # A heading starts a line and its title follows in brackets.
        starts_line = match.start() == 0 or self.text[match.start() - 1] == "\n"
        if paragraph is None and starts_line and _HEADING_TITLE.match(self.text, match.end()):
            tokens.append(heading_token(article))

        # A bare number glued to a word ("의2조") gets a space before its "제": glued, the
        # "제" would read as part of that word next time, and normalising again would add
        # another "제" ("의제제2조").
        if match.group(0)[0].isdigit() and match.start() > 0 and _HANGUL_SYLLABLE.match(self.text[match.start() - 1]):
            self._append(" ")
        kind: ReferenceKind = "article" if paragraph is None else "paragraph"
        self._reference(kind, text, tuple(tokens), article)
        self.previous_kind, self.previous_article, self.last_article = kind, article, article
        self.previous_number = None if paragraph is None else int(paragraph)

    def _bare_number(self, match: re.Match[str]) -> None:
        """Write a "제N항" or "제N-M항" without an article as claims or as paragraphs (see the module rules)."""
        numbers = [int(match.group("number"))]
        if match.group("number_to") is not None:
            numbers.append(int(match.group("number_to")))

        # 1. Joined by a list connector to the previous reference: the same kind and article,
        #    and with a range connector, the numbers between the two as well.
        before = self.text[max(0, match.start() - _CONTEXT_CHARS) : match.start()]
        article: str | None = None
        range_start: int | None = None
        joining = self.text[self.previous_end : match.start()]
        if self.previous_kind in ("claim", "paragraph") and _CONNECTOR.fullmatch(joining):
            kind, article = self.previous_kind, self.previous_article
            if _RANGE_JOIN.fullmatch(joining):
                range_start = self.previous_number
        # 2. "같은 조 제4항" cites the last article named. "이 조 제4항" cites the current one, below.
        elif _SAME_ARTICLE.search(before):
            kind, article = "paragraph", self.last_article
        # 3. Items, and the layout of a statute.
        elif (
            _THIS_ARTICLE.search(before)
            or _ITEM_AFTER.match(self.text, match.end())
            or self.statute_layout
        ):
            kind = "paragraph"
        # 4. Specifications, office actions and questions cite claims.
        else:
            kind = "claim"

        # In "제1-6항" the second number ends a range that starts at the first. The first number
        # ends a range only when a range connector joins it to the previous reference.
        for index, number in enumerate(numbers):
            if index:
                self._append("-")
            start = numbers[0] if index else range_start
            between = _between(start, number)
            if kind == "claim":
                self._claim(number, between)
            else:
                self._paragraph(number, article, between)
        self.previous_kind, self.previous_article, self.previous_number = kind, article, numbers[-1]


def _between(start: int | None, end: int) -> range:
    """Return the numbers strictly between the ends of a range, or none when the ends are reversed or too far apart."""
    if start is None or not 0 < end - start <= MAX_RANGE_LENGTH:
        return range(0)
    return range(start + 1, end)


__all__ = [
    "CLAIM_WORD",
    "MAX_RANGE_LENGTH",
    "NORMALIZATION_VERSION",
    "NormalizedText",
    "Reference",
    "fold_characters",
    "heading_token",
    "join_letter_spacing",
    "normalize",
    "normalize_text",
    "reference_tokens",
]
