"""Fixtures for the index builder tests.

PDFs are made here with fpdf2: Korean text in NanumGothic (Debian's fonts-nanum), Latin
text in a core font, and broken variants. The real-world lshort-ko.pdf comes from
Debian's texlive-lang-korean package, cached in ~/.cache/veraclaim/test-data.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

# No test may reach the model hub. Set before huggingface_hub is imported, which reads them once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest
from fpdf import FPDF
from huggingface_hub import constants
from PIL import Image, ImageDraw
from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject

from index_builder.embed import Embedder, load_embedder
from index_builder.settings import DEFAULT_EMBEDDING_MODEL

NANUM_GOTHIC = Path("/usr/share/fonts/truetype/nanum/NanumGothic.ttf")
SAMPLES_DIR = Path(__file__).resolve().parents[2] / "data" / "samples"
# Sample PDFs for ranking checks: the Patent Act excerpt, the novelty guideline, which cites
# "특허법 제64조제1항" among hundreds of chunks, and an office action that cites claims and
# 특허법 제29조제2항.
RANKING_SAMPLES = ("patent_act.pdf", "guidelines_novelty.pdf", "office_action_1020100032661.pdf")
TEST_DATA_CACHE = Path.home() / ".cache" / "veraclaim" / "test-data"
TEXLIVE_KOREAN_DEB = "texlive-lang-korean"
LSHORT_KO_IN_PACKAGE = "usr/share/doc/texlive-doc/latex/lshort-korean/lshort-ko.pdf"
KOTEX_DOC_IN_PACKAGE = "usr/share/doc/texlive-doc/latex/kotex-utf/kotex-doc.pdf"


@pytest.fixture(scope="session", autouse=True)
def hub_offline() -> Iterator[None]:
    """Force huggingface_hub offline even if another conftest imported it before the env was set."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(constants, "HF_HUB_OFFLINE", True)
        yield


class PdfMaker:
    """Writes small PDFs for tests. Each method returns the path it wrote."""

    def __init__(self) -> None:
        # fontTools logs one line per font table it cannot subset, which is noise here.
        logging.getLogger("fontTools.subset").setLevel(logging.ERROR)

    def korean_bytes(self, pages: Sequence[str]) -> bytes:
        """Return a PDF with one page per string, in NanumGothic. An empty string makes a blank page."""
        if not NANUM_GOTHIC.is_file():
            pytest.fail(
                f"{NANUM_GOTHIC} is missing. Install Debian's fonts-nanum (apt-get install fonts-nanum)."
            )
        pdf = FPDF()
        pdf.add_font("NanumGothic", "", str(NANUM_GOTHIC))
        pdf.set_font("NanumGothic", size=11)
        for text in pages:
            pdf.add_page()
            if text:
                pdf.multi_cell(0, 7, text)
        return bytes(pdf.output())

    def korean(self, path: Path, pages: Sequence[str]) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.korean_bytes(pages))
        return path

    def latin_bytes(self, text: str) -> bytes:
        """Return a one-page PDF in the Helvetica core font, which fpdf2 writes in about a millisecond."""
        pdf = FPDF()
        pdf.add_page()
        pdf.set_font("helvetica", size=11)
        pdf.multi_cell(0, 7, text)
        return bytes(pdf.output())

    def encrypted(
        self, path: Path, pages: Sequence[str], password: str = "secret", algorithm: str = "AES-256"
    ) -> Path:
        """Write a Korean PDF that needs ``password`` to open (made with pypdf, whose AES needs cryptography)."""
        writer = PdfWriter(clone_from=io.BytesIO(self.korean_bytes(pages)))
        writer.encrypt(user_password=password, owner_password="owner-" + password, algorithm=algorithm)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as file:
            writer.write(file)
        return path

    def truncated(self, path: Path, pages: Sequence[str]) -> Path:
        """Write the first half of a Korean PDF, as an interrupted download leaves it."""
        data = self.korean_bytes(pages)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[: len(data) // 2])
        return path

    def image_only(self, path: Path) -> Path:
        """Write a PDF whose only page is a raster image, like a scan without OCR."""
        image = Image.new("RGB", (400, 200), "white")
        ImageDraw.Draw(image).rectangle((40, 40, 360, 160), outline="black", width=6)
        pdf = FPDF()
        pdf.add_page()
        pdf.image(image, x=10, y=10, w=150)
        path.parent.mkdir(parents=True, exist_ok=True)
        pdf.output(str(path))
        return path

    def with_scanned_pages(self, path: Path, pages: Sequence[str | None]) -> Path:
        """Write a Korean PDF in which each None page is a raster image without text, like a scan."""
        image = Image.new("RGB", (400, 200), "white")
        ImageDraw.Draw(image).rectangle((40, 40, 360, 160), outline="black", width=6)
        pdf = FPDF()
        pdf.add_font("NanumGothic", "", str(NANUM_GOTHIC))
        pdf.set_font("NanumGothic", size=11)
        for text in pages:
            pdf.add_page()
            if text is None:
                pdf.image(image, x=10, y=10, w=150)
            else:
                pdf.multi_cell(0, 7, text)
        path.parent.mkdir(parents=True, exist_ok=True)
        pdf.output(str(path))
        return path

    def without_tounicode(self, path: Path, pages: Sequence[str]) -> Path:
        """Write a Korean PDF whose font has no ToUnicode map, so extraction returns glyph ids."""
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(self.korean_bytes(pages))))
        for page in writer.pages:
            fonts = page["/Resources"]["/Font"]
            for name in fonts:
                font = fonts[name].get_object()
                if "/ToUnicode" in font:
                    del font[NameObject("/ToUnicode")]
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as file:
            writer.write(file)
        return path

    def raw(self, path: Path, content: bytes) -> Path:
        """Write a one-page PDF whose page content stream is ``content``, with Helvetica as /F1.

        The stream is compressed, so millions of drawing operators fit in a small file.
        """
        stream = zlib.compress(content, 1)
        objects = [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
            b"<< /Filter /FlateDecode /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ]
        data = bytearray(b"%PDF-1.4\n")
        offsets = []
        for number, body in enumerate(objects, start=1):
            offsets.append(len(data))
            data += b"%d 0 obj\n" % number + body + b"\nendobj\n"
        xref = len(data)
        data += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
        data += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
        data += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(data))
        return path

    def not_a_pdf(self, path: Path) -> Path:
        """Write a text file with a .pdf name."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("이것은 PDF가 아닙니다. This is a plain text file.\n", encoding="utf-8")
        return path


@pytest.fixture(scope="session")
def pdfs() -> PdfMaker:
    return PdfMaker()


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The default embedding model, loaded once per test session."""
    return load_embedder(DEFAULT_EMBEDDING_MODEL)


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="session")
def kotex_doc_pdf(lshort_ko_pdf: Path) -> Path:
    """Return kotex-doc.pdf from the same package, whose fonts make pdfium return garbage Hangul."""
    pdf = TEST_DATA_CACHE / TEXLIVE_KOREAN_DEB / KOTEX_DOC_IN_PACKAGE
    if not pdf.is_file():
        pytest.fail(f"{KOTEX_DOC_IN_PACKAGE} is not in {TEXLIVE_KOREAN_DEB}")
    return pdf


