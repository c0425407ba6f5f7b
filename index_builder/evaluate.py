"""Retrieval evaluation: a golden set of questions, and recall@k and MRR for each search mode.

A golden set is a JSON Lines file with one question per line and the pages that answer it
(data/eval/README.md gives the format). ``load_golden`` validates every line and raises
GoldenSetError naming the line and the field. ``evaluate`` searches each question in each
mode and returns an EvaluationResult with the scores and, per question, the rank of the
first correct hit and the top hits, so misses can be inspected.

A hit is correct when its file name and page equal one of the item's expected pages, or,
for an item that names an article, when the hit's text contains that article's heading
(``제64조(``, whitespace ignored). Follow-up questions are searched as their ``standalone``
rewrite, because the chat app searches the rewritten query and not the chat history.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from index_builder.errors import IndexBuilderError
from index_builder.reader import SEARCH_MODES
from index_builder.store import Hit

logger = logging.getLogger(__name__)

# The kinds of question a golden item may be. They only group the scores.
KINDS = (
    "formal",
    "colloquial",
    "article_number_variant",
    "application_number",
    "claim_reference",
    "follow_up",
    "english",
)
# Hits retrieved per question. Recall is reported at 1, 5 and 10, and MRR counts a first
# correct hit below this depth as 0 (MRR@10).
DEPTH = 10
RECALL_CUTOFFS = (1, 5, 10)
# Hits kept per question in the result, for reading misses.
TOP_HITS_KEPT = 5

_FIELDS = ("id", "question", "kind", "expected", "article", "evidence", "history", "standalone")
_ARTICLE = re.compile(r"^제\d+조(의\d+)?$")
_WHITESPACE = re.compile(r"\s+")
_FORMAT_HINT = "See data/eval/README.md for the format."


class GoldenSetError(IndexBuilderError, ValueError):
    """A golden set file that is missing or has an invalid line. The message names the line and field."""

    def __init__(self, message: str, *, path: Path, line: int | None = None, field_name: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.field_name = field_name


class Searcher(Protocol):
    """The one method of IndexReader that evaluate calls."""

    def search(self, query: str, k: int = 5, mode: str = "hybrid") -> list[Hit]: ...


@dataclass(frozen=True)
class ExpectedPage:
    """A page that answers a golden question. ``page`` is 1-based, as the index stores it."""

    file: str
    page: int


@dataclass(frozen=True)
class GoldenItem:
    """One question of a golden set, with what counts as a correct hit."""

    id: str
    question: str
    kind: str
    expected: tuple[ExpectedPage, ...]
    article: str | None = None
    evidence: str | None = None
    history: tuple[str, ...] = ()
    standalone: str | None = None
    line: int = 0

    @property
    def search_query(self) -> str:
        """The query to search: the standalone rewrite of a follow-up, else the question."""
        return self.standalone or self.question

    def is_correct(self, hit: Hit) -> bool:
        """Return whether ``hit`` answers this question."""
        if any(hit.file_name == page.file and hit.page == page.page for page in self.expected):
            return True
        if self.article is None:
            return False
        return f"{self.article}(" in _WHITESPACE.sub("", hit.text)


@dataclass(frozen=True)
class HitRef:
    """The file, page and chunk id of a retrieved chunk."""

    file: str
    page: int
    chunk_id: int


@dataclass(frozen=True)
class ItemResult:
    """The outcome of one question in one mode. ``rank`` is 1-based, None when no hit within DEPTH is correct."""

    id: str
    kind: str
    query: str
    rank: int | None
    top_hits: tuple[HitRef, ...]

    def found_within(self, k: int) -> bool:
        return self.rank is not None and self.rank <= k


@dataclass(frozen=True)
class Scores:
    """Recall at 1, 5 and 10 and MRR@10 over ``count`` questions, each between 0 and 1."""

    count: int
    recall_at_1: float
    recall_at_5: float
    recall_at_10: float
    mrr: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "questions": self.count,
            "recall@1": self.recall_at_1,
            "recall@5": self.recall_at_5,
            "recall@10": self.recall_at_10,
            "mrr": self.mrr,
        }


def score_ranks(ranks: Sequence[int | None]) -> Scores:
    """Return the scores of questions whose first correct hits are at ``ranks`` (None: not found)."""
    if not ranks:
        return Scores(0, 0.0, 0.0, 0.0, 0.0)
    count = len(ranks)
    recalls = [sum(1 for rank in ranks if rank is not None and rank <= k) / count for k in RECALL_CUTOFFS]
    mrr = sum(1.0 / rank for rank in ranks if rank is not None and rank <= DEPTH) / count
    return Scores(count, recalls[0], recalls[1], recalls[2], mrr)


@dataclass(frozen=True)
class ModeResult:
    """The scores of one search mode over the whole golden set, with every question's outcome."""

    mode: str
    scores: Scores
    items: tuple[ItemResult, ...]
    seconds: float

    def scores_where(self, kinds: Iterable[str]) -> Scores:
        """Return the scores over the questions of the given kinds only."""
        wanted = set(kinds)
        return score_ranks([item.rank for item in self.items if item.kind in wanted])

    def by_kind(self) -> dict[str, Scores]:
        present = [kind for kind in KINDS if any(item.kind == kind for item in self.items)]
        return {kind: self.scores_where([kind]) for kind in present}

    def misses(self, k: int = 5) -> list[ItemResult]:
        """Return the questions with no correct hit in the top ``k``."""
        return [item for item in self.items if not item.found_within(k)]


