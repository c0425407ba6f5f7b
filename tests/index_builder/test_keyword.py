"""Tests of the keyword index (BM25 over Kiwi morphemes) and hybrid search."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from index_builder.build import build_index
from index_builder.errors import IndexFormatError, IndexNotFoundError, InvalidQueryError
from index_builder.keyword import analyze, reciprocal_rank_fusion
from index_builder.store import IndexReader, open_index
from index_builder.versions import served_dir

PAGES = {
    "semiconductor.pdf": [
        "본 발명은 반도체 소자의 제조 방법에 관한 것으로, 기판 위에 게이트 절연막을 형성한다.",
        "청구항 3. 상기 게이트 전극은 다결정 실리콘으로 이루어진 것을 특징으로 하는 반도체 소자.",
    ],
    "brake.pdf": [
        "자동차용 디스크 브레이크 장치는 캘리퍼와 브레이크 패드와 로터를 포함한다.",
        "브레이크 패드의 마모를 감지하는 센서가 캘리퍼 하우징에 설치된다.",
    ],
    "patent_act.pdf": [
        "제64조(출원공개) ① 특허청장은 출원일부터 1년 6개월이 지난 후 특허공보에 게재하여 출원공개를 하여야 한다.",
    ],
    "claims.pdf": [
        "[청구항 2] 제 1 항에 있어서, 상기 브레이크 패드는 세라믹 재질인 것을 특징으로 하는 장치.",
    ],
}


@pytest.fixture(scope="module")
def built_index(tmp_path_factory: pytest.TempPathFactory, pdfs) -> Path:
    source = tmp_path_factory.mktemp("keyword-source")
    for name, pages in PAGES.items():
        pdfs.korean(source / name, pages)
    out = tmp_path_factory.mktemp("keyword-index") / "index"
    build_index(str(source), out, progress=False)
    return out


@pytest.fixture(scope="module")
def reader(built_index: Path) -> IndexReader:
    return open_index(built_index)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("특허출원은 언제 공개되나요?", ["특허", "출원", "언제", "공개"]),  # particles and endings dropped
        ("제64조의 출원공개", ["제64조", "출원", "공개"]),  # an article reference is one token
        ("IPC 분류 A63B", ["ipc", "분류", "a", "63", "b"]),  # Latin lower-cased
        ("", []),  # nothing to analyze
    ],
)
def test_analyze_keeps_content_morphemes(text, expected):
    tokens = analyze(text)

    for token in expected:
        assert token in tokens
    for dropped in ("은", "의", "?"):
        assert dropped not in tokens


@pytest.mark.parametrize(
    ("rankings", "expected_order"),
    [
        ([[1, 2, 3], [1, 2, 3]], [1, 2, 3]),  # agreement keeps the order
        ([[1, 2], [2, 1]], [1, 2]),  # a tie in fused score breaks by the smaller id
        ([[1, 2, 3], [3]], [3, 1, 2]),  # found by both beats first in one
        ([[], [5]], [5]),  # one ranking empty
    ],
)
def test_reciprocal_rank_fusion(rankings, expected_order):
    assert [chunk_id for chunk_id, _ in reciprocal_rank_fusion(rankings)] == expected_order


def test_fused_score_sums_reciprocal_ranks():
    fused = dict(reciprocal_rank_fusion([[7, 8], [8]], k=60))

    assert fused[8] == pytest.approx(1 / 62 + 1 / 61)
    assert fused[7] == pytest.approx(1 / 61)


# Paraphrased Korean questions that share words, not sentences, with their page. The default
# English embedding model misses some of these; keyword and hybrid search must not.
QUESTIONS = [
    ("게이트 전극은 무엇으로 만들어지나요?", "semiconductor.pdf", 2),  # claim wording
    ("출원은 언제 공개되나요?", "patent_act.pdf", 1),  # the Patent Act article
    ("패드 마모 센서는 어디에 설치되나요?", "brake.pdf", 2),  # second page of a document
]


@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
@pytest.mark.parametrize(("question", "file_name", "page"), QUESTIONS)
def test_korean_question_finds_page(reader, mode, question, file_name, page):
    hits = reader.search(question, k=1, mode=mode)

    assert (hits[0].file_name, hits[0].page) == (file_name, page)


@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
@pytest.mark.parametrize("question", ["청구항 1을 인용하는 청구항은?", "claim 1을 인용하는 청구항"])
def test_claim_question_finds_spaced_claim_reference(reader, mode, question):
    hit = reader.search(question, k=1, mode=mode)[0]

    assert hit.file_name == "claims.pdf"
    # The stored text keeps the spelling of the PDF. Only the indexed form is normalized.
    assert "제 1 항에 있어서" in hit.text


def test_hits_carry_both_scores(reader):
    hybrid = reader.search("브레이크 패드 마모 센서", k=3, mode="hybrid")
    keyword = reader.search("브레이크 패드 마모 센서", k=1, mode="keyword")[0]
    dense = reader.search("브레이크 패드 마모 센서", k=1, mode="dense")[0]

    assert all(hit.dense_score is not None or hit.keyword_score is not None for hit in hybrid)
    assert keyword.keyword_score == keyword.score
    assert keyword.dense_score is None
    assert dense.dense_score == dense.score
    assert dense.keyword_score is None


def test_keyword_search_without_shared_terms_returns_nothing(reader):
    assert reader.search("양자 컴퓨터 큐비트", k=3, mode="keyword") == []


def test_hybrid_k_above_chunk_count_returns_every_chunk(reader):
    hits = reader.search("브레이크 패드", k=100, mode="hybrid")

    assert sorted(hit.chunk_id for hit in hits) == sorted(range(reader.chunk_count))


def test_unknown_mode_is_rejected(reader):
    with pytest.raises(InvalidQueryError, match="search mode 'semantic' is unknown. Use one of dense, keyword, hybrid"):
        reader.search("브레이크", mode="semantic")


def test_missing_keyword_index_names_rebuild(built_index, tmp_path):
    copy = tmp_path / "index"
    shutil.copytree(served_dir(built_index), copy)
    shutil.rmtree(copy / "keyword")

    with pytest.raises(IndexNotFoundError, match="keyword index .* is missing. Rebuild"):
        open_index(copy)


def test_keyword_index_of_other_chunks_is_rejected(built_index, tmp_path):
    copy = tmp_path / "index"
    shutil.copytree(served_dir(built_index), copy)
    ids_file = copy / "keyword" / "chunk_ids.json"
    ids = json.loads(ids_file.read_text())
    ids_file.write_text(json.dumps([chunk_id + 1000 for chunk_id in ids]))

    with pytest.raises(IndexFormatError, match="covers other chunks"):
        open_index(copy)


# Questions that cite an article, asked against the real sample PDFs: the Patent Act and a
# guideline and an office action that cite its articles.
ARTICLE_QUESTIONS = [
    "특허법 64조가 뭐야?",  # the brief form of a chat question
    "특허법 제64조",  # the formal citation
    "64조 내용 알려줘",  # without 제 or the law's name
]


@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
@pytest.mark.parametrize("question", ARTICLE_QUESTIONS)
def test_article_question_ranks_article_page_first(sample_subset_index, article_64_page, mode, question):
    reader = open_index(sample_subset_index)

    hits = reader.search(question, k=3, mode=mode)

    assert (hits[0].file_name, hits[0].page) == ("patent_act.pdf", article_64_page)
    assert "제64조(출원공개)" in hits[0].text


@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
@pytest.mark.parametrize("number", ["10-2010-0032661", "10 2010 0032661", "1020100032661"])
def test_application_number_finds_office_action(sample_subset_index, mode, number):
    reader = open_index(sample_subset_index)

    hits = reader.search(f"{number} 의견제출통지서의 거절이유", k=1, mode=mode)

    assert hits[0].file_name == "office_action_1020100032661.pdf"


def test_count_matches_counts_tokens_per_chunk(reader):
    heading_chunk = reader.search("제64조", k=1, mode="keyword")[0].chunk_id

    counts = reader._keyword_index.count_matches(["제64조", "조문:제64조", "없는토큰"])

    assert counts == {heading_chunk: 2}


def test_weighted_fusion_favours_heavier_ranking():
    dense, keyword = [1, 2], [2, 1]

    fused = reciprocal_rank_fusion([dense, keyword], weights=(0.2, 1.0))

    assert [chunk_id for chunk_id, _ in fused] == [2, 1]
    assert fused[0][1] == pytest.approx(0.2 / 62 + 1 / 61)


def test_fusion_rejects_weight_count_mismatch():
    with pytest.raises(ValueError, match="2 weights for 3 rankings"):
        reciprocal_rank_fusion([[1], [2], [3]], weights=(1.0, 1.0))
