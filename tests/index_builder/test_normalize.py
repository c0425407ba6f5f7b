"""Tests of patent-aware normalisation (normalize.py) and of its use in BM25 analysis and embedding."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest

from index_builder.embed import Embedder
from index_builder.keyword import analyze, analyze_many, analyze_query, query_identifiers
from index_builder.normalize import MAX_RANGE_LENGTH, normalize, normalize_text, reference_tokens

# Pairs of texts that must normalize to the same canonical text and the same BM25 tokens.
EQUIVALENT = [
    ("제 1 항", "청구항1"),  # claim number with spaces
    ("제1항", "청구항1"),  # a bare 제N항 in a specification cites a claim
    ("청구항 1", "청구항1"),  # space after 청구항
    ("청구항 제1항", "청구항1"),  # 청구항 with an ordinal
    ("claim 1", "청구항1"),  # English claim reference
    ("Claim 1", "청구항1"),  # capitalised English claim reference
    ("제１항", "청구항1"),  # full-width digit
    ("ｃｌａｉｍ　１", "claim 1"),  # full-width Latin letters and the ideographic space
    ("청 구 항 1", "청구항1"),  # letter-spaced 청구항
    ("29조 2항", "제29조 제2항"),  # article and paragraph without 제
    ("제29조제2항", "제29조 제2항"),  # no space between article and paragraph
    ("제29조②", "제29조 제2항"),  # circled paragraph number
    ("제29조 ②", "제29조 제2항"),  # circled paragraph number after a space
    ("제 29 조 제 2 항", "제29조 제2항"),  # spaces inside the numbers
    ("64조", "제64조"),  # article without 제
    ("제６４조", "제64조"),  # full-width article number
    ("제42조의 2", "제42조의2"),  # branch article with a space
    ("10-2020-0012345", "1020200012345"),  # application number with hyphens
    ("10 2020 0012345", "1020200012345"),  # application number with spaces
    ("10‐2020‐0012345", "1020200012345"),  # application number with Unicode hyphens
    (unicodedata.normalize("NFD", "발명의 명칭"), "발명의 명칭"),  # decomposed Hangul (conjoining jamo)
    ("발 명 의 명 칭", "발명의명칭"),  # letter-spaced heading
    ("청구항\t1", "청구항 1"),  # tab inside a line
]


@pytest.mark.parametrize(("text", "canonical"), EQUIVALENT)
def test_equivalent_texts_normalize_alike(text: str, canonical: str) -> None:
    assert normalize_text(text) == normalize_text(canonical)
    assert analyze(text) == analyze(canonical)


# Texts whose references must yield exactly these tokens, in text order.
REFERENCE_TOKENS = [
    # A law name does not change the article's tokens.
    ("특허법 제29조 제2항", ["제29조", "제29조제2항"]),
    # A paragraph and an item add one combined token each.
    ("특허법 제42조제4항제2호", ["제42조", "제42조제4항", "제42조제4항제2호"]),
    # A branch article is one token of its own, without the token of its main article.
    ("제42조의2", ["제42조의2"]),
    # A paragraph of a branch article.
    ("제42조의3제2항", ["제42조의3", "제42조의3제2항"]),
    # A paragraph joined by 부터 continues the article before it, as a range.
    ("제36조제1항부터 제3항까지", ["제36조", "제36조제1항", "제36조제2항", "제36조제3항"]),
    # 같은 조 names the last article cited.
    ("제42조제3항제1호 또는 같은 조 제4항", ["제42조", "제42조제3항", "제42조제3항제1호", "제42조제4항"]),
    # 이 조 names the current article, which the text does not give.
    ("이 조 제2항에 따라", ["제2항"]),
    # Claims joined by 또는 are both claims.
    ("제1항 또는 제2항에 있어서", ["청구항1", "청구항", "청구항2", "청구항"]),
    # A claim list keeps every number.
    ("청구항 1, 2 및 5", ["청구항1", "청구항", "청구항2", "청구항", "청구항5", "청구항"]),
    # English claim list.
    ("claims 1 and 3", ["청구항1", "청구항", "청구항3", "청구항"]),
    # A claim range in an office action names every claim, those between the ends included.
    ("심사 대상 청구항 : 제1-6항", ["청구항1", "청구항", "청구항2", "청구항3", "청구항4", "청구항5", "청구항6", "청구항"]),
    # Claim ranges written with 내지, ~, - or "to" name the claims between the ends.
    ("청구항 1 내지 3", ["청구항1", "청구항", "청구항2", "청구항3", "청구항"]),
    ("제1항 내지 제3항 중 어느 한 항에 있어서", ["청구항1", "청구항", "청구항2", "청구항3", "청구항"]),
    ("청구항 1 ~ 3", ["청구항1", "청구항", "청구항2", "청구항3", "청구항"]),
    ("청구항 제1항 내지 제3항", ["청구항1", "청구항", "청구항2", "청구항3", "청구항"]),
    ("청구항 1 내지 청구항 3", ["청구항1", "청구항", "청구항2", "청구항3", "청구항"]),  # 청구항 repeated at the end
    ("claims 1-3", ["청구항1", "청구항", "청구항2", "청구항3", "청구항"]),
    ("claims 1 to 3", ["청구항1", "청구항", "청구항2", "청구항3", "청구항"]),
    ("claims 1 through 3", ["청구항1", "청구항", "청구항2", "청구항3", "청구항"]),
    # A range inside a list: only the range is filled in.
    ("청구항 2-4 및 7", ["청구항2", "청구항", "청구항3", "청구항4", "청구항", "청구항7", "청구항"]),
    # Two claims joined by 및 are a list, not a range.
    ("제1항 및 제3항", ["청구항1", "청구항", "청구항3", "청구항"]),
    # A range that counts down keeps its two ends.
    ("청구항 5 내지 3", ["청구항5", "청구항", "청구항3", "청구항"]),
    # A range of more than MAX_RANGE_LENGTH claims keeps its two ends.
    ("청구항 1 내지 99", ["청구항1", "청구항", "청구항99", "청구항"]),
    # A number too long for a claim ends the list before it.
    ("청구항 1 내지 100000", ["청구항1", "청구항"]),
    # Paragraph ranges of an article name the paragraphs between the ends.
    ("특허법 제29조 제1항 내지 제3항", ["제29조", "제29조제1항", "제29조제2항", "제29조제3항"]),
    # A paragraph range without its article keeps its two ends: such tokens match no query.
    ("① 제1항부터 제3항까지의 규정을 적용할 때\n② 삭제", ["제1항", "제3항"]),
    # Claims have no items, so 제1항제2호 cites a paragraph.
    ("제1항제2호에 따른", ["제1항"]),
    # In a statute, whose paragraphs start lines with circled numbers, 제N항 cites a paragraph.
    ("① 제2항에 따른 발명의 설명\n② 삭제", ["제2항"]),
    # A statute's article heading gets the heading token.
    ("제64조(출원공개)\n① 지식재산처장은", ["제64조", "조문:제64조"]),
    # A citation in running text is no heading.
    ("특허법 제64조(출원공개)에 따라", ["제64조"]),
    # Application number, however it is spaced.
    ("출원번호 10 2020 0012345의 의견제출통지서", ["1020200012345"]),
    # An ordinal before a word that starts with 항 or 조 is no reference.
    ("제1 항체와 제1 조성물, 제1 조도 센서, 제2 조절부", []),
    # An amount of money is no article.
    ("매출 3조 원", []),
    # A year is no application number.
    ("2020년 10월", []),
]


@pytest.mark.parametrize(("text", "tokens"), REFERENCE_TOKENS)
def test_reference_tokens(text: str, tokens: list[str]) -> None:
    assert reference_tokens(text) == tokens


# A bare article number glued to the word before it. Normalising "의2조" again must not
# add another "제" ("의제제2조").
GLUED_ARTICLES = ["의2조", "까지2조에서", "부터2조", "내지1조", "제1항의2조"]


@pytest.mark.parametrize("text", [text for text, _ in EQUIVALENT + REFERENCE_TOKENS] + GLUED_ARTICLES)
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    twice = normalize(once.text)

    assert twice.text == once.text
    assert [reference.tokens for reference in twice.references] == [
        reference.tokens for reference in once.references
    ]


def test_branch_article_differs_from_main_article() -> None:
    branch = analyze("제42조의2에 따른 특허출원일")
    main = analyze("제42조에 따른 특허출원일")

    assert "제42조의2" in branch
    assert "제42조" not in branch
    assert "제42조" in main
    assert "제42조의2" not in main


def test_paragraph_after_article_is_no_claim() -> None:
    tokens = analyze("특허법 제29조 제2항에 따라 거절")

    assert "제29조제2항" in tokens
    assert "청구항2" not in tokens


def test_article_with_and_without_je_match() -> None:
    assert analyze("제64조") == analyze("64조") == ["제64조"]


def test_application_number_is_one_token() -> None:
    tokens = analyze("출원번호 10-2020-0012345 의견제출통지서")

    assert tokens.count("1020200012345") == 1
    for piece in ("10", "2020", "0012345"):
        assert piece not in tokens


def test_reference_keeps_particles_off_tokens() -> None:
    # The reference reaches Kiwi as one span, so the particle after it stays a particle.
    assert analyze("특허법 64조가 뭐야?") == ["특허법", "제64조", "뭐"]


def test_claim_range_and_question_share_token() -> None:
    # A question about claim 2 and a chunk that cites claims 1 to 3 share the token 청구항2.
    chunk = analyze("제1항 내지 제3항 중 어느 한 항에 있어서, 상기 센서는 온도를 측정하는 장치.")
    question = analyze_query("청구항 2의 센서는 무엇을 측정하나요?")

    assert "청구항2" in chunk
    assert "청구항2" in question


def test_claim_range_is_capped() -> None:
    longest = reference_tokens(f"청구항 1 내지 {1 + MAX_RANGE_LENGTH}")
    too_long = reference_tokens(f"청구항 1 내지 {2 + MAX_RANGE_LENGTH}")

    assert len([token for token in longest if token != "청구항"]) == MAX_RANGE_LENGTH + 1
    assert too_long == ["청구항1", "청구항", f"청구항{2 + MAX_RANGE_LENGTH}", "청구항"]


def test_claim_word_matches_claim_references() -> None:
    # "청구항" alone and inside a claim reference yield the same token.
    assert "청구항" in analyze("청구항 작성 방법")
    assert "청구항" in analyze("청구항1의 구성")


def test_analyze_many_matches_analyze() -> None:
    texts = ["제1항에 있어서", "", "특허법 제29조 제2항", "제64조(출원공개)", "제64조(출원공개)"]

    assert analyze_many(texts) == [analyze(text) for text in texts]


def test_query_adds_heading_of_cited_article() -> None:
    assert analyze_query("특허법 64조가 뭐야?") == ["특허법", "제64조", "뭐", "조문:제64조"]
    # Claims are numbered per patent, so they identify no single text.
    assert query_identifiers("29조 2항과 청구항 1") == ["제29조", "제29조제2항", "조문:제29조"]
    assert query_identifiers("출원은 언제 공개되나요?") == []


def test_display_text_is_not_normalized() -> None:
    text = "제 1 항에 있어서"

    assert normalize(text).text == "청구항1에 있어서"
    assert text == "제 1 항에 있어서"


def test_query_and_chunk_embed_alike(embedder: Embedder) -> None:
    # The dense model embeds the canonical text, so two spellings of one claim get one vector.
    spaced = embedder.embed_query("제 1 항의 구성")
    canonical = embedder.embed_documents(["청구항1의 구성"])[0]
    other_claim = embedder.embed_query("청구항2의 구성")

    np.testing.assert_allclose(spaced, canonical, atol=1e-6)
    assert not np.allclose(spaced, other_claim, atol=1e-3)
