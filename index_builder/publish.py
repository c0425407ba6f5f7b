"""Publishing a written version folder: validate it, evaluate it, move it under versions/, switch CURRENT.

Order of the steps, and why a SIGKILL at any point leaves the served version loadable:
1. the staging folder is validated and, when a golden set is configured, evaluated (the
   evaluation gate below), then fsynced, all while CURRENT still names the old version;
2. it is renamed to ``versions/<id>`` (one rename on one filesystem);
3. CURRENT is replaced in one atomic rename (versions.switch_current);
4. versions beyond ``keep_versions`` are deleted, never the current one.
A kill before step 3 leaves CURRENT unchanged and at most an unused folder, which the next
build removes (staging) or prunes (an unpublished version).

The evaluation gate rejects a version whose hybrid recall@5 on the golden set is below
VERACLAIM_EVAL_MIN_RECALL_AT_5, or more than VERACLAIM_EVAL_MAX_DROP below the current
version's recall@5 on the same set. A rejected version is moved to ``rejected/<id>`` with
its ``evaluation.json``, for inspection, and CURRENT stays as it was.

Every caller of publish_version passes its gate. A build takes it from its
IndexBuilderSettings (EvaluationGate.from_settings), whose source is the environment unless
the caller sets the fields. A replica's pull passes EvaluationGate.OFF, because it must
serve what the builder published: the builder's gate has already judged that version.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from index_builder.embed import canonical_model_name
from index_builder.errors import IndexBuilderError, ValidationFailedError
from index_builder.evaluate import GoldenItem, evaluate, load_golden
from index_builder.reader import IndexReader, load_version
from index_builder.settings import IndexBuilderSettings
from index_builder.store import CHUNKS_FILE, INDEX_FILE, MANIFEST_FILE, Chunk, check_output_dir, write_version
from index_builder.versions import (
    STAGING_PREFIX,
    VERSIONS_DIR,
    BuildLock,
    current_version,
    fsync_tree,
    new_version_id,
    prune_versions,
    remove_stale_staging,
    switch_current,
    version_dir,
)

logger = logging.getLogger(__name__)

# The default of VERACLAIM_KEEP_VERSIONS. At least 2, so the version that a chat replica
# may still be loading is never the one a build deletes.
DEFAULT_KEEP_VERSIONS = 3

_FLAT_LAYOUT_ENTRIES = (MANIFEST_FILE, INDEX_FILE, CHUNKS_FILE, "keyword")

# Versions that the evaluation gate rejected, one folder per version id, beside versions/.
REJECTED_DIR = "rejected"
# The gate's scores, written into every version it evaluated, published or rejected.
EVALUATION_FILE = "evaluation.json"
GATE_MODE = "hybrid"
# Recall values are fractions of the question count, so a tolerance far below 1/count
# keeps 0.9 - 0.85 from counting as more than a margin of 0.05.
_SCORE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class EvaluationGate:
    """The bar a new version must pass to be published: hybrid recall@5 on a golden set.

    ``golden`` None turns the gate off.
    """

    golden: Path | None = None
    min_recall_at_5: float = 0.0
    max_drop: float = 0.05

    # The gate that lets every valid version through, set below the class.
    OFF: ClassVar[EvaluationGate]

    @classmethod
    def from_settings(cls, settings: IndexBuilderSettings) -> EvaluationGate:
        """Return the gate of the eval_* fields of ``settings`` (VERACLAIM_EVAL_* unless set explicitly)."""
        return cls(settings.eval_golden, settings.eval_min_recall_at_5, settings.eval_max_drop)

    @property
    def enabled(self) -> bool:
        return self.golden is not None


EvaluationGate.OFF = EvaluationGate()


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict on one version. ``reasons`` is empty when the version may be published."""

    version: str
    golden: str
    recall_at_5: float
    current_version: str | None
    current_recall_at_5: float | None
    reasons: tuple[str, ...]
    missed: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "golden": self.golden,
            "mode": GATE_MODE,
            "recall@5": self.recall_at_5,
            "current_version": self.current_version,
            "current_recall@5": self.current_recall_at_5,
            "passed": self.passed,
            "reasons": list(self.reasons),
            "missed_at_5": list(self.missed),
        }


class EvaluationGateError(ValidationFailedError):
    """A new version that the evaluation gate rejected. CURRENT is unchanged.

    ``rejected_folder`` is where the version was moved, for inspection.
    """

    def __init__(self, message: str, decision: GateDecision, rejected_folder: Path) -> None:
        super().__init__(message)
        self.decision = decision
        self.rejected_folder = rejected_folder


