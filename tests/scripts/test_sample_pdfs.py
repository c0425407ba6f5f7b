"""Tests for the committed sample PDFs in data/samples and the script that makes them.

The PDFs are read back with pypdfium2 (text) and pypdf (font resources) and compared with the
corpus CSV files they were made from.
"""

from __future__ import annotations

import csv
import importlib.util
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import pypdfium2 as pdfium
import pytest
from pypdf import PdfReader

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS = REPO_ROOT.parent / "shared" / "corpus"
SAMPLES = REPO_ROOT / "data" / "samples"
SCRIPT = REPO_ROOT / "scripts" / "make_sample_pdfs.py"
FONT = Path("/usr/share/fonts/truetype/nanum/NanumGothic.ttf")

HANGUL_SYLLABLE = re.compile(r"[\uac00-\ud7a3]")
FOOTER_LINE = re.compile(r"^- \S+ -$")
SAMPLE_PDFS = sorted(SAMPLES.glob("*.pdf"))

needs_font = pytest.mark.skipif(
    not FONT.is_file(), reason=f"{FONT} is missing; install it with apt-get install fonts-nanum"
)


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_sample_pdfs", SCRIPT)
    module = importlib.util.module_from_spec(spec)

    # dataclasses look the module up in sys.modules while the module body runs.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


script = load_script()


def corpus_rows(name: str) -> list[dict[str, str]]:
    path = CORPUS / name
    if not path.is_file():
        pytest.fail(f"Corpus file not found: {path}. Put a copy of shared/ beside the clone.")
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def guideline_pages() -> dict[int, str]:
    rows = corpus_rows("examination_guidelines_pages.csv")
    return {int(row["page"]): row["text"] for row in rows}


def committed_patents() -> list[dict[str, str]]:
    rows = corpus_rows("patents.csv")
    return [row for row in rows if patent_pdf(row).exists()]


def patent_pdf(patent: dict[str, str]) -> Path:
    return SAMPLES / f"patent_{patent['application_number']}.pdf"


@cache
def page_texts(path: Path) -> tuple[str, ...]:
    """Return the text of each page, without the `- n -` footer line."""
    document = pdfium.PdfDocument(path)
    try:
        texts = []
        for page in document:
            lines = page.get_textpage().get_text_range().splitlines()
            if lines and FOOTER_LINE.match(lines[-1].strip()):
                lines = lines[:-1]
            texts.append("\n".join(lines))
        return tuple(texts)
    finally:
        document.close()


def footer_labels(path: Path) -> list[str]:
    document = pdfium.PdfDocument(path)
    try:
        return [page.get_textpage().get_text_range().splitlines()[-1].strip() for page in document]
    finally:
        document.close()


def normalise(text: str) -> str:
    """Collapse whitespace, because the PDF breaks lines where the source had spaces.

    pdfium reports a hyphen that ends a line as U+FFFE and joins the two lines, so it is
    turned back into a hyphen and a line break first.
    """
    return " ".join(text.replace("\ufffe", "-\n").split())


def source_text(text: str) -> str:
    return normalise(script.substitute_glyphs(text))


def test_samples_match_script_selection():
    expected = {sample.filename for sample in script.collect_samples(CORPUS, list(script.Kind))}

    assert {path.name for path in SAMPLE_PDFS} == expected


def test_samples_total_size_is_a_few_megabytes():
    total = sum(path.stat().st_size for path in SAMPLE_PDFS)

    assert total < 5_000_000


@pytest.mark.parametrize("path", SAMPLE_PDFS, ids=lambda path: path.name)
def test_every_page_has_hangul(path: Path):
    texts = page_texts(path)

    assert texts
    for number, text in enumerate(texts, start=1):
        assert HANGUL_SYLLABLE.search(text), f"{path.name} page {number} has no Hangul"


@pytest.mark.parametrize("path", SAMPLE_PDFS, ids=lambda path: path.name)
def test_fonts_are_embedded_subsets(path: Path):
    reader = PdfReader(path)
    assert reader.metadata.title
    assert reader.metadata.creation_date.year == script.CREATION_DATE.year

    for number, page in enumerate(reader.pages, start=1):
        fonts = page["/Resources"]["/Font"]
        assert fonts, f"{path.name} page {number} has no font resource"
        for name, reference in fonts.items():
            font = reference.get_object()
            descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"]
            assert "/FontFile2" in descriptor, f"{path.name} page {number} font {name}"
            assert re.fullmatch(r"/[A-Z]{6}\+NanumGothic", font["/BaseFont"]), font["/BaseFont"]


