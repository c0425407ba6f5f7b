"""Tests of per-page text extraction with pypdfium2."""

from __future__ import annotations

from pathlib import Path

import pytest

from index_builder.errors import (
    CorruptPdfError,
    EncryptedPdfError,
    NoTextLayerError,
    UnreadablePdfError,
)
from index_builder.extract import extract_pages


def test_pages_are_numbered_from_one(tmp_path: Path, pdfs) -> None:
    path = pdfs.korean(tmp_path / "patent.pdf", ["첫째 쪽: 발명의 명칭", "", "셋째 쪽: 청구항 1"])

    pages = extract_pages(path)

    assert [page.page for page in pages] == [1, 2, 3]
    assert "발명의 명칭" in pages[0].text
    assert pages[1].text.strip() == ""
    assert "청구항 1" in pages[2].text


def test_pdf_with_empty_user_password_opens(tmp_path: Path, pdfs) -> None:
    # Owner-password-only PDFs (printing or copying restricted) open without a password.
    path = pdfs.encrypted(tmp_path / "restricted.pdf", ["권리 제한 문서"], password="")

    pages = extract_pages(path)

    assert "권리 제한 문서" in pages[0].text


def test_header_after_leading_bytes(tmp_path: Path, pdfs) -> None:
    # Some producers write bytes before the header, and pdfium accepts up to 1024 of them.
    path = tmp_path / "prefixed.pdf"
    path.write_bytes(b"\n" * 500 + pdfs.korean_bytes(["머리말 앞의 바이트"]))

    pages = extract_pages(path)

    assert "머리말 앞의 바이트" in pages[0].text


UNREADABLE = [
    pytest.param(
        # A user password is required to decrypt the content.
        lambda pdfs, path: pdfs.encrypted(path, ["비밀 문서"]),
        EncryptedPdfError,
        "password required",
        id="encrypted",
    ),
    pytest.param(
        # Half of the file is missing, including the cross-reference table.
        lambda pdfs, path: pdfs.truncated(path, ["잘린 문서 " * 50] * 3),
        CorruptPdfError,
        "damaged or truncated",
        id="truncated",
    ),
    pytest.param(
        # A text file that merely ends in .pdf.
        lambda pdfs, path: pdfs.not_a_pdf(path),
        CorruptPdfError,
        "not a PDF file",
        id="not-a-pdf",
    ),
    pytest.param(
        # A zero-byte file, as a failed copy leaves it.
        lambda pdfs, path: path.write_bytes(b""),
        CorruptPdfError,
        "the file is empty",
        id="empty-file",
    ),
    pytest.param(
        # A scan: one page that is an image without a text layer.
        lambda pdfs, path: pdfs.image_only(path),
        NoTextLayerError,
        "no text layer",
        id="image-only",
    ),
]


@pytest.mark.parametrize(("make", "error_type", "reason"), UNREADABLE)
def test_unreadable_pdf_raises_with_reason(tmp_path: Path, pdfs, make, error_type: type, reason: str) -> None:
    path = tmp_path / "document.pdf"
    make(pdfs, path)

    with pytest.raises(error_type) as raised:
        extract_pages(path)

    assert isinstance(raised.value, UnreadablePdfError)
    assert isinstance(raised.value, ValueError)
    assert reason in raised.value.reason
    assert str(path) in str(raised.value)
