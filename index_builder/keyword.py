"""The keyword index: BM25 over Korean morphemes, stored in each index folder beside the vectors.

all-MiniLM-L6-v2 splits every Hangul syllable into about three word pieces, so dense search
alone misses most Korean questions. Kiwi cuts text into morphemes ("특허출원은" becomes
"특허", "출원", "은"), and BM25 over the content morphemes matches a question's terms
against the chunks that contain them, whatever particles and endings surround them.

Documents and queries pass through the same analysis: normalize.py first rewrites the text
to its canonical form, and each legal or patent reference it finds ("제29조 제2항",
"청구항1", an application number) reaches Kiwi as one pre-tokenized span, which becomes
that reference's tokens instead of loose numbers.

On disk, ``keyword/`` contains bm25s's own files (NumPy arrays and JSON, loaded without
pickle) and ``chunk_ids.json``, which maps BM25's row numbers to chunk ids. The keyword
folder of an index without chunks contains only ``chunk_ids.json``, because bm25s cannot
index an empty corpus.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import bm25s

from index_builder.errors import IndexFormatError, IndexNotFoundError, repair_advice
from index_builder.normalize import NormalizedText, heading_token, normalize

if TYPE_CHECKING:
    from kiwipiepy import Kiwi, Token

logger = logging.getLogger(__name__)

KEYWORD_DIR = "keyword"
CHUNK_IDS_FILE = "chunk_ids.json"

# Kiwi tag prefixes of the morphemes that carry meaning: nouns (N*), verb and adjective
# stems (VV, VA), roots (XR), numbers (SN), Latin (SL) and Hanja (SH). Particles (J*),
# endings (E*), affixes and punctuation are dropped.
_CONTENT_TAGS = ("NN", "NP", "NR", "VV", "VA", "XR", "SN", "SL", "SH", "MAG")

# Patent terms that Kiwi 0.24 splits one way in one sentence and another way in the next.
# "청구항" came out whole beside a pre-tokenized span and as "청구" + "항" elsewhere.
# "특허법상" gave "특허법", but "특허법 제64조" gave "특허" + "법". As user words they are
# always one token, which the token "청구항" of claim references must match.
_USER_WORDS = (
    ("청구항", "NNG"),
    ("특허법", "NNP"),
    ("실용신안법", "NNP"),
    ("디자인보호법", "NNP"),
    ("상표법", "NNP"),
)

# Reciprocal rank fusion's constant, 60 as in Cormack, Clarke and Buettcher (SIGIR 2009):
# it damps the weight of the very top ranks so neither ranking dominates.
RRF_K = 60

_kiwi_lock = threading.Lock()


@cache
def _kiwi() -> Kiwi:
    from kiwipiepy import Kiwi

    logger.info("loading the Kiwi Korean morpheme analyzer")
    kiwi = Kiwi()
    for word, tag in _USER_WORDS:
        kiwi.add_user_word(word, tag)
    return kiwi


def analyze(text: str) -> list[str]:
    """Return the BM25 tokens of `text`: reference tokens and content morphemes, Latin lower-cased."""
    return _analyze_normalized(normalize(text))


def analyze_query(text: str) -> list[str]:
    """Return the BM25 tokens of a search query: those of analyze(), plus the heading of each cited article.

    A question about "제64조" then matches the statute's heading "제64조(출원공개)" twice,
    once as a citation and once as the heading, and ranks the article's own text first.
    """
    normalized = normalize(text)
    return _analyze_normalized(normalized) + _cited_headings(normalized)


def query_identifiers(text: str) -> list[str]:
    """Return the distinct tokens that identify what a query cites: articles, their headings, application numbers.

    Examples are "제29조", "제29조제2항", "조문:제29조" and "1020200012345". Hybrid search
    ranks chunks that contain more of them first. Claims are left out, because every
    patent numbers its own claims, so "청구항5" identifies no single text.
    """
    normalized = normalize(text)
    identifiers = [
        token
        for reference in normalized.references
        if reference.kind != "claim"
        for token in reference.identifiers
    ]
    return list(dict.fromkeys(identifiers + _cited_headings(normalized)))


def _cited_headings(normalized: NormalizedText) -> list[str]:
    articles = [reference.article for reference in normalized.references if reference.article is not None]
    return [heading_token(article) for article in dict.fromkeys(articles)]


def _analyze_normalized(normalized: NormalizedText) -> list[str]:
    # NOTE: Kiwi's documentation does not promise thread safety, and the chat app searches
    # from several threads, so calls are serialised. Analysis takes about 1 ms per question.
    with _kiwi_lock:
        tokens = _kiwi().tokenize(normalized.text, pretokenized=_pretokenized(normalized))
    return _content_tokens(normalized, tokens)


def analyze_many(texts: Sequence[str]) -> list[list[str]]:
    """Analyze many texts at once, which Kiwi does faster than one call per text."""
    normalized = [normalize(text) for text in texts]
    # For a list of texts, Kiwi calls `pretokenized` with each text to get its spans.
    spans = {item.text: _pretokenized(item) for item in normalized}
    with _kiwi_lock:
        results = _kiwi().tokenize([item.text for item in normalized], pretokenized=spans.__getitem__)
    return [_content_tokens(item, tokens) for item, tokens in zip(normalized, results, strict=True)]


def _pretokenized(normalized: NormalizedText) -> list[tuple[int, int, str]]:
    # Common nouns, like 조 and 항 themselves. As proper nouns (NNP), Kiwi 0.24 also read the
    # title after a heading as one proper noun: "제64조(출원공개)" gave "출원공개", where
    # the question "출원공개는 언제" gives "출원" and "공개".
    return [(reference.start, reference.end, "NNG") for reference in normalized.references]


def _content_tokens(normalized: NormalizedText, tokens: Sequence[Token]) -> list[str]:
    references = {reference.start: reference for reference in normalized.references}
    result: list[str] = []
    for token in tokens:
        reference = references.get(token.start)
        if reference is not None and token.len == reference.end - reference.start:
            result.extend(reference.tokens)
        elif token.tag.startswith(_CONTENT_TAGS):
            result.append(token.form.lower())
    return result


def write_keyword_index(index_dir: Path, chunk_ids: Sequence[int], texts: Sequence[str]) -> None:
    """Build the BM25 index of `texts` and save it under `index_dir`/keyword."""
    folder = index_dir / KEYWORD_DIR
    folder.mkdir(parents=True, exist_ok=True)

    if texts:
        corpus_tokens = analyze_many(texts)
        # bm25s cannot index an empty document; a placeholder token keeps row numbers aligned.
        corpus_tokens = [tokens or ["\u0000"] for tokens in corpus_tokens]
        retriever = bm25s.BM25()
        retriever.index(corpus_tokens, show_progress=False)
        retriever.save(str(folder), show_progress=False)

    # The ids last, so a folder with ids has its BM25 files.
    (folder / CHUNK_IDS_FILE).write_text(json.dumps(list(map(int, chunk_ids))), encoding="utf-8")


class KeywordIndex:
    """A loaded BM25 index that returns chunk ids ranked by their BM25 score."""

    def __init__(self, retriever: bm25s.BM25 | None, chunk_ids: list[int]) -> None:
        # None for an index without chunks.
        self._retriever = retriever
        self._chunk_ids = chunk_ids

    @property
    def chunk_ids(self) -> list[int]:
        """The chunk id of each BM25 row, in row order."""
        return self._chunk_ids

    @classmethod
    def load(cls, index_dir: Path) -> KeywordIndex:
        """Load ``index_dir``/keyword, raising IndexNotFoundError or IndexFormatError with the fix."""
        folder = index_dir / KEYWORD_DIR
        if not folder.is_dir():
            raise IndexNotFoundError(f"keyword index {folder} is missing. {repair_advice(index_dir)}")

        # 1. The row-to-chunk map, written last by the builder.
        chunk_ids = _read_chunk_ids(folder / CHUNK_IDS_FILE, index_dir)
        if not chunk_ids:
            return cls(None, [])

        # 2. bm25s's arrays, which must have one row per chunk id.
        try:
            retriever = bm25s.BM25.load(str(folder), allow_pickle=False, show_progress=False)
        except (OSError, ValueError) as error:
            raise IndexFormatError(
                f"keyword index {folder} is damaged ({error}). {repair_advice(index_dir)}"
            ) from error
        rows = retriever.scores.get("num_docs")
        indices = retriever.scores.get("indices")
        if rows != len(chunk_ids) or (indices is not None and len(indices) and int(indices.max()) >= len(chunk_ids)):
            raise IndexFormatError(
                f"{folder / CHUNK_IDS_FILE} lists {len(chunk_ids)} chunk ids, but the BM25 index in {folder} "
                f"has {rows} rows. {repair_advice(index_dir)}"
            )
        return cls(retriever, chunk_ids)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Return up to `k` (chunk id, BM25 score) pairs, best first, with positive scores only."""
        if self._retriever is None or not self._chunk_ids:
            return []
        tokens = analyze_query(query)
        if not tokens:
            return []

        k = min(k, len(self._chunk_ids))
        rows, scores = self._retriever.retrieve([tokens], k=k, show_progress=False, n_threads=1)
        return [
            (self._chunk_ids[int(row)], float(score))
            for row, score in zip(rows[0], scores[0], strict=True)
            if score > 0 and 0 <= row < len(self._chunk_ids)
        ]

    def count_matches(self, tokens: Sequence[str]) -> dict[int, int]:
        """Return, for each chunk that contains any of `tokens`, how many of them it contains."""
        counts: dict[int, int] = {}
        if self._retriever is None:
            return counts
        # The BM25 matrix is stored by token (CSC): column `token` lists the rows that contain it.
        indptr, rows = self._retriever.scores["indptr"], self._retriever.scores["indices"]
        for token in dict.fromkeys(tokens):
            column = self._retriever.vocab_dict.get(token)
            if column is None:
                continue
            for row in rows[indptr[column] : indptr[column + 1]]:
                chunk_id = self._chunk_ids[int(row)]
                counts[chunk_id] = counts.get(chunk_id, 0) + 1
        return counts


