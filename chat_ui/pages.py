"""Render a cited PDF page as an image, with the cited passage marked on it.

A citation names a source URI and a 1-based page. Only ``file://`` URIs of PDFs inside the
index's source folder are opened, so a crafted or stale citation cannot make the server read
any other file. Documents from S3 are not kept on the chat server, so they get no image:
the UI shows the stored chunk text instead.

The passage is located in the page's text with whitespace ignored, because the index
builder's cleaning joined the lines that the PDF breaks. The located characters' boxes are
drawn as translucent rectangles on the image. When the passage cannot be located, the page is
shown without marks, and the UI marks what it can in the text.

pdfium is not thread-safe, and Gradio runs handlers in a thread pool, so every pdfium call
holds one module lock.
"""

from __future__ import annotations

import logging
import threading
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from PIL import Image, ImageDraw

from chat_ui.errors import PageNotFound, PageSourceRejected, PageSourceRemote

logger = logging.getLogger(__name__)

# A page is rendered at most this wide. At 1000 px an A4 page (595 pt wide) renders at about
# 1.7 times its point size, which keeps 10 pt Hangul legible and a PNG of it near 200 KB.
MAX_WIDTH_PX = 1000
# Upper bound on the scale, for small pages such as a 3 x 5 inch card.
MAX_SCALE = 3.0
# Rendered pages kept in memory; each is about 4 MB as RGB pixels before encoding.
CACHE_PAGES = 8

# Anchors shorter than this match in too many places to locate a passage reliably.
MIN_ANCHOR_CHARS = 8
# Characters of the passage's start and end that locate it when the whole text does not match.
ANCHOR_CHARS = 40

HIGHLIGHT_RGBA = (255, 214, 0, 96)  # translucent yellow
HIGHLIGHT_OUTLINE_RGBA = (214, 150, 0, 200)

_PDFIUM_LOCK = threading.Lock()


@dataclass(frozen=True)
class RenderedPage:
    """One page as an image, its text, and where the cited passage is in both."""

    image: Image.Image
    text: str  # the page's text as pdfium extracts it, line breaks kept
    passage_span: tuple[int, int] | None  # [start, end) of the passage in `text`, if located
    marked_on_image: bool  # True when rectangles mark the passage on `image`
    page_count: int


def locate_passage(page_text: str, passage: str) -> tuple[int, int] | None:
    """Return the [start, end) character range of `passage` in `page_text`, or None.

    Whitespace and case are ignored. The whole passage may not match, because it continues
    on the next page or cleaning changed a character. Then the range runs from a match of its
    first characters to a match of its last characters, or as far as the passage is long.
    """
    compact_page, positions = _compact_with_positions(page_text)
    # The index builder stores NFC text; a PDF's text layer is NFC in practice too.
    compact_passage, _ = _compact_with_positions(unicodedata.normalize("NFC", passage))
    if len(compact_passage) < MIN_ANCHOR_CHARS or not compact_page:
        return None

    # 1. The whole passage.
    found = compact_page.find(compact_passage)
    if found >= 0:
        return positions[found], positions[found + len(compact_passage) - 1] + 1

    # 2. Its start, and then its end after that start; else the passage's length from the start.
    head = compact_passage[:ANCHOR_CHARS]
    tail = compact_passage[-ANCHOR_CHARS:]
    start = compact_page.find(head)
    if start >= 0:
        end = compact_page.find(tail, start + len(head))
        last = end + len(tail) - 1 if end >= 0 else min(start + len(compact_passage), len(compact_page)) - 1
        return positions[start], positions[last] + 1

    # 3. Only its end is on this page: the passage started on the page before.
    end = compact_page.find(tail)
    if end >= 0:
        first = max(0, end + len(tail) - len(compact_passage))
        return positions[first], positions[end + len(tail) - 1] + 1

    # 4. Less than an anchor's length crosses the page break: the page ends with the
    #    passage's start, or begins with its end.
    for length in range(min(len(compact_passage), len(compact_page)), MIN_ANCHOR_CHARS - 1, -1):
        if compact_page.endswith(compact_passage[:length]):
            return positions[len(compact_page) - length], positions[-1] + 1
        if compact_page.startswith(compact_passage[-length:]):
            return positions[0], positions[length - 1] + 1
    return None


def _compact_with_positions(text: str) -> tuple[str, list[int]]:
    """Drop whitespace and fold case; return the result and each kept character's index."""
    kept: list[str] = []
    positions: list[int] = []
    for index, char in enumerate(text):
        if char.isspace():
            continue
        folded = char.casefold()
        # casefold can lengthen a character ("ß" -> "ss"); keep the 1:1 index mapping instead.
        kept.append(folded if len(folded) == 1 else char)
        positions.append(index)
    return "".join(kept), positions


