"""Per-page text extraction from PDF files with pypdfium2.

pypdfium2 was chosen over pypdf after a comparison on the Korean PDFs of Debian's
texlive-lang-korean package: the same Hangul on most files, about ten times faster. The
numbers and the cases where the two differ are in docs/extraction.md.

In kotex-doc.pdf, whose font dictionaries contain /ToUnicode twice, pdfium picks the
wrong map and turns Latin text into unrelated Hangul syllables (U+C900 block). pypdf
reads that file correctly. read_document flags such pages with quality.py and leaves
them out of the index.

Page numbers are 1-based, as a reader of the PDF counts them, and every page is returned,
including those without text, so that numbering never shifts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from index_builder.clean import clean_text
from index_builder.errors import CorruptPdfError, EncryptedPdfError, GarbledTextError, NoTextLayerError
from index_builder.quality import assess

logger = logging.getLogger(__name__)

# pdfium opens a file whose %PDF- header starts within its first 1024 bytes (checked with
# pypdfium2 5.15.2), so the check looks as far.
_PDF_HEADER = b"%PDF-"
_HEADER_WINDOW = 1024


@dataclass(frozen=True)
class PageText:
    """Raw text of one page, before cleaning. ``page`` is 1-based."""

    page: int
    text: str


@dataclass
class DocumentText:
    """The indexable pages of one PDF, cleaned, and the pages that were left out and why.

    ``ocr_pages`` have no text layer but contain images, like scanned pages.
    ``garbled_pages`` have text that quality.py judged to be garbage.
    """

    page_count: int
    pages: list[PageText] = field(default_factory=list)
    ocr_pages: list[int] = field(default_factory=list)
    garbled_pages: list[int] = field(default_factory=list)


def read_document(path: Path) -> DocumentText:
    """Return the cleaned, indexable page texts of the PDF at ``path``.

    Raises the errors of extract_pages, and GarbledTextError when every page with text
    is garbage.
    """
    # 1. Raw text, and for pages without text whether they hold images (a scan).
    raw_pages, image_pages = _extract(path, find_images=True)
    document = DocumentText(page_count=len(raw_pages))

    # 2. Judge each page on its raw text, in which glyph ids are still visible.
    reasons: list[str] = []
    for page in raw_pages:
        if not page.text.strip():
            if page.page in image_pages:
                document.ocr_pages.append(page.page)
            continue
        reason = assess(page.text).garbled_reason
        if reason is not None:
            logger.warning("Page %d of %s is not indexed: garbled text, %s", page.page, path, reason)
            document.garbled_pages.append(page.page)
            reasons.append(reason)
            continue
        cleaned = clean_text(page.text)
        if cleaned:
            document.pages.append(PageText(page=page.page, text=cleaned))

    if not document.pages and document.garbled_pages:
        raise GarbledTextError(
            path,
            f"garbled text on all {len(document.garbled_pages)} page(s) with text: {reasons[0]}",
            document.garbled_pages,
        )
    if not document.pages:
        raise NoTextLayerError(
            path,
            f"no text layer on any of {len(raw_pages)} page(s), needs OCR "
            f"({len(document.ocr_pages)} page(s) with images)",
            document.ocr_pages,
        )
    return document


def extract_pages(path: Path) -> list[PageText]:
    """Return the text of every page of the PDF at ``path``.

    Raises EncryptedPdfError for a PDF that needs a password, CorruptPdfError for a file
    that is not a PDF or cannot be repaired, and NoTextLayerError when no page has any
    non-whitespace text.
    """
    pages, _ = _extract(path, find_images=False)
    if not any(page.text.strip() for page in pages):
        raise NoTextLayerError(
            path, f"no text layer on any of {len(pages)} page(s), possibly a scan without OCR"
        )
    return pages


def _extract(path: Path, *, find_images: bool) -> tuple[list[PageText], set[int]]:
    # 1. Reject non-PDFs by their header, so the report gives "not a PDF" instead of
    #    pdfium's generic format error.
    with path.open("rb") as file:
        head = file.read(_HEADER_WINDOW + len(_PDF_HEADER) - 1)
    if not head:
        raise CorruptPdfError(path, "not a PDF file: the file is empty (0 bytes); copy it again from its source")
    if _PDF_HEADER not in head:
        raise CorruptPdfError(path, "not a PDF file (no %PDF- header)")

    # 2. Open the document. pdfium reports the failure kind in err_code.
    try:
        document = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as error:
        if error.err_code in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY):
            raise EncryptedPdfError(path, "password required (the PDF is encrypted with a user password)") from error
        raise CorruptPdfError(path, f"damaged or truncated PDF ({error})") from error

    # 3. Extract page by page. A page that fails alone counts as a page without text.
    pages: list[PageText] = []
    image_pages: set[int] = set()
    try:
        for number in range(1, len(document) + 1):
            text, has_images = _page_text(document, number, path, find_images=find_images)
            pages.append(PageText(page=number, text=text))
            if has_images:
                image_pages.add(number)
    finally:
        document.close()
    return pages, image_pages


def _page_text(document: pdfium.PdfDocument, number: int, path: Path, *, find_images: bool) -> tuple[str, bool]:
    try:
        page = document[number - 1]
        try:
            text_page = page.get_textpage()
            try:
                # get_text_range keeps pdfium's line breaks, which get_text_bounded drops
                # after footnote marks and superscripts in lshort-ko.pdf.
                # NOTE: pypdfium2 documents get_text_range as limited to UCS-2. Hangul and
                # common Hanja are in the BMP, but rare Hanja outside it may be lost.
                text = text_page.get_text_range()
            finally:
                text_page.close()
            # Images matter only on a page without text, where they suggest a scan.
            has_images = False
            if find_images and not text.strip():
                images = page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=2)
                has_images = next(iter(images), None) is not None
            return text, has_images
        finally:
            page.close()
    except pdfium.PdfiumError as error:
        logger.warning("Text extraction failed on page %d of %s: %s", number, path, error)
        return "", False