@pytest.fixture(scope="session")
def lshort_ko_pdf() -> Path:
    """Return lshort-ko.pdf (143 pages of Korean) from Debian's texlive-lang-korean package.

    The package is fetched with `apt-get download` and unpacked with `dpkg -x`, so no TeX
    is installed. The unpacked tree stays in ~/.cache/veraclaim/test-data for later runs.
    """
    package_root = TEST_DATA_CACHE / TEXLIVE_KOREAN_DEB
    pdf = package_root / LSHORT_KO_IN_PACKAGE
    if pdf.is_file():
        return pdf

    TEST_DATA_CACHE.mkdir(parents=True, exist_ok=True)
    download = _run(["apt-get", "download", TEXLIVE_KOREAN_DEB], TEST_DATA_CACHE)
    if download.returncode != 0:
        # A fresh machine has no package lists yet.
        _run(["apt-get", "update"], TEST_DATA_CACHE)
        download = _run(["apt-get", "download", TEXLIVE_KOREAN_DEB], TEST_DATA_CACHE)
    debs = sorted(TEST_DATA_CACHE.glob(f"{TEXLIVE_KOREAN_DEB}_*.deb"))
    if download.returncode != 0 or not debs:
        pytest.fail(f"apt-get download {TEXLIVE_KOREAN_DEB} failed: {download.stderr.strip()}")

    # Unpack into a temporary folder and rename, so an interrupted run leaves no half tree.
    staging = TEST_DATA_CACHE / f".{TEXLIVE_KOREAN_DEB}.unpacking"
    shutil.rmtree(staging, ignore_errors=True)
    unpack = _run(["dpkg", "-x", str(debs[-1]), str(staging)], TEST_DATA_CACHE)
    if unpack.returncode != 0:
        pytest.fail(f"dpkg -x {debs[-1]} failed: {unpack.stderr.strip()}")
    shutil.rmtree(package_root, ignore_errors=True)
    staging.rename(package_root)
    for deb in debs:
        deb.unlink()

    if not pdf.is_file():
        pytest.fail(f"{LSHORT_KO_IN_PACKAGE} is not in {debs[-1].name}")
    return pdf


@pytest.fixture(scope="session")
def sample_subset_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index root built from RANKING_SAMPLES, once per session."""
    from index_builder.build import build_index

    source = tmp_path_factory.mktemp("ranking-source")
    for name in RANKING_SAMPLES:
        shutil.copy(SAMPLES_DIR / name, source / name)
    out = tmp_path_factory.mktemp("ranking-index") / "index"
    build_index(str(source), out, progress=False)
    return out


@pytest.fixture(scope="session")
def article_64_page() -> int:
    """The page of the sample Patent Act PDF whose text contains the heading of 제64조, read from the PDF."""
    import pypdfium2

    pdf = pypdfium2.PdfDocument(SAMPLES_DIR / "patent_act.pdf")
    try:
        pages = [pdf[index].get_textpage().get_text_range() for index in range(len(pdf))]
    finally:
        pdf.close()
    matches = [number for number, text in enumerate(pages, start=1) if "제64조(출원공개)" in text]
    if len(matches) != 1:
        pytest.fail(f"the heading 제64조(출원공개) is on pages {matches} of patent_act.pdf, expected one page")
    return matches[0]