def test_readme_lists_every_pdf_with_page_count():
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    listed = dict(re.findall(r"^\| `([^`]+\.pdf)` \| (\d+) \|", readme, flags=re.MULTILINE))

    assert set(listed) == {path.name for path in SAMPLE_PDFS}
    for path in SAMPLE_PDFS:
        assert int(listed[path.name]) == len(page_texts(path)), path.name


def test_patent_act_article_pages_match_readme():
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    table_row = re.compile(r"^\| (제\d+조(?:의\d+)?\([^)]+\)) \| (\d+) \|", re.MULTILINE)
    article_pages = dict(table_row.findall(readme))
    texts = page_texts(SAMPLES / "patent_act.pdf")

    assert len(article_pages) == 11
    for row in corpus_rows("patent_act_articles.csv"):
        heading = f"{row['article']}({row['title']})"
        page = int(article_pages[heading])
        first_line = normalise(row["text"].strip().splitlines()[0])
        assert heading in texts[page - 1], heading

        # The heading and its first line are never split across pages.
        assert normalise(texts[page - 1]).find(normalise(first_line)[:40]) > 0, heading


def test_article_64_page_contains_its_text():
    texts = page_texts(SAMPLES / "patent_act.pdf")
    pages = [number for number, text in enumerate(texts, start=1) if "제64조(출원공개)" in text]

    assert len(pages) == 1
    assert "특허공보에 게재하여 출원공개를 하여야 한다" in normalise(texts[pages[0] - 1])


def test_patent_act_title_on_first_page():
    texts = page_texts(SAMPLES / "patent_act.pdf")

    assert texts[0].startswith("특허법 (발췌)\n제33조(특허를 받을 수 있는 자)")


def test_patent_act_text_matches_csv():
    text = normalise(" ".join(page_texts(SAMPLES / "patent_act.pdf")))

    for row in corpus_rows("patent_act_articles.csv"):
        assert source_text(f"{row['article']}({row['title']}) {row['text']}") in text


@pytest.mark.parametrize("chapter", script.GUIDELINE_CHAPTERS, ids=lambda chapter: chapter.filename)
def test_guideline_pages_map_to_source_pages(chapter: script.GuidelineChapter):
    rows = guideline_pages()
    path = SAMPLES / chapter.filename
    texts = page_texts(path)
    source_pages = range(chapter.first_page, chapter.last_page + 1)

    assert len(texts) == len(source_pages)
    assert footer_labels(path) == [f"- {number} -" for number in source_pages]
    for text, number in zip(texts, source_pages):
        assert normalise(text) == source_text(rows[number]), f"source page {number}"


@needs_font
def test_long_guideline_page_continues_under_same_label(tmp_path: Path):
    # Source page 30 is the longest (2,439 characters). Twice its text fills more than a page.
    page_30 = guideline_pages()[30]
    long_text = f"{page_30} {page_30}"
    chapter = script.GuidelineChapter("long_page.pdf", "제1부 제3장 기간", 30, 30)

    sample = script.guideline_sample(chapter, {30: long_text})

    path = script.write_sample(sample, FONT, tmp_path)

    assert footer_labels(path) == ["- 30 -", "- 30 -"]
    assert normalise(" ".join(page_texts(path))) == source_text(long_text)


def test_guideline_novelty_chapter_starts_with_its_heading():
    texts = page_texts(SAMPLES / "guidelines_novelty.pdf")

    assert texts[0].startswith("제2장 신규성")
    assert any("진보성" in text for text in page_texts(SAMPLES / "guidelines_inventive_step.pdf"))


def test_patent_pdfs_hold_bibliographic_fields():
    patents = committed_patents()

    assert 15 <= len(patents) <= 20
    for patent in patents:
        text = normalise(" ".join(page_texts(patent_pdf(patent))))
        assert f"(54) 발명의 명칭 {source_text(patent['title'])}" in text
        assert f"(21) 출원번호 {patent['application_number']}" in text
        assert f"(22) 출원일자 {patent['application_date']}" in text
        assert f"(71) 출원인 {patent['applicant'].replace('|', ', ')}" in text
        assert source_text(patent["abstract"]) in text


def test_patent_registration_numbers_are_digits():
    for patent in committed_patents():
        text = normalise(" ".join(page_texts(patent_pdf(patent))))
        if not patent["registration_number"]:
            assert "(11) 등록번호" not in text, patent_pdf(patent).name
            continue
        digits = str(int(float(patent["registration_number"])))
        assert f"(11) 등록번호 {digits} (24) 등록일자 {patent['registration_date']}" in text