def path_from_source_uri(source_uri: str, source_root: Path | None) -> Path:
    """Return the local PDF that `source_uri` names, after checking that it may be opened.

    Raises PageSourceRemote for s3:// URIs, and PageSourceRejected for any other scheme, a
    host, a path outside `source_root` (after resolving symlinks and ".."), or a file that
    is not a PDF. A `source_root` of None rejects every local file.
    """
    if urlsplit(source_uri).scheme == "s3":
        raise PageSourceRemote(
            f"source {source_uri!r} is stored in S3, so the chat server has no local file to render."
        )
    path = _local_path(source_uri).resolve()
    if source_root is None:
        raise PageSourceRejected(
            f"source {source_uri!r} is a local file, but the index names no local source folder; "
            "rebuild the index from a local folder to show page images."
        )

    root = source_root.resolve()
    if not path.is_relative_to(root):
        raise PageSourceRejected(
            f"source {source_uri!r} resolves to {path}, outside the index's source folder {root}; it is not opened."
        )
    if path.suffix.lower() != ".pdf":
        raise PageSourceRejected(f"source {source_uri!r} is not a .pdf file; it is not opened.")
    return path


def source_root_of(manifest: dict) -> Path | None:
    """Return the local source folder that an index manifest records, or None for S3 or none."""
    source = manifest.get("source")
    if not isinstance(source, str):
        return None
    try:
        return _local_path(source)
    except PageSourceRejected:
        return None


def _local_path(uri: str) -> Path:
    # Only a file URI without a host names a local file (RFC 8089).
    parts = urlsplit(uri)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise PageSourceRejected(f"source {uri!r} is not a file:///abs/path URI, so no page image is rendered for it.")
    return Path(unquote(parts.path))


class PageRenderer:
    """Renders cited pages of local PDFs, caching the latest few."""

    def __init__(self, *, max_width_px: int = MAX_WIDTH_PX, cache_pages: int = CACHE_PAGES) -> None:
        self.max_width_px = max_width_px
        self.cache_pages = cache_pages
        self._cache: OrderedDict[tuple, RenderedPage] = OrderedDict()
        self._cache_lock = threading.Lock()

    def render(
        self, source_uri: str, page: int, passage: str | None = None, *, source_root: Path | None
    ) -> RenderedPage:
        """Return page `page` (1-based) of the cited PDF with `passage` marked where found.

        `source_root` is the index's source folder (see source_root_of); the PDF must be in
        it. Raises PageSourceRemote, PageSourceRejected or PageNotFound.
        """
        path = path_from_source_uri(source_uri, source_root)
        try:
            modified = path.stat().st_mtime_ns
        except OSError as exc:
            raise PageNotFound(
                f"source file {path} cannot be read ({exc}); rebuild the index if it was moved."
            ) from None

        # The modification time is part of the key, so a replaced PDF is rendered again.
        key = (str(path), modified, page, passage or "")
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]

        rendered = self._render_uncached(path, page, passage)
        with self._cache_lock:
            self._cache[key] = rendered
            while len(self._cache) > self.cache_pages:
                self._cache.popitem(last=False)
        return rendered

    def _render_uncached(self, path: Path, page_number: int, passage: str | None) -> RenderedPage:
        import pypdfium2

        with _PDFIUM_LOCK:
            try:
                pdf = pypdfium2.PdfDocument(path)
            except pypdfium2.PdfiumError as exc:
                raise PageNotFound(f"source file {path} cannot be opened as a PDF ({exc}).") from None
            try:
                page_count = len(pdf)
                if not 1 <= page_number <= page_count:
                    raise PageNotFound(f"{path} has {page_count} pages, so it has no page {page_number}.")
                page = pdf[page_number - 1]

                # 1. The image, at a scale that fits the maximum width.
                width_pt, _ = page.get_size()
                scale = min(self.max_width_px / width_pt, MAX_SCALE)
                image = page.render(scale=scale).to_pil().convert("RGB")

                # 2. The text, and the passage's boxes in PDF points.
                textpage = page.get_textpage()
                text = textpage.get_text_range()
                span = locate_passage(text, passage) if passage else None
                boxes: list[tuple[float, float, float, float]] = []
                # Box indexes count characters, so they match `text` only when lengths agree.
                same_indexes = textpage.count_chars() == len(text)
                if span is not None and same_indexes and page.get_rotation() == 0:
                    count = textpage.count_rects(span[0], span[1] - span[0])
                    boxes = [textpage.get_rect(i) for i in range(count)]
                # The effective crop box, which may be inherited from the page tree; get_cropbox()
                # reports a default Letter box when the page object itself has none.
                crop_left, _, _, crop_top = page.get_bbox()
            finally:
                pdf.close()

        # 3. The marks: PDF points grow upwards from the bottom left, pixels downwards.
        if boxes:
            image = _draw_boxes(image, boxes, scale=scale, left=crop_left, top=crop_top)
        logger.debug("rendered page %d of %s at scale %.2f, %d marked boxes", page_number, path, scale, len(boxes))
        return RenderedPage(
            image=image, text=text, passage_span=span, marked_on_image=bool(boxes), page_count=page_count
        )


def _draw_boxes(
    image: Image.Image, boxes: list[tuple[float, float, float, float]], *, scale: float, left: float, top: float
) -> Image.Image:
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for box_left, box_bottom, box_right, box_top in boxes:
        x0 = (box_left - left) * scale
        x1 = (box_right - left) * scale
        y0 = (top - box_top) * scale
        y1 = (top - box_bottom) * scale
        # A little padding, since glyph boxes hug the ink and Hangul looks clipped without it.
        draw.rectangle((x0 - 2, y0 - 2, x1 + 2, y1 + 2), fill=HIGHLIGHT_RGBA, outline=HIGHLIGHT_OUTLINE_RGBA)
    return Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")
