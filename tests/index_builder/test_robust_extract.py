"""Hard PDFs: encryption, damage, scans, garbage text, pathological pages, and text clean-up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index_builder.build import build_index
from index_builder.clean import clean_text
from index_builder.errors import DocumentLimitError, EncryptedPdfError, GarbledTextError, NoTextLayerError
from index_builder.extract import read_document
from index_builder.quality import assess
from index_builder.settings import IndexBuilderSettings
from index_builder.store import open_index
from index_builder.versions import served_dir
from index_builder.worker import ExtractionWorker

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
CLAIM = "청구항 1. 기판 위에 게이트 절연막을 형성하는 단계를 포함하는 반도체 소자의 제조 방법."


def records(out: Path) -> list[dict]:
    text = (served_dir(out) / "chunks.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


ENCRYPTED = [
    # AES-256 with an empty user password: opens without one.
    ("AES-256", "", True),
    # AES-128 with an empty user password.
    ("AES-128", "", True),
    # RC4 (the PDF 1.4 default) with an empty user password.
    ("RC4-128", "", True),
    # AES-256 with a user password: cannot be read.
    ("AES-256", "secret", False),
]


@pytest.mark.parametrize(("algorithm", "password", "readable"), ENCRYPTED)
def test_encrypted_pdf(tmp_path: Path, pdfs, algorithm: str, password: str, readable: bool) -> None:
    path = pdfs.encrypted(tmp_path / "doc.pdf", [CLAIM], password=password, algorithm=algorithm)

    if readable:
        assert CLAIM in read_document(path).pages[0].text
    else:
        with pytest.raises(EncryptedPdfError, match="password required"):
            read_document(path)


DAMAGED_TAILS = [
    # The final "%%EOF" line is cut off.
    pytest.param(lambda data: data[: data.rindex(b"%%EOF")], id="eof-cut"),
    # Junk after %%EOF, as some upload tools append.
    pytest.param(lambda data: data + b"\r\n<html>proxy error page</html>\n" * 50, id="junk-after-eof"),
    # Both: a few bytes of the trailer missing and junk appended.
    pytest.param(lambda data: data[:-3] + b"\x00" * 100, id="cut-and-junk"),
]


@pytest.mark.parametrize("damage", DAMAGED_TAILS)
def test_damaged_tail_still_read(tmp_path: Path, pdfs, damage) -> None:
    path = tmp_path / "doc.pdf"
    path.write_bytes(damage(pdfs.korean_bytes([CLAIM, "둘째 쪽"])))

    document = read_document(path)

    assert document.page_count == 2
    assert CLAIM in document.pages[0].text


def test_mixed_pdf_indexes_text_pages(tmp_path: Path, pdfs) -> None:
    # Page 2 of 3 is a scan: pages 1 and 3 are indexed, page 2 is reported as needing OCR.
    pdfs.with_scanned_pages(tmp_path / "source" / "mixed.pdf", ["첫 쪽의 청구항 본문.", None, "셋째 쪽의 요약 본문."])

    report = build_index(str(tmp_path / "source"), tmp_path / "index", progress=False)

    [document] = report.documents
    assert document.status == "ok"
    assert document.pages == 3
    assert document.ocr_pages == [2]
    assert report.to_dict()["counts"]["ocr_pages"] == 1
    assert [(record["page"], record["text"]) for record in records(tmp_path / "index")] == [
        (1, "첫 쪽의 청구항 본문."),
        (3, "셋째 쪽의 요약 본문."),
    ]


def test_scan_only_pdf_needs_ocr(tmp_path: Path, pdfs) -> None:
    path = pdfs.with_scanned_pages(tmp_path / "scan.pdf", [None, None])

    with pytest.raises(NoTextLayerError, match="needs OCR") as raised:
        read_document(path)

    assert "2 page(s) with images" in raised.value.reason


def test_nul_in_text_layer_removed(tmp_path: Path, pdfs) -> None:
    path = pdfs.raw(tmp_path / "nul.pdf", b"BT /F1 12 Tf 72 720 Td (Claim\\000 one\\000) Tj ET")

    [page] = read_document(path).pages

    assert page.text == "Claim one"


def test_font_without_tounicode_is_flagged(tmp_path: Path, pdfs) -> None:
    path = pdfs.without_tounicode(tmp_path / "garbled.pdf", [CLAIM * 2])

    with pytest.raises(GarbledTextError, match="garbled text") as raised:
        read_document(path)

    assert "ToUnicode" in raised.value.reason


def test_garbled_document_skipped_in_build(tmp_path: Path, pdfs) -> None:
    pdfs.without_tounicode(tmp_path / "source" / "garbled.pdf", [CLAIM * 2])
    pdfs.korean(tmp_path / "source" / "good.pdf", [CLAIM])

    report = build_index(str(tmp_path / "source"), tmp_path / "index", progress=False)

    reasons = {document.file_name: document.reason for document in report.skipped}
    assert list(reasons) == ["garbled.pdf"]
    assert "garbled text" in reasons["garbled.pdf"]
    assert report.to_dict()["counts"]["garbled_pages"] == 1
    assert [record["file_name"] for record in records(tmp_path / "index")] == ["good.pdf"]


def test_kotex_doc_garbage_pages_flagged(kotex_doc_pdf: Path) -> None:
    # pdfium reads Latin text of kotex-doc.pdf as Hangul syllables outside KS X 1001.
    document = read_document(kotex_doc_pdf)

    assert document.page_count == 18
    assert len(document.garbled_pages) >= 12
    for page in document.pages:
        assert "쥶쥥쥲쥳쥩쥯쥮" not in page.text


def test_lshort_pages_pass_quality_check(lshort_ko_pdf: Path) -> None:
    # A correctly encoded 143-page Korean book: no page may be flagged.
    document = read_document(lshort_ko_pdf)

    assert document.garbled_pages == []
    assert document.page_count == 143


QUALITY = [
    # Ordinary Korean with digits and punctuation.
    (CLAIM, None),
    # Too short to judge: a page number.
    ("- 3 -", None),
    # Glyph ids come out as control characters.
    ("\x01 \x04\x05\x06\x07 \x08\x0b\x0c \x0e\x0f \x10\x11 \x12\x13\x14\x15 \x16\x17 \x18\x19\x1a" * 2, "control"),
    # pdfminer-style CID runs.
    ("(cid:12)(cid:47)(cid:3) (cid:88)(cid:12)(cid:9) 특허", "control"),
    # Replacement characters.
    ("\ufffd" * 15 + " 청구항 1 반도체", "control"),
    # Hangul outside KS X 1001, as pdfium writes for kotex-doc.pdf's Latin text.
    ("쥶쥥쥲쥳쥩쥯쥮 줳줮줰 쥶쥥쥲쥳쥩쥯쥮 본 문서는 설명한다", "KS X 1001"),
    # One rare syllable in a long sentence is a name, not garbage.
    ("똠방각하라는 이름의 발명자가 출원한 반도체 소자의 제조 방법에 관한 특허", None),
]


@pytest.mark.parametrize(("text", "reason"), QUALITY)
def test_text_quality(text: str, reason: str | None) -> None:
    verdict = assess(text).garbled_reason

    if reason is None:
        assert verdict is None
    else:
        assert reason in verdict


@pytest.fixture
def heavy_page_pdf(tmp_path: Path, pdfs) -> Path:
    """One page with ten million line segments: pdfium needs about 1.5 s and 400 MB for it."""
    segments = b"1 1 l\n2 0 l\n" * 5_000_000
    return pdfs.raw(tmp_path / "heavy.pdf", b"BT /F1 12 Tf 72 720 Td (Heavy) Tj ET\n0 0 m\n" + segments + b"S\n")


LIMITS = [
    # Too slow: stopped after a quarter of a second.
    (dict(timeout_seconds=0.25, memory_mb=4096), "longer than the limit"),
    # Too big: the worker cannot allocate past 96 MiB of extra address space.
    (dict(timeout_seconds=120, memory_mb=96), "memory"),
]


@pytest.mark.parametrize(("limits", "reason"), LIMITS)
def test_worker_limits(heavy_page_pdf: Path, tmp_path: Path, pdfs, limits: dict, reason: str) -> None:
    small = pdfs.korean(tmp_path / "small.pdf", [CLAIM])

    with ExtractionWorker(**limits) as worker:
        with pytest.raises(DocumentLimitError, match=reason):
            worker.read(heavy_page_pdf)
        # A fresh worker takes the next document.
        assert CLAIM in worker.read(small).pages[0].text
        assert worker.restarts == 1


def test_heavy_page_does_not_stop_build(heavy_page_pdf: Path, tmp_path: Path, pdfs) -> None:
    source = tmp_path / "source"
    pdfs.korean(source / "a.pdf", ["앞 문서의 청구항."])
    heavy_page_pdf.rename(source / "b-heavy.pdf")
    pdfs.korean(source / "c.pdf", ["뒤 문서의 청구항."])
    settings = IndexBuilderSettings(document_timeout_seconds=0.25)

    report = build_index(str(source), tmp_path / "index", settings=settings, progress=False)

    assert [document.file_name for document in report.indexed] == ["a.pdf", "c.pdf"]
    [skipped] = report.skipped
    assert "longer than the limit of 0.25 s" in skipped.reason


def test_heavy_page_read_with_default_limits(heavy_page_pdf: Path) -> None:
    # The limits stop runaway documents, not ordinary heavy ones.
    with ExtractionWorker(timeout_seconds=120, memory_mb=2048) as worker:
        assert worker.read(heavy_page_pdf).pages[0].text == "Heavy"


CLEANING = [
    # Letter-spaced heading of an office action.
    ("발 명 의 명 칭 : 공기주입식 시소", "발명의명칭 : 공기주입식 시소"),
    # Two single syllables are ordinary words and stay apart.
    ("그 후 출원하였다", "그 후 출원하였다"),
    # A footer line is dropped; the page number lives in the chunk's metadata.
    ("본문 끝 문장.\n- 234 -", "본문 끝 문장."),
    # A dash inside text is not a footer.
    ("범위는 1 - 3 - 5 단계", "범위는 1 - 3 - 5 단계"),
    # pdfium's U+FFFE after a Korean word: the dash at the line end comes back.
    ("장치\ufffe수치범위", "장치-\n수치범위"),
    # pdfium's U+FFFE inside a Latin word: the hyphenation is undone.
    ("Foun\ufffedation", "Foundation"),
    # Decomposed jamo become precomposed syllables.
    ("\u1107\u1161\u11ab\u1103\u1169\u110e\u1166", "반도체"),
]


@pytest.mark.parametrize(("raw", "cleaned"), CLEANING)
def test_cleaning_cases(raw: str, cleaned: str) -> None:
    assert clean_text(raw) == cleaned


def test_sample_footers_stripped_and_pages_kept() -> None:
    # guidelines_novelty.pdf prints the original page number "- 204 -" on PDF page 1.
    document = read_document(SAMPLES / "guidelines_novelty.pdf")

    assert [page.page for page in document.pages] == list(range(1, 39))
    for page in document.pages:
        assert f"- {203 + page.page} -" not in page.text


def test_sample_office_action_heading_joined() -> None:
    document = read_document(SAMPLES / "office_action_1020100033018.pdf")
    text = "\n".join(page.text for page in document.pages)

    assert "발 명 의 명 칭" not in text
    assert "발명의명칭" in text


def test_sample_line_end_hyphen(tmp_path: Path) -> None:
    # The one U+FFFE of the samples: "장치-" at a line end on a page of guidelines_amendment.pdf.
    text = "\n".join(page.text for page in read_document(SAMPLES / "guidelines_amendment.pdf").pages)

    assert "\ufffe" not in text
    assert "장치-\n수치범위" in text


def test_indexed_sample_searchable(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "office_action.pdf").write_bytes((SAMPLES / "office_action_1020100033018.pdf").read_bytes())

    build_index(str(source), tmp_path / "index", progress=False)
    hits = open_index(tmp_path / "index").search("발명의 명칭", k=1, mode="keyword")

    assert hits
    assert hits[0].page >= 1
