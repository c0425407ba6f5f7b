"""Query embedding on ONNX Runtime, with the same vectors as the sentence-transformers model.

Import this module lazily: it imports torch, which takes seconds.

A search embeds one short question at a time. ONNX Runtime runs the same transformer with
the same float32 weights in 27 to 51 % of the time of SentenceTransformer.encode on CPU
torch, measured on 2 cores shared with other jobs (scripts/bench_retrieval.py embed,
docs/benchmarks.md).

The transformer is exported in memory from the loaded model on first use, so no file is
downloaded or cached on disk. The export supports one architecture: a Transformer module,
then mean pooling, then an optional Normalize module (the layout of all-MiniLM-L6-v2).
Before an encoder is used, it embeds a few probe texts and compares them with
SentenceTransformer.encode. Document vectors come from encode, so a query vector that
differed would not match them. Any other layout, a failed export, or a difference above
MAX_DIFFERENCE raises QueryEncoderUnavailableError, and embed.py then keeps the torch path.
"""

from __future__ import annotations

import copy
import io
import logging
import threading
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from index_builder.errors import QueryEncoderUnavailableError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

# Largest absolute difference per vector component between the two runtimes that is still
# the same embedding. The measured difference for all-MiniLM-L6-v2 is at most 1.4e-7.
MAX_DIFFERENCE = 1e-4
# Texts embedded by both runtimes before the encoder is used: Korean, English, a long text
# that the model truncates, and a text of one character.
_PROBE_TEXTS = (
    "특허법 제29조 제2항에 따른 진보성 판단에서 청구항1의 구성은 무엇입니까?",
    "What does claim 1 of application 1020200012345 cover?",
    "발명의 상세한 설명 " * 120,
    "a",
)
# The ONNX operator set. 17 is the first with LayerNormalization, which BERT-style models use.
_OPSET = 17


class _LastHiddenState(torch.nn.Module):
    """The transformer with positional inputs and its token embeddings as the only output."""

    def __init__(self, auto_model: torch.nn.Module, input_names: list[str]) -> None:
        super().__init__()
        self.auto_model = auto_model
        self.input_names = input_names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.auto_model(**dict(zip(self.input_names, inputs, strict=True))).last_hidden_state


class OnnxQueryEncoder:
    """One model's transformer on ONNX Runtime, with mean pooling and normalisation in numpy."""

    def __init__(self, model: SentenceTransformer, *, threads: int) -> None:
        transformer = _check_layout(model)
        self._max_length = int(model.max_seq_length)
        self._lower_case = bool(getattr(transformer, "do_lower_case", False))
        # A fast tokenizer stores truncation settings in its Rust object at every call, so
        # this encoder owns a copy and tokenizes under a lock.
        self._tokenizer = copy.deepcopy(model.tokenizer)
        self._tokenizer_lock = threading.Lock()
        self._input_names = [
            name for name in self._tokenizer.model_input_names if name in ("input_ids", "attention_mask", "token_type_ids")
        ]
        self._session = _export_session(transformer.auto_model, self._tokenizer, self._input_names, threads)

    def encode(self, text: str) -> np.ndarray:
        """Return the embedding of ``text`` as a float32 vector of shape (dimension,)."""
        if self._lower_case:
            text = text.lower()
        with self._tokenizer_lock:
            encoding = self._tokenizer(text, truncation=True, max_length=self._max_length, return_tensors="np")
        feeds = {name: encoding[name].astype(np.int64) for name in self._input_names}
        token_embeddings = self._session.run(None, feeds)[0][0]

        # Mean pooling over the tokens that the attention mask keeps, as sentence-transformers' Pooling does.
        mask = encoding["attention_mask"][0].astype(np.float32)[:, None]
        vector = (token_embeddings * mask).sum(axis=0) / max(float(mask.sum()), 1e-9)
        # Always normalised, as Embedder.embed asks encode for (normalize_embeddings=True),
        # whether or not the model ends in a Normalize module.
        vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        return np.ascontiguousarray(vector, dtype=np.float32)

    def check_against(self, model: SentenceTransformer) -> float:
        """Compare the probe texts with SentenceTransformer.encode and return the largest difference.

        Raises QueryEncoderUnavailableError when a difference exceeds MAX_DIFFERENCE.
        """
        expected = model.encode(
            list(_PROBE_TEXTS), convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )
        actual = np.vstack([self.encode(text) for text in _PROBE_TEXTS])
        difference = float(np.abs(expected - actual).max())
        if difference > MAX_DIFFERENCE:
            raise QueryEncoderUnavailableError(
                f"ONNX Runtime embeds the probe texts up to {difference:.2e} away from sentence-transformers "
                f"(allowed: {MAX_DIFFERENCE:.0e}), so its query vectors would not match the indexed ones."
            )
        return difference


