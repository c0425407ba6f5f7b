"""The outcome of a build: one record per source document, counts and durations.

A document's record goes into the manifest (to_manifest), where the next build compares it
with the source listing, and into the JSON build report (BuildReport.to_dict) that the
scheduled rebuild writes for operators.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

# Manifest fields of a document record, in the order they are written.
_MANIFEST_FIELDS = (
    "uri",
    "file_name",
    "status",
    "reason",
    "pages",
    "chunks",
    "size",
    "etag",
    "last_modified",
    "sha256",
    "transient",
    "ocr_pages",
    "garbled_pages",
)


@dataclass
class DocumentStatus:
    """Outcome of a build for one source document.

    ``transient`` marks a failure that may not recur, such as a failed download, so the next
    build tries the document again even if it is unchanged. ``change`` and ``seconds``
    describe this build only and are not stored in the manifest.
    """

    uri: str
    file_name: str
    status: Literal["ok", "skipped"] = "skipped"
    reason: str | None = None
    pages: int = 0
    chunks: int = 0
    size: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    sha256: str | None = None
    transient: bool = False
    ocr_pages: list[int] = field(default_factory=list)
    garbled_pages: list[int] = field(default_factory=list)
    change: Literal["new", "changed", "unchanged"] = "new"
    seconds: float = 0.0

    def to_manifest(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _MANIFEST_FIELDS}

    @classmethod
    def from_manifest(cls, record: dict[str, Any]) -> DocumentStatus:
        """Rebuild a status from a manifest record, tolerating records of older builds."""
        known = {name: record[name] for name in _MANIFEST_FIELDS if name in record}
        known["ocr_pages"] = list(known.get("ocr_pages") or [])
        known["garbled_pages"] = list(known.get("garbled_pages") or [])
        known["transient"] = bool(known.get("transient", False))
        return cls(**known, change="unchanged")


@dataclass
class BuildReport:
    """The outcome of one build. Durations are wall-clock seconds.

    ``version`` is the version that CURRENT names after the build: the new one when
    ``published``, else the previous one (nothing changed) or None (the build failed).
    """

    source: str
    out: Path
    documents: list[DocumentStatus] = field(default_factory=list)
    chunk_count: int = 0
    duration: float = 0.0
    version: str | None = None
    previous_version: str | None = None
    published: bool = False
    removed_documents: list[str] = field(default_factory=list)
    reused_chunks: int = 0
    embedded_chunks: int = 0
    stages: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def indexed(self) -> list[DocumentStatus]:
        return [document for document in self.documents if document.status == "ok"]

    @property
    def skipped(self) -> list[DocumentStatus]:
        return [document for document in self.documents if document.status == "skipped"]

    @property
    def failed_transiently(self) -> list[DocumentStatus]:
        """Skipped documents whose failure may not recur, such as downloads that failed."""
        return [document for document in self.skipped if document.transient]

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data: counts, durations and every skipped document's reason."""
        changes = {"new": 0, "changed": 0, "unchanged": 0}
        for document in self.documents:
            changes[document.change] += 1
        return {
            "source": self.source,
            "out": str(self.out),
            "published": self.published,
            "version": self.version,
            "previous_version": self.previous_version,
            "error": self.error,
            "duration_seconds": round(self.duration, 3),
            "stage_seconds": {stage: round(seconds, 3) for stage, seconds in self.stages.items()},
            "counts": {
                "documents": len(self.documents),
                "indexed": len(self.indexed),
                "skipped": len(self.skipped),
                "failed_transiently": len(self.failed_transiently),
                "removed": len(self.removed_documents),
                **changes,
                "chunks": self.chunk_count,
                "reused_chunks": self.reused_chunks,
                "embedded_chunks": self.embedded_chunks,
                "ocr_pages": sum(len(document.ocr_pages) for document in self.documents),
                "garbled_pages": sum(len(document.garbled_pages) for document in self.documents),
            },
            "skipped": [
                {"uri": d.uri, "file_name": d.file_name, "reason": d.reason, "transient": d.transient}
                for d in self.skipped
            ],
            "pages_needing_ocr": [
                {"uri": d.uri, "pages": d.ocr_pages} for d in self.documents if d.ocr_pages
            ],
            "garbled_pages": [
                {"uri": d.uri, "pages": d.garbled_pages} for d in self.documents if d.garbled_pages
            ],
            "removed": self.removed_documents,
        }

    def write_json(self, path: Path) -> None:
        """Write the report to ``path`` through a temporary file, so a reader never sees half of it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        temporary.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, path)