# Float registration numbers from the CSV and the digits the publication shows.
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1009230660000.0", "1009230660000"),  # stored as a float in the CSV
        ("1009230660000", "1009230660000"),  # already digits
        ("", ""),  # not registered yet
    ],
)
def test_registration_number_format(value: str, expected: str):
    assert script.format_registration_number(value) == expected


def test_registered_patent_shows_integer_registration_number():
    text = normalise(" ".join(page_texts(SAMPLES / "patent_1020090021820.pdf")))

    assert "(11) 등록번호 1009230660000 " in text
    assert "(12) 등록특허공보" in text


def test_patent_claims_each_start_a_line():
    for patent in committed_patents():
        path = patent_pdf(patent)
        lines = "\n".join(page_texts(path)).splitlines()
        claims = [claim for claim in patent["claims"].splitlines() if claim.strip()]
        starts = [line for line in lines if line.startswith("[청구항")]

        assert len(starts) == len(claims), path.name
        for claim, line in zip(claims, starts):
            assert line.startswith(claim.split("]")[0] + "]"), path.name

        text = normalise(" ".join(page_texts(path)))
        assert source_text(" ".join(claims)) in text, path.name


def test_office_action_text_matches_csv():
    notices: dict[str, str] = {}
    for row in corpus_rows("office_action_notices.csv"):
        notices.setdefault(row["application_number"], row["text"])
    paths = sorted(SAMPLES.glob("office_action_*.pdf"))

    assert len(paths) == 5
    for path in paths:
        number = path.stem.removeprefix("office_action_")
        text = normalise(" ".join(page_texts(path)))
        assert text.startswith(f"의견제출통지서 출원번호 {number} "), path.name
        assert text.endswith(source_text(notices[number])), path.name
        assert "발 명 의 명 칭" in text, path.name


def test_glyph_check_rejects_characters_missing_from_font():
    codepoints = frozenset(map(ord, "아래"))
    sample = script.Sample("old_hangul.pdf", "test", "아래아 \u119e", render=lambda pdf: None)

    with pytest.raises(script.MissingGlyphError, match="U\\+119E"):
        script.check_glyphs(sample, codepoints)


def test_missing_corpus_file_raises(tmp_path: Path):
    with pytest.raises(script.CorpusNotFoundError, match="patent_act_articles.csv"):
        script.collect_samples(tmp_path, [script.Kind.PATENT_ACT])


def test_missing_guideline_pages_raise():
    chapter = script.GuidelineChapter("gap.pdf", "제3부 제2장 신규성", 204, 206)
    pages = {204: "제2장 신규성", 206: "3. 규정의 이해"}

    with pytest.raises(script.CorpusError, match=r"pages \[205\]"):
        script.guideline_sample(chapter, pages)


@needs_font
def test_glyph_substitutes_exist_in_font():
    codepoints = script.load_font_codepoints(FONT)

    for original, substitute in script.GLYPH_SUBSTITUTES.items():
        assert ord(original) not in codepoints, f"U+{ord(original):04X} needs no substitute"
        assert ord(substitute) in codepoints, f"U+{ord(substitute):04X} has no glyph"


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--corpus", str(CORPUS), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@needs_font
def test_script_reproduces_committed_text(tmp_path: Path):
    result = run_script("--out", str(tmp_path), "--only", "patent_act", "--only", "office_actions")

    assert result.returncode == 0, result.stderr
    written = sorted(tmp_path.glob("*.pdf"))
    assert [path.name for path in written] == sorted(
        ["patent_act.pdf"] + [path.name for path in SAMPLES.glob("office_action_*.pdf")]
    )
    for path in written:
        assert page_texts(path) == page_texts(SAMPLES / path.name), path.name


@needs_font
def test_script_output_is_byte_identical_on_rerun(tmp_path: Path):
    first = script.build_samples(CORPUS, tmp_path / "first", FONT, [script.Kind.PATENT_ACT])
    second = script.build_samples(CORPUS, tmp_path / "second", FONT, [script.Kind.PATENT_ACT])

    assert first[0].read_bytes() == second[0].read_bytes()


def test_script_reports_missing_font(tmp_path: Path):
    missing = tmp_path / "NoSuchFont.ttf"

    out = tmp_path / "out"

    result = run_script("--out", str(out), "--only", "patent_act", "--font", str(missing))

    assert result.returncode == 1
    assert str(missing) in result.stderr
    assert "apt-get install -y fonts-nanum" in result.stderr
    assert not out.exists()
