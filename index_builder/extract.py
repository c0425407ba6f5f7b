"""Per-page text extraction from PDF files with pypdfium2.

pypdfium2 was chosen over pypdf after a comparison on the Korean PDFs of Debian's
texlive-lang-korean package: the same Hangul on most files, about ten times faster. The
numbers and the cases where the two differ are in docs/extraction.md.

NOTE: in kotex-doc.pdf, whose font dictionaries contain /ToUnicode twice, pdfium picks
the wrong map and turns Latin text into unrelated Hangul syllables (U+C900 block). pypdf
reads that file correctly. Such PDFs are indexed with that noise.

Page numbers are 1-based, as a reader of the PDF counts them, and every page is returned,
including those without text, so that numbering never shifts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from index_builder.errors import CorruptPdfError, EncryptedPdfError, NoTextLayerError

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


def extract_pages(path: Path) -> list[PageText]:
    """Return the text of every page of the PDF at ``path``.

    Raises EncryptedPdfError for a PDF that needs a password, CorruptPdfError for a file
    that is not a PDF or cannot be repaired, and NoTextLayerError when no page has any
    non-whitespace text.
    """
    # 1. Reject non-PDFs by their header, so the report gives "not a PDF" instead of
    #    pdfium's generic format error.
    with path.open("rb") as file:
        head = file.read(_HEADER_WINDOW + len(_PDF_HEADER) - 1)
    if _PDF_HEADER not in head:
        raise CorruptPdfError(path, "not a PDF file (no %PDF- header)")

    # 2. Open the document. pdfium reports the failure kind in err_code.
    try:
        document = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as error:
        if error.err_code in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY):
            raise EncryptedPdfError(path, "password-protected PDF") from error
        raise CorruptPdfError(path, f"damaged or truncated PDF ({error})") from error

    # 3. Extract page by page. A page that fails alone counts as a page without text.
    try:
        pages = [
            PageText(page=number, text=_page_text(document, number, path))
            for number in range(1, len(document) + 1)
        ]
    finally:
        document.close()

    if not any(page.text.strip() for page in pages):
        raise NoTextLayerError(
            path, f"no text layer on any of {len(pages)} page(s), possibly a scan without OCR"
        )
    return pages


def _page_text(document: pdfium.PdfDocument, number: int, path: Path) -> str:
    try:
        page = document[number - 1]
        try:
            text_page = page.get_textpage()
            try:
                # get_text_range keeps pdfium's line breaks, which get_text_bounded drops
                # after footnote marks and superscripts in lshort-ko.pdf.
                # NOTE: pypdfium2 documents get_text_range as limited to UCS-2. Hangul and
                # common Hanja are in the BMP, but rare Hanja outside it may be lost.
                return text_page.get_text_range()
            finally:
                text_page.close()
        finally:
            page.close()
    except pdfium.PdfiumError as error:
        logger.warning("Text extraction failed on page %d of %s: %s", number, path, error)
        return ""