def _read_chunk_ids(file: Path, index_dir: Path) -> list[int]:
    if not file.is_file():
        raise IndexFormatError(f"keyword index file {file} is missing. {repair_advice(index_dir)}")
    try:
        chunk_ids = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise IndexFormatError(f"{file} is not valid JSON ({error}). {repair_advice(index_dir)}") from error
    if not isinstance(chunk_ids, list) or not all(type(chunk_id) is int for chunk_id in chunk_ids):
        raise IndexFormatError(f"{file} is not a list of chunk ids. {repair_advice(index_dir)}")
    if len(set(chunk_ids)) != len(chunk_ids):
        raise IndexFormatError(f"{file} lists a chunk id twice. {repair_advice(index_dir)}")
    return chunk_ids


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], k: int = RRF_K, weights: Sequence[float] | None = None
) -> list[tuple[int, float]]:
    """Fuse several best-first rankings of chunk ids: score = sum of weight / (k + rank).

    `weights` gives one weight per ranking; None weighs them all 1.
    """
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if len(weights) != len(rankings):
        raise ValueError(f"got {len(weights)} weights for {len(rankings)} rankings; give one weight per ranking")
    scores: dict[int, float] = {}
    for weight, ranking in zip(weights, rankings):
        for rank, chunk_id in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


__all__ = [
    "KeywordIndex",
    "analyze",
    "analyze_many",
    "analyze_query",
    "query_identifiers",
    "reciprocal_rank_fusion",
    "write_keyword_index",
]