def build_query_encoder(model: SentenceTransformer, *, threads: int) -> OnnxQueryEncoder:
    """Export ``model`` to ONNX Runtime and return the encoder once its output matches torch's.

    Raises QueryEncoderUnavailableError when the layout is not supported, onnxruntime or
    onnx is missing, the export fails, or the output differs.
    """
    encoder = OnnxQueryEncoder(model, threads=threads)
    difference = encoder.check_against(model)
    logger.info("Query embedding runs on ONNX Runtime (largest difference to torch on the probe texts: %.1e)", difference)
    return encoder


def _check_layout(model: SentenceTransformer) -> Any:
    """Return the model's Transformer module, or raise when the layout is not the supported one."""
    # Compared by class name, because sentence-transformers moves these classes between
    # modules: 6.3 deprecates importing them from sentence_transformers.models.
    modules = list(model)
    names = [type(module).__name__ for module in modules]
    pooling_mode = getattr(modules[1], "pooling_mode", None) if len(modules) > 1 else None
    supported = (
        names[:2] == ["Transformer", "Pooling"]
        and names[2:] in ([], ["Normalize"])
        and pooling_mode == "mean"
        and hasattr(modules[0], "auto_model")
    )
    if not supported:
        raise QueryEncoderUnavailableError(
            f"the ONNX query path supports Transformer, mean Pooling and an optional Normalize module, "
            f"but this model has {names} (pooling mode {pooling_mode!r})."
        )
    return modules[0]


def _export_session(auto_model: torch.nn.Module, tokenizer: Any, input_names: list[str], threads: int) -> Any:
    try:
        import onnxruntime
    except ImportError as error:
        raise QueryEncoderUnavailableError(
            f"the ONNX query path needs onnxruntime ({error}). Run `pip install -e .` to install it."
        ) from error

    # 1. Export the transformer with a dynamic sequence length. The TorchScript-based exporter
    #    (dynamo=False) needs only the onnx package, while the dynamo exporter also needs onnxscript.
    # NOTE: torch deprecates the TorchScript-based exporter. If a later torch removes it, the
    # export fails here and queries fall back to the torch path, about 1.6 times slower.
    sample = tokenizer("청구항1 sample", return_tensors="pt")
    arguments = tuple(sample[name] for name in input_names)
    wrapper = _LastHiddenState(auto_model, input_names).eval()
    buffer = io.BytesIO()
    try:
        # The tracer warns that the padding length and the causal flag become constants. They
        # are constant for one unpadded text per call, which is all that encode() passes, and
        # the probe check covers texts of other lengths.
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                arguments,
                buffer,
                input_names=input_names,
                output_names=["token_embeddings"],
                dynamic_axes={name: {0: "batch", 1: "sequence"} for name in input_names},
                opset_version=_OPSET,
                dynamo=False,
            )
    except Exception as error:  # noqa: BLE001 - any export failure means: keep the torch path.
        raise QueryEncoderUnavailableError(f"exporting the transformer to ONNX failed: {error!r}") from error

    # 2. A session with a fixed thread count. One short query leaves little work to share
    #    between threads, and spare threads only wait while other processes hold the cores.
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
