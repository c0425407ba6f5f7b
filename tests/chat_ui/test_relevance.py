"""The relevance floor: questions about the sample documents pass it, unrelated ones do not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.documents import Document

from chat_ui.pipeline import MIN_FLOOR_CANDIDATES
from chat_ui.relevance import RELEVANCE_FLOOR, glossary_terms, key_terms, relevance, term_coverage
from chat_ui.retrieve import IndexRetriever, widen
from chat_ui.settings import ChatSettings
from index_builder.store import open_index

GOLDEN = Path(__file__).resolve().parents[2] / "data" / "eval" / "golden.jsonl"

# Questions that nothing in the sample documents is about. Questions that share most of
# their few terms with a sample patent are left out on purpose: "축구 경기 결과 알려줘"
# passes the floor, because the indoor stadium patent names 축구 and 경기.
UNRELATED = [
    "오늘 서울 날씨 어때?",
    "What is the capital of France?",
    "파스타 레시피 알려줘",
    "내일 부산 가는 기차표 예매해줘",
    "비트코인 가격 전망은?",
    "안녕하세요",
    "김치찌개 맛있게 끓이는 법",
    "넷플릭스 드라마 추천해줘",
    "아이폰 배터리 교체 비용",
    "강아지 산책은 하루에 몇 번 해야 해?",
    "Who won the World Cup in 2022?",
    "How do I bake sourdough bread?",
    "python list comprehension example",
    "hello",
    # English questions with one patent-law word, which the glossary does not count alone.
    "How do I file an insurance claim?",
    "Tell me about the invention of the telephone",
    "What application should I use to edit photos?",
    "Who invented the light bulb?",
]

# English questions about the sample documents that term coverage alone scored below the
# floor (0 to 0.29), because the documents are Korean.
ENGLISH_ABOUT_SAMPLES = [
    "When is a patent application laid open?",
    "What is the grace period for disclosure before filing?",
    "Can I amend the claims after receiving a notice of rejection?",
    "What are the requirements for the description of the invention?",
    "What prior art was cited against the fitness frame application?",
]


@pytest.mark.parametrize(
    ("terms", "passage_terms", "passage", "expected"),
    [
        (["출원", "공개"], {"출원", "공개", "특허"}, "", 1.0),  # every term found
        (["출원", "공개", "날씨"], {"출원", "공개"}, "", 2 / 3),  # one term missing
        (["파스타"], {"출원"}, "", 0.0),  # none found
        ([], {"출원"}, "", 0.0),  # a question of question words only
        (["출원", "공개"], {"출원공개"}, "제64조(출원공개)", 1.0),  # Hangul words inside a compound
        (["act"], {"contact"}, "contact", 0.0),  # Latin terms must match whole tokens
        (["시"], {"시소"}, "시소", 0.0),  # one syllable must match a whole token
    ],
)
def test_term_coverage_table(terms, passage_terms, passage, expected):
    assert term_coverage(terms, passage_terms, passage) == pytest.approx(expected)


def test_key_terms_skip_question_words():
    assert key_terms("파스타 레시피 알려줘") == ["파스타", "레시피"]
    assert key_terms("What is the capital of France?") == ["capital", "france"]
    assert "언제" not in key_terms("특허출원은 언제 공개되나요?")


def test_dense_score_counts_for_english_only():
    # High similarity with no shared term: what all-MiniLM-L6-v2 reports for Korean pairs.
    passage = Document(page_content="골프 시뮬레이터의 타구 궤적", metadata={"dense_score": 0.8})

    assert relevance("파스타 레시피 알려줘", [passage]) == 0.0
    assert relevance("pasta recipe please", [passage]) == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("When is a patent application laid open?", ["특허", "출원", "공개"]),  # three glossary words
        ("Can I amend the claims?", ["보정", "청구항"]),  # plural and verb forms
        ("What is the capital of France?", []),  # no patent-law word
        ("Patent patents patent", ["특허"]),  # repeats give one term
    ],
)
def test_glossary_terms_table(query, expected):
    assert glossary_terms(query) == expected


def test_glossary_counts_for_english_only():
    passage = Document(page_content="특허출원은 출원일부터 1년 6개월이 지나면 공개된다.", metadata={"dense_score": 0.1})

    # Two glossary words, both in the Korean passage.
    assert relevance("When is a patent application published?", [passage]) == pytest.approx(1.0)
    # One glossary word alone does not count, so only the dense score remains.
    assert relevance("When is an application due?", [passage]) == pytest.approx(0.1)
    # A Korean question keeps plain term coverage: two of its three terms are in the passage.
    assert relevance("특허 출원 날씨", [passage]) == pytest.approx(2 / 3)


def test_no_documents_has_no_relevance():
    assert relevance("출원공개", []) == 0.0


def test_settings_default_is_calibrated_floor():
    assert ChatSettings().relevance_floor == RELEVANCE_FLOOR


@pytest.fixture(scope="module")
def score(sample_index):
    """Score a question as the pipeline does with the default settings."""
    reader = open_index(sample_index)
    retriever = IndexRetriever(reader=reader, k=MIN_FLOOR_CANDIDATES)
    context_chars = ChatSettings().context_chars

    def score_of(question: str) -> float:
        return relevance(question, widen(reader, retriever.invoke(question), context_chars))

    return score_of


def _golden_questions() -> list[str]:
    rows = [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines() if line.strip()]
    # A follow-up reaches retrieval in its standalone form.
    return [row.get("standalone") or row["question"] for row in rows]


def test_golden_questions_pass_floor(score):
    questions = _golden_questions()

    refused = {question: round(score(question), 2) for question in questions if score(question) < RELEVANCE_FLOOR}

    assert len(questions) >= 90
    assert refused == {}


@pytest.mark.parametrize("question", UNRELATED)
def test_unrelated_question_below_floor(score, question):
    assert score(question) < RELEVANCE_FLOOR


@pytest.mark.parametrize("question", ENGLISH_ABOUT_SAMPLES)
def test_english_question_passes_floor(score, question):
    assert score(question) >= RELEVANCE_FLOOR