def staging_dir(root: Path, version_id: str) -> Path:
    return root / f"{STAGING_PREFIX}{version_id}"


def validate_version(folder: Path, *, embedding_model: str, dimension: int | None = None) -> IndexReader:
    """Load the version at ``folder`` and check it is fit to serve, returning the reader.

    Fit means: every file loads and agrees with the others, it has at least one chunk, and
    it was built with ``embedding_model`` at ``dimension``. Raises ValidationFailedError.

    NOTE: loading holds a second copy of the version's vectors, chunk texts and BM25
    arrays while the build's own copy is still alive.
    """
    try:
        reader = load_version(folder, embedding_model)
    except IndexBuilderError as error:
        raise ValidationFailedError(f"new index version {folder.name} does not load: {error}") from error

    if reader.chunk_count == 0:
        raise ValidationFailedError(f"new index version {folder.name} contains no chunks")
    if canonical_model_name(reader.embedding_model) != canonical_model_name(embedding_model):
        raise ValidationFailedError(
            f"new index version {folder.name} names model {reader.embedding_model!r}, expected {embedding_model!r}"
        )
    if dimension is not None and reader.dimension != dimension:
        raise ValidationFailedError(
            f"new index version {folder.name} has dimension {reader.dimension}, expected {dimension}"
        )
    return reader


