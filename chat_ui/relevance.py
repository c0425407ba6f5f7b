"""The relevance floor: reject a question that none of the retrieved passages is about.

Hybrid search always returns its top k, even for "파스타 레시피 알려줘", and its fused score
depends on ranks, so it cannot tell a good match from the least bad one. The floor reads two
scores that do not depend on ranks:

- term coverage: the share of the query's key terms that occur in a candidate's passage
  (the chunk widened to its neighbourhood, as the model would get it). Key terms are the
  keyword index's tokens (`index_builder.keyword.analyze`: content morphemes and legal
  references) minus question and request words such as "무엇", "알려줘" or "what".
- dense similarity: the cosine similarity of the query and chunk embeddings, counted for
  English queries only. The default embedding model, all-MiniLM-L6-v2, was trained on
  English and rates any two Korean texts as similar (0.54 to 0.83 for unrelated Korean
  questions against the sample index), so for Korean it would let everything through.

- glossary coverage, for English queries only: the English patent-law words of the query
  (ENGLISH_GLOSSARY: "patent", "amendment", "inventive", ...) are replaced by their Korean
  terms, and the share of those found in a passage is counted like term coverage. The
  English words themselves rarely occur in Korean documents, so English questions about
  the documents often scored below the floor on term coverage alone. The glossary counts only
  when a query has at least MIN_GLOSSARY_TERMS of its words, so a question that shares one
  ambiguous word ("insurance claim") with patents stays below the floor.

A candidate's relevance is the highest of these, and the question's is its best
candidate's. docs/answering.md lists the scores measured on the sample index.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from langchain_core.documents import Document

from chat_ui.language import detect_language
from index_builder.keyword import analyze, analyze_many

# Default of ChatSettings.relevance_floor. On the sample index, the golden set's real
# questions scored 0.37 and more. Unrelated questions scored 0.33 or less, apart from a few
# that share most of their terms with a patent ("축구 경기 결과 알려줘"). docs/answering.md
# lists the scores. The floor sits below the real questions, because rejecting a real
# question costs more than a model call that ends in "the documents do not answer this".
RELEVANCE_FLOOR = 0.3

# Words that ask rather than name a subject: Korean question words, request verbs and
# generic nouns (as Kiwi's morphemes), and English function words.
QUESTION_WORDS = frozenset(
    """
    무엇 뭐 뭘 언제 어디 누구 어떻 어떠 왜 몇 얼마 얼마나 어느 있 없 되 하 보 알 알리 주 가 오 내
    말하 설명 요약 추천 내용 궁금 것 수 법 잘 좀 제일 가장 정말 그냥 다시 그 이 저
    a an the is are was were be been being do does did what which who whom whose when where why
    how of in on at to for from by with about as that this these those it its and or not no can
    could should would will may might must i you he she we they me my your our their there here
    say says tell show explain like s any some please
    """.split()
)


_HANGUL_WORD = re.compile(r"[\uac00-\ud7a3]{2,}")

# English patent-law words and the Korean term that Korean patent documents use for them.
# Only words of the field: a product word such as "golf" would make the floor depend on
# one corpus. Keys are the lower-cased tokens of index_builder.keyword.analyze.
ENGLISH_GLOSSARY: dict[str, str] = {
    "patent": "특허", "patents": "특허", "patentability": "특허",
    "claim": "청구항", "claims": "청구항",
    "application": "출원", "applications": "출원", "applicant": "출원인", "filing": "출원", "filed": "출원",
    "amend": "보정", "amended": "보정", "amendment": "보정", "amendments": "보정",
    "inventive": "진보성", "obviousness": "진보성", "novelty": "신규성",
    "invention": "발명", "inventions": "발명", "inventor": "발명자",
    "examiner": "심사관", "examination": "심사",
    "rejection": "거절", "rejected": "거절", "refusal": "거절",
    "prior": "선행", "cited": "인용", "citation": "인용", "reference": "인용",
    "invalidation": "무효", "invalid": "무효", "trial": "심판",
    "disclosure": "공개", "disclosed": "공개", "publication": "공개", "laid": "공개",
    "grace": "공지예외", "description": "설명", "specification": "명세서", "drawings": "도면",
    "priority": "우선권", "skilled": "기술자", "embodiment": "실시예",
}
# Glossary words that an English query needs before glossary coverage counts. On the sample
# index, 11 of 15 English questions about the samples then passed the floor (6 without the
# glossary). 15 unrelated English questions scored as before (2 passed, on dense similarity),
# and none of 6 unrelated ones with one patent word passed. With 1 instead of 2, two more
# real questions passed, and so did 3 of the 6 unrelated ones ("What application should I
# use to edit photos?").
# NOTE: the glossary was written while looking at those 15 questions, so the gain is an
# optimistic estimate for other English questions.
MIN_GLOSSARY_TERMS = 2


def key_terms(query: str) -> list[str]:
    """Return the distinct key terms of `query`, in order."""
    return [term for term in dict.fromkeys(analyze(query)) if term not in QUESTION_WORDS]


def term_coverage(terms: Sequence[str], passage_terms: set[str], passage: str = "") -> float:
    """Return the share of `terms` found in the passage, 0 when there are no terms.

    A term is found when it is one of `passage_terms`, or when it is a Hangul word of two
    or more syllables inside the `passage` text. The second rule covers compounds that
    the analyser keeps whole in one text and splits in another: "제64조(출원공개)" gives
    the token "출원공개", while the question "출원공개 시기" gives "출원" and "공개".
    """
    if not terms:
        return 0.0
    found = sum(1 for term in terms if term in passage_terms or (_HANGUL_WORD.fullmatch(term) and term in passage))
    return found / len(terms)


def glossary_terms(query: str) -> list[str]:
    """Return the distinct Korean terms of the English patent-law words in `query`, in order."""
    return list(dict.fromkeys(ENGLISH_GLOSSARY[term] for term in key_terms(query) if term in ENGLISH_GLOSSARY))


def relevance(query: str, documents: Sequence[Document]) -> float:
    """Return the relevance (0 to 1) of the best of `documents` to `query`.

    Coverage is measured on each document's text. metadata["dense_score"] (None when dense
    search did not return the chunk) and glossary coverage count for English queries only.
    """
    if not documents:
        return 0.0
    terms = key_terms(query)
    english = detect_language(query) == "en"
    glossary = glossary_terms(query) if english else []
    if len(glossary) < MIN_GLOSSARY_TERMS:
        glossary = []
    passages = analyze_many([document.page_content for document in documents]) if terms else []

    # 1. Term coverage, and for English queries the coverage of their glossary terms.
    best = 0.0
    for passage_terms, document in zip(passages, documents, strict=True):
        found = set(passage_terms)
        best = max(best, term_coverage(terms, found, document.page_content))
        if glossary:
            best = max(best, term_coverage(glossary, found, document.page_content))

    # 2. Dense similarity, for English queries only.
    if english:
        dense = max((document.metadata.get("dense_score") or 0.0 for document in documents), default=0.0)
        best = max(best, dense)
    return best
