"""The keyword index: BM25 over Korean morphemes, stored in each index folder beside the vectors.

all-MiniLM-L6-v2 splits every Hangul syllable into about three word pieces, so dense search
alone misses most Korean questions. Kiwi cuts text into morphemes ("특허출원은" becomes
"특허", "출원", "은"), and BM25 over the content morphemes matches a question's terms
against the chunks that contain them, whatever particles and endings surround them.

On disk, ``keyword/`` contains bm25s's own files (NumPy arrays and JSON, loaded without
pickle) and ``chunk_ids.json``, which maps BM25's row numbers to chunk ids.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import bm25s

logger = logging.getLogger(__name__)

KEYWORD_DIR = "keyword"
CHUNK_IDS_FILE = "chunk_ids.json"

# Kiwi tag prefixes of the morphemes that carry meaning: nouns (N*), verb and adjective
# stems (VV, VA), roots (XR), numbers (SN), Latin (SL) and Hanja (SH). Particles (J*),
# endings (E*), affixes and punctuation are dropped.
_CONTENT_TAGS = ("NN", "NP", "NR", "VV", "VA", "XR", "SN", "SL", "SH", "MAG")

# Reciprocal rank fusion's constant, 60 as in Cormack, Clarke and Buettcher (SIGIR 2009):
# it damps the weight of the very top ranks so neither ranking dominates.
RRF_K = 60

_kiwi_lock = threading.Lock()


@cache
def _kiwi():
    from kiwipiepy import Kiwi

    logger.info("loading the Kiwi Korean morpheme analyzer")
    return Kiwi()


def analyze(text: str) -> list[str]:
    """Return the content morphemes of `text`, with Latin letters lower-cased."""
    # NOTE: Kiwi's documentation does not promise thread safety, and the chat app searches
    # from several threads, so calls are serialised. Analysis takes about 1 ms per question.
    with _kiwi_lock:
        tokens = _kiwi().tokenize(text)
    return [token.form.lower() for token in tokens if token.tag.startswith(_CONTENT_TAGS)]


def analyze_many(texts: Sequence[str]) -> list[list[str]]:
    """Analyze many texts at once, which Kiwi does faster than one call per text."""
    with _kiwi_lock:
        results = _kiwi().tokenize(list(texts))
    return [[t.form.lower() for t in tokens if t.tag.startswith(_CONTENT_TAGS)] for tokens in results]


def write_keyword_index(index_dir: Path, chunk_ids: Sequence[int], texts: Sequence[str]) -> None:
    """Build the BM25 index of `texts` and save it under `index_dir`/keyword."""
    corpus_tokens = analyze_many(texts)
    # bm25s cannot index an empty document; a placeholder token keeps row numbers aligned.
    corpus_tokens = [tokens or ["\u0000"] for tokens in corpus_tokens]

    retriever = bm25s.BM25()
    retriever.index(corpus_tokens, show_progress=False)

    folder = index_dir / KEYWORD_DIR
    folder.mkdir(parents=True, exist_ok=True)
    retriever.save(str(folder), show_progress=False)
    (folder / CHUNK_IDS_FILE).write_text(json.dumps(list(map(int, chunk_ids))), encoding="utf-8")


class KeywordIndex:
    """A loaded BM25 index that returns chunk ids ranked by their BM25 score."""

    def __init__(self, retriever: bm25s.BM25, chunk_ids: list[int]) -> None:
        self._retriever = retriever
        self._chunk_ids = chunk_ids

    @property
    def chunk_ids(self) -> list[int]:
        """The chunk id of each BM25 row, in row order."""
        return self._chunk_ids

    @classmethod
    def load(cls, index_dir: Path) -> KeywordIndex:
        folder = index_dir / KEYWORD_DIR
        retriever = bm25s.BM25.load(str(folder), allow_pickle=False, show_progress=False)
        chunk_ids = json.loads((folder / CHUNK_IDS_FILE).read_text(encoding="utf-8"))
        return cls(retriever, chunk_ids)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Return up to `k` (chunk id, BM25 score) pairs, best first, with positive scores only."""
        tokens = analyze(query)
        if not tokens or not self._chunk_ids:
            return []

        k = min(k, len(self._chunk_ids))
        rows, scores = self._retriever.retrieve([tokens], k=k, show_progress=False, n_threads=1)
        return [
            (self._chunk_ids[int(row)], float(score))
            for row, score in zip(rows[0], scores[0], strict=True)
            if score > 0
        ]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Fuse several best-first rankings of chunk ids: score = sum of 1 / (k + rank)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


__all__ = ["KeywordIndex", "analyze", "reciprocal_rank_fusion", "write_keyword_index"]