@dataclass(frozen=True)
class EvaluationResult:
    """The result of evaluating one index on one golden set, per search mode."""

    golden: str
    questions: int
    modes: dict[str, ModeResult] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "golden": self.golden,
            "questions": self.questions,
            "modes": {
                mode: {
                    **result.scores.to_dict(),
                    "seconds": round(result.seconds, 3),
                    "by_kind": {kind: scores.to_dict() for kind, scores in result.by_kind().items()},
                    "items": [
                        {
                            "id": item.id,
                            "kind": item.kind,
                            "query": item.query,
                            "rank": item.rank,
                            "top_hits": [
                                {"file": hit.file, "page": hit.page, "chunk_id": hit.chunk_id} for hit in item.top_hits
                            ],
                        }
                        for item in result.items
                    ],
                }
                for mode, result in self.modes.items()
            },
        }


def evaluate(
    searcher: Searcher, items: Sequence[GoldenItem], modes: Sequence[str] = SEARCH_MODES, *, golden: str = ""
) -> EvaluationResult:
    """Search every item's query in every mode and score the ranks of the first correct hits."""
    unknown = [mode for mode in modes if mode not in SEARCH_MODES]
    if unknown:
        raise ValueError(f"search mode {unknown[0]!r} is unknown. Use one of {', '.join(SEARCH_MODES)}.")

    results: dict[str, ModeResult] = {}
    for mode in modes:
        started = time.perf_counter()
        outcomes = []
        for item in items:
            hits = searcher.search(item.search_query, k=DEPTH, mode=mode)
            rank = next((number for number, hit in enumerate(hits, start=1) if item.is_correct(hit)), None)
            top = tuple(HitRef(hit.file_name, hit.page, hit.chunk_id) for hit in hits[:TOP_HITS_KEPT])
            outcomes.append(ItemResult(item.id, item.kind, item.search_query, rank, top))
        seconds = time.perf_counter() - started
        results[mode] = ModeResult(mode, score_ranks([outcome.rank for outcome in outcomes]), tuple(outcomes), seconds)
        logger.info(
            "Evaluated %d questions in %s mode: recall@5 %.3f, MRR %.3f (%.1f s)",
            len(items),
            mode,
            results[mode].scores.recall_at_5,
            results[mode].scores.mrr,
            seconds,
        )
    return EvaluationResult(golden=golden, questions=len(items), modes=results)


def unreachable_pages(items: Sequence[GoldenItem], indexed: set[tuple[str, int]]) -> list[str]:
    """Describe each expected page that no chunk of the index comes from.

    Such a page can never be found, so a typo in a file name or page number would only
    lower recall without a word.
    """
    problems = []
    for item in items:
        for expected in item.expected:
            if (expected.file, expected.page) not in indexed:
                problems.append(f"{item.id}: page {expected.page} of {expected.file} is not in the index")
    return problems


