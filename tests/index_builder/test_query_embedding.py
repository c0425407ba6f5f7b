"""Query embedding on ONNX Runtime (onnx_query.py) and its fallback to sentence-transformers."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from index_builder.embed import Embedder, packaged_default_model_dir
from index_builder.errors import QueryEncoderUnavailableError
from index_builder.normalize import normalize_text
from index_builder.onnx_query import MAX_DIFFERENCE, OnnxQueryEncoder

QUERIES = [
    "특허법 제29조 제2항의 진보성 요건",  # Korean, with an article that normalisation rewrites
    "제1항 내지 제3항 중 어느 한 항에 있어서",  # a claim range
    "What does claim 2 cover?",  # English
    "가",  # one syllable
    "출원공개 " * 200,  # longer than the model's 256 tokens, so truncated
]


def torch_vector(embedder: Embedder, query: str) -> np.ndarray:
    """The query's vector from SentenceTransformer.encode, as documents are embedded."""
    return embedder.embed([normalize_text(query)])[0]


def test_queries_run_on_onnxruntime(embedder: Embedder) -> None:
    embedder.prepare_queries()

    assert embedder.query_backend == "onnxruntime"
    for query in QUERIES:
        vector = embedder.embed_query(query)
        assert vector.dtype == np.float32
        assert vector.shape == (embedder.dimension,)
        np.testing.assert_allclose(vector, torch_vector(embedder, query), atol=MAX_DIFFERENCE, err_msg=query)


def test_unsupported_pooling_uses_torch(caplog: pytest.LogCaptureFixture) -> None:
    # The packaged model with CLS pooling instead of mean pooling: a real model whose layout
    # the ONNX path does not export.
    model_dir = str(packaged_default_model_dir())
    base = SentenceTransformer(model_dir, local_files_only=True)
    transformer, pooling, normalize = list(base)
    pooling_class = type(pooling)
    cls_model = SentenceTransformer(modules=[transformer, pooling_class(pooling.embedding_dimension, pooling_mode="cls"), normalize])
    embedder = Embedder("cls-pooling", cls_model)

    with caplog.at_level(logging.WARNING, logger="index_builder.embed"):
        vector = embedder.embed_query("청구항 2의 구성")

    assert embedder.query_backend == "torch"
    assert "embedded with torch" in caplog.text
    assert "pooling mode 'cls'" in caplog.text
    np.testing.assert_allclose(vector, torch_vector(embedder, "청구항 2의 구성"), atol=1e-6)


def test_encoder_rejects_different_output(embedder: Embedder) -> None:
    # An encoder checked against a model that truncates at 16 tokens: the long probe text
    # then gets another vector, so the encoder must not be used for that model.
    encoder = OnnxQueryEncoder(embedder._model, threads=1)
    short = SentenceTransformer(str(packaged_default_model_dir()), local_files_only=True)
    short.max_seq_length = 16

    with pytest.raises(QueryEncoderUnavailableError, match="away from sentence-transformers"):
        encoder.check_against(short)


def test_encoder_matches_its_own_model(embedder: Embedder) -> None:
    encoder = OnnxQueryEncoder(embedder._model, threads=1)

    assert encoder.check_against(embedder._model) <= MAX_DIFFERENCE


def test_model_without_normalize_module_still_gets_unit_query_vectors() -> None:
    # Documents are embedded with normalize_embeddings=True whatever the model's modules,
    # so query vectors must be unit vectors for a model without Normalize too.
    model_dir = str(packaged_default_model_dir())
    transformer, pooling, _ = list(SentenceTransformer(model_dir, local_files_only=True))
    embedder = Embedder("no-normalize", SentenceTransformer(modules=[transformer, pooling]))

    vector = embedder.embed_query("청구항 2의 구성")

    assert embedder.query_backend == "onnxruntime"
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    np.testing.assert_allclose(vector, torch_vector(embedder, "청구항 2의 구성"), atol=MAX_DIFFERENCE)