def publish_version(
    root: Path,
    staging: Path,
    version_id: str,
    *,
    embedding_model: str,
    dimension: int | None = None,
    gate: EvaluationGate,
    keep_versions: int = DEFAULT_KEEP_VERSIONS,
) -> Path:
    """Validate and evaluate ``staging``, make it the current version of ``root`` and return its folder.

    The caller holds the root's BuildLock. On a validation failure the staging folder is
    deleted and CURRENT is unchanged. ``gate`` is the evaluation gate, EvaluationGate.OFF
    for none. When the gate rejects the version, it is moved to ``root/rejected/<id>``,
    CURRENT is unchanged and EvaluationGateError is raised.
    """
    # 1. Valid, good enough, and on disk before anything points at it.
    try:
        reader = validate_version(staging, embedding_model=embedding_model, dimension=dimension)
        decision = check_gate(gate, reader, root, version_id) if gate.enabled else None
        del reader
        if decision is not None:
            _write_json(staging / EVALUATION_FILE, decision.to_dict())
        if decision is not None and not decision.passed:
            rejected_folder = _reject(root, staging, version_id, keep_versions)
            served = (
                f"CURRENT still names {decision.current_version}"
                if decision.current_version
                else "no version is served yet"
            )
            message = (
                f"new index version {version_id} was not published: {'; '.join(decision.reasons)}. "
                f"It is kept in {rejected_folder} for inspection, and {served}."
            )
            logger.error("%s", message)
            raise EvaluationGateError(message, decision, rejected_folder)
        fsync_tree(staging)
    except EvaluationGateError:
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    # 2. Into versions/, then the atomic switch.
    target = version_dir(root, version_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(target)
    descriptor = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    logger.info("Publishing version %s of %s", version_id, root)
    switch_current(root, version_id)

    # 3. Old versions, and the files of the older flat layout, which CURRENT now overrides.
    prune_versions(root, keep_versions)
    _remove_flat_layout(root)
    return target


def check_gate(gate: EvaluationGate, candidate: IndexReader, root: Path, version_id: str) -> GateDecision:
    """Evaluate ``candidate`` and the current version of ``root`` on the gate's golden set."""
    if gate.golden is None:
        raise ValueError("the evaluation gate is off (no golden set), so there is nothing to check")
    items = load_golden(gate.golden)

    # 1. The new version's score, and the one it must not fall far below.
    result = evaluate(candidate, items, (GATE_MODE,), golden=str(gate.golden)).modes[GATE_MODE]
    recall = result.scores.recall_at_5
    current_id, current_recall = _current_recall(root, items, str(gate.golden))

    # 2. The two rules.
    reasons = []
    if recall < gate.min_recall_at_5 - _SCORE_TOLERANCE:
        reasons.append(
            f"hybrid recall@5 {recall:.3f} on {gate.golden} is below "
            f"VERACLAIM_EVAL_MIN_RECALL_AT_5={gate.min_recall_at_5:.3f}"
        )
    if current_recall is not None and current_recall - recall > gate.max_drop + _SCORE_TOLERANCE:
        reasons.append(
            f"hybrid recall@5 {recall:.3f} on {gate.golden} is {current_recall - recall:.3f} below the "
            f"{current_recall:.3f} of current version {current_id}, more than VERACLAIM_EVAL_MAX_DROP={gate.max_drop:.3f}"
        )
    decision = GateDecision(
        version=version_id,
        golden=str(gate.golden),
        recall_at_5=recall,
        current_version=current_id,
        current_recall_at_5=current_recall,
        reasons=tuple(reasons),
        missed=tuple(item.id for item in result.misses(5)),
    )
    logger.info(
        "Evaluation gate for version %s: hybrid recall@5 %.3f (current version %s: %s), %s",
        version_id,
        recall,
        current_id,
        "none" if current_recall is None else f"{current_recall:.3f}",
        "passed" if decision.passed else "rejected",
    )
    return decision


def _current_recall(root: Path, items: Sequence[GoldenItem], golden: str) -> tuple[str | None, float | None]:
    """Return the current version's id and hybrid recall@5, or None for a score it cannot give."""
    current = current_version(root)
    if current is None:
        return None, None
    try:
        reader = load_version(version_dir(root, current), version=current)
    except IndexBuilderError as error:
        # A damaged current version must not block the version that replaces it.
        logger.warning("Cannot evaluate current version %s of %s (%s). Only the recall floor applies", current, root, error)
        return current, None
    result = evaluate(reader, items, (GATE_MODE,), golden=golden).modes[GATE_MODE]
    return current, result.scores.recall_at_5


def _reject(root: Path, staging: Path, version_id: str, keep: int) -> Path:
    """Move a rejected staging folder to ``root/rejected/<id>`` and keep only the ``keep`` newest there."""
    folder = root / REJECTED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / version_id
    staging.rename(target)

    # An empty versions/ marks the root as an index even when its first build was rejected,
    # so the next build may write into it (store.check_output_dir).
    (root / VERSIONS_DIR).mkdir(exist_ok=True)
    rejected = sorted(entry.name for entry in folder.iterdir() if entry.is_dir())
    for name in rejected[:-keep]:
        shutil.rmtree(folder / name, ignore_errors=True)
        logger.info("Removed old rejected version %s from %s", name, folder)
    return target


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _remove_flat_layout(root: Path) -> None:
    for name in _FLAT_LAYOUT_ENTRIES:
        entry = root / name
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.exists():
            entry.unlink()


def write_index(
    out: Path,
    chunks: Sequence[Chunk],
    vectors: np.ndarray,
    *,
    embedding_model: str,
    documents: Sequence[Mapping[str, Any]],
    details: Mapping[str, Any] | None = None,
    keep_versions: int = DEFAULT_KEEP_VERSIONS,
    gate: EvaluationGate = EvaluationGate.OFF,
) -> dict[str, Any]:
    """Write ``chunks`` and their ``vectors`` as a new version of the index root ``out``, publish it, and return its manifest.

    ``vectors`` must be L2-normalised, one row per chunk. ``details`` adds fields to the
    manifest. ``gate`` is the evaluation gate, off by default. Raises ValidationFailedError,
    leaving the current version served, when the new version does not load with
    ``embedding_model``, and EvaluationGateError when the gate rejects it.
    """
    out = Path(out).expanduser().resolve()
    check_output_dir(out)
    if not chunks:
        raise ValidationFailedError(f"new index version for {out} contains no chunks, so it was not written")
    with BuildLock(out):
        remove_stale_staging(out)
        version_id = new_version_id()
        staging = staging_dir(out, version_id)
        try:
            manifest = write_version(
                staging,
                chunks,
                vectors,
                embedding_model=embedding_model,
                documents=documents,
                details={**(details or {}), "version": version_id},
            )
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        publish_version(
            out,
            staging,
            version_id,
            embedding_model=embedding_model,
            dimension=int(vectors.shape[1]),
            keep_versions=keep_versions,
            gate=gate,
        )
    return manifest


__all__ = [
    "DEFAULT_KEEP_VERSIONS",
    "EVALUATION_FILE",
    "REJECTED_DIR",
    "VERSIONS_DIR",
    "EvaluationGate",
    "EvaluationGateError",
    "GateDecision",
    "check_gate",
    "publish_version",
    "staging_dir",
    "validate_version",
    "write_index",
]