def load_golden(path: str | Path) -> list[GoldenItem]:
    """Read and validate the golden set at ``path``. Raises GoldenSetError on the first invalid line."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GoldenSetError(f"golden set {path} not found. Pass an existing .jsonl file.", path=path) from None
    except (OSError, UnicodeDecodeError) as error:
        raise GoldenSetError(f"golden set {path} cannot be read as UTF-8 text: {error}", path=path) from error

    items: list[GoldenItem] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        item = parse_golden_line(line, path=path, number=number)
        if item.id in seen:
            raise GoldenSetError(
                f"{path}:{number}: field 'id': {item.id!r} is already used on line {seen[item.id]}. Give each question its own id.",
                path=path,
                line=number,
                field_name="id",
            )
        seen[item.id] = number
        items.append(item)
    if not items:
        raise GoldenSetError(f"golden set {path} contains no questions. Add one JSON object per line.", path=path)
    return items


def parse_golden_line(text: str, *, path: Path, number: int) -> GoldenItem:
    """Parse line ``number`` of a golden set. Raises GoldenSetError naming ``path``, the line and the field."""

    def fail(field_name: str | None, problem: str) -> GoldenSetError:
        where = f"{path}:{number}" + (f": field {field_name!r}" if field_name else "")
        return GoldenSetError(f"{where}: {problem}. {_FORMAT_HINT}", path=path, line=number, field_name=field_name)

    # 1. A JSON object with known fields only, so a misspelt field is not silently ignored.
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise fail(None, f"invalid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(data, dict):
        raise fail(None, f"expected a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise fail(unknown[0], f"unknown field. Allowed fields: {', '.join(_FIELDS)}")

    # 2. The required text fields.
    for name in ("id", "question", "kind"):
        value = data.get(name)
        if not isinstance(value, str) or not value.strip():
            raise fail(name, f"must be a non-empty string, got {value!r}")
    if data["kind"] not in KINDS:
        raise fail("kind", f"{data['kind']!r} is not one of {', '.join(KINDS)}")

    # 3. What counts as correct: pages, an article, or both.
    expected = _parse_expected(data.get("expected", []), fail)
    article = data.get("article")
    if article is not None and (not isinstance(article, str) or not _ARTICLE.match(article)):
        raise fail("article", f"must look like '제64조' or '제42조의2', got {article!r}")
    if not expected and article is None:
        raise fail("expected", "is empty and no 'article' is given, so no hit could count as correct")
    evidence = data.get("evidence")
    if evidence is not None and (not isinstance(evidence, str) or not evidence.strip()):
        raise fail("evidence", f"must be a non-empty string, got {evidence!r}")

    # 4. Follow-ups carry the earlier questions and the rewrite that retrieval searches.
    history = data.get("history")
    standalone = data.get("standalone")
    if history is not None and (
        not isinstance(history, list) or not history or not all(isinstance(h, str) and h.strip() for h in history)
    ):
        raise fail("history", f"must be a non-empty list of earlier questions, got {history!r}")
    if standalone is not None and (not isinstance(standalone, str) or not standalone.strip()):
        raise fail("standalone", f"must be a non-empty string, got {standalone!r}")
    if data["kind"] == "follow_up" and (history is None or standalone is None):
        missing = "history" if history is None else "standalone"
        raise fail(missing, "is required for a follow_up question")
    if standalone is not None and history is None:
        raise fail("history", "is required when 'standalone' is given")

    return GoldenItem(
        id=data["id"],
        question=data["question"],
        kind=data["kind"],
        expected=expected,
        article=article,
        evidence=evidence,
        history=tuple(history or ()),
        standalone=standalone,
        line=number,
    )


def _parse_expected(value: object, fail) -> tuple[ExpectedPage, ...]:
    if not isinstance(value, list):
        raise fail("expected", f"must be a list of {{\"file\": ..., \"page\": ...}} objects, got {value!r}")
    pages = []
    for index, entry in enumerate(value):
        name = f"expected[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"file", "page"}:
            raise fail(name, f"must be an object with exactly 'file' and 'page', got {entry!r}")
        if not isinstance(entry["file"], str) or not entry["file"].strip():
            raise fail(f"{name}.file", f"must be a non-empty file name, got {entry['file']!r}")
        page = entry["page"]
        if isinstance(page, bool) or not isinstance(page, int) or page < 1:
            raise fail(f"{name}.page", f"must be an integer of at least 1 (pages count from 1), got {page!r}")
        pages.append(ExpectedPage(entry["file"], page))
    return tuple(pages)


def format_table(result: EvaluationResult, *, misses: bool = False) -> str:
    """Render ``result`` as plain-text tables: scores per mode, recall@5 per kind, and optionally the misses."""
    lines = [f"Golden set: {result.golden} ({result.questions} questions)", ""]
    lines.append(f"{'mode':<8} {'recall@1':>9} {'recall@5':>9} {'recall@10':>10} {'MRR@10':>7}")
    for mode, mode_result in result.modes.items():
        scores = mode_result.scores
        lines.append(
            f"{mode:<8} {scores.recall_at_1:>9.3f} {scores.recall_at_5:>9.3f} {scores.recall_at_10:>10.3f} {scores.mrr:>7.3f}"
        )

    modes = list(result.modes)
    lines += ["", "recall@5 by kind", f"{'kind':<24} {'questions':>9} " + " ".join(f"{mode:>8}" for mode in modes)]
    first = next(iter(result.modes.values()), None)
    for kind, kind_scores in (first.by_kind() if first else {}).items():
        cells = " ".join(f"{result.modes[mode].scores_where([kind]).recall_at_5:>8.3f}" for mode in modes)
        lines.append(f"{kind:<24} {kind_scores.count:>9} {cells}")

    if misses:
        for mode, mode_result in result.modes.items():
            missed = mode_result.misses(5)
            lines += ["", f"Missed at 5 in {mode} mode: {len(missed)}"]
            for item in missed:
                top = ", ".join(f"{hit.file} p{hit.page}" for hit in item.top_hits[:3]) or "no hits"
                rank = f"rank {item.rank}" if item.rank else "not in top 10"
                lines.append(f"  {item.id} ({rank}): {item.query}  -> {top}")
    return "\n".join(lines)


__all__ = [
    "DEPTH",
    "KINDS",
    "EvaluationResult",
    "ExpectedPage",
    "GoldenItem",
    "GoldenSetError",
    "ItemResult",
    "ModeResult",
    "Scores",
    "Searcher",
    "evaluate",
    "format_table",
    "load_golden",
    "parse_golden_line",
    "score_ranks",
]
