"""Cited pages as images: which sources may be opened, locating the passage, marks and cache."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pypdfium2
import pytest

from chat_ui.pages import (
    MAX_WIDTH_PX,
    PageNotFound,
    PageRenderer,
    PageSourceRejected,
    PageSourceRemote,
    locate_passage,
    path_from_source_uri,
    source_root_of,
)

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "data" / "samples"


@pytest.mark.parametrize(
    ("page_text", "passage", "expected"),
    [
        # The PDF breaks lines where the cleaned chunk has spaces.
        ("머리말\r\n제64조(출원공개)\r\n① 특허청장은 공개한다.\r\n끝", "제64조(출원공개) ① 특허청장은 공개한다.", "제64조(출원공개)\r\n① 특허청장은 공개한다."),
        # Case and spacing differ.
        ("Intro. The CLAIM  reads as follows. End", "the claim reads as follows.", "The CLAIM  reads as follows."),
        # The passage goes on past this page: from its start to the page's end.
        ("앞부분 제1항 특허출원은 하나의 발명마다", "제1항 특허출원은 하나의 발명마다 하나의 특허출원으로 한다. 다만 일군의 발명은", "제1항 특허출원은 하나의 발명마다"),
        # The passage started on the page before: up to its end on this page.
        ("특허출원으로 할 수 있다. 이하 생략", "하나의 특허출원으로 할 수 있다.", "특허출원으로 할 수 있다."),
        # A long passage whose start is on this page, after other text.
        ("머리말 " * 20 + "제45조 특허출원은 하나의 발명마다 하나의 특허출원으로 한다", "제45조 특허출원은 하나의 발명마다 하나의 특허출원으로 한다. 다만, 총괄적 발명의 개념을 형성하는 일 군의 발명에 대하여", "제45조 특허출원은 하나의 발명마다 하나의 특허출원으로 한다"),
    ],
)
def test_locate_passage_finds_range(page_text, passage, expected):
    span = locate_passage(page_text, passage)

    assert span is not None
    assert page_text[span[0] : span[1]] == expected


@pytest.mark.parametrize(
    ("page_text", "passage"),
    [
        ("제64조(출원공개) 본문", "제65조(출원공개의 효과) 본문과 다른 조문"),  # not on this page
        ("짧은 본문입니다 짧은", "짧은"),  # shorter than an anchor: would match anywhere
        ("", "제64조(출원공개) 본문"),  # a page without a text layer
    ],
)
def test_locate_passage_returns_none(page_text, passage):
    assert locate_passage(page_text, passage) is None


def test_locate_long_passage_by_anchors():
    # The middle differs (cleaning changed it), but the first and last 40 characters match.
    head = "start of the cited passage, which the index stored, "
    tail = " and the end of the cited passage as the index stored it"
    page_text = "A" * 10 + head + "x" * 200 + tail + "B" * 10
    passage = head + "y" * 200 + tail

    start, end = locate_passage(page_text, passage)

    assert page_text[start:end] == head + "x" * 200 + tail


# Which sources may be opened.


@pytest.fixture
def source_root(tmp_path: Path) -> Path:
    root = tmp_path / "source"
    (root / "sub").mkdir(parents=True)
    shutil.copy(SAMPLES_DIR / "patent_act.pdf", root / "sub" / "patent act.pdf")
    return root


def test_local_pdf_inside_root_is_opened(source_root):
    path = source_root / "sub" / "patent act.pdf"

    assert path_from_source_uri(path.as_uri(), source_root) == path.resolve()
    assert path_from_source_uri(path.as_uri().replace("file://", "file://localhost"), source_root) == path.resolve()


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:9/patent_act.pdf",  # not a file URI
        "ftp://example/patent_act.pdf",  # not a file URI
        "file://otherhost/etc/passwd.pdf",  # a remote host in a file URI
        "file:///etc/passwd",  # outside the source folder
        "file:relative/patent_act.pdf",  # not an absolute path
    ],
)
def test_other_sources_are_rejected(source_root, uri):
    with pytest.raises(PageSourceRejected):
        path_from_source_uri(uri, source_root)


def test_dot_dot_and_symlinks_cannot_leave_root(source_root, tmp_path):
    outside = tmp_path / "outside.pdf"
    shutil.copy(SAMPLES_DIR / "patent_act.pdf", outside)
    (source_root / "link.pdf").symlink_to(outside)
    (source_root / "notes.txt").write_text("not a PDF", encoding="utf-8")

    with pytest.raises(PageSourceRejected, match="outside the index's source folder"):
        path_from_source_uri(f"{source_root.as_uri()}/sub/../../outside.pdf", source_root)
    with pytest.raises(PageSourceRejected, match="outside the index's source folder"):
        path_from_source_uri((source_root / "link.pdf").as_uri(), source_root)
    with pytest.raises(PageSourceRejected, match="not a .pdf file"):
        path_from_source_uri((source_root / "notes.txt").as_uri(), source_root)


def test_s3_source_is_remote(source_root):
    with pytest.raises(PageSourceRemote):
        path_from_source_uri("s3://bucket/docs/patent_act.pdf", source_root)


def test_no_source_root_rejects_files(source_root):
    with pytest.raises(PageSourceRejected, match="names no local source folder"):
        path_from_source_uri((source_root / "sub" / "patent act.pdf").as_uri(), None)


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ({"source": "file:///data/pdfs"}, Path("/data/pdfs")),  # built from a local folder
        ({"source": "file:///data/%ED%8A%B9%ED%97%88"}, Path("/data/특허")),  # percent-encoded Hangul
        ({"source": "s3://bucket/prefix"}, None),  # built from S3
        ({}, None),  # an index from before the manifest recorded its source
    ],
)
def test_source_root_of_manifest(manifest, expected):
    assert source_root_of(manifest) == expected


# Rendering.


def _page_text(path: Path, page: int) -> str:
    pdf = pypdfium2.PdfDocument(path)
    try:
        return pdf[page - 1].get_textpage().get_text_range()
    finally:
        pdf.close()


def _article_64_passage(page_text: str) -> str:
    # As the index stores it: cleaned text, whose lines the builder joined with spaces.
    start = page_text.index("제64조(출원공개)")
    return " ".join(page_text[start : start + 160].split())


def _is_highlight(pixel: tuple[int, int, int]) -> bool:
    red, green, blue = pixel
    return red > 200 and green > 170 and blue < 190 and red - blue > 60


def test_render_marks_passage_where_its_text_is(source_root, patent_act_page_of_article_64):
    path = source_root / "sub" / "patent act.pdf"
    page_number = patent_act_page_of_article_64
    passage = _article_64_passage(_page_text(path, page_number))

    rendered = PageRenderer().render(path.as_uri(), page_number, passage, source_root=source_root)

    assert rendered.marked_on_image
    start, end = rendered.passage_span
    assert rendered.text[start:end].startswith("제64조(출원공개)")
    assert rendered.image.width <= MAX_WIDTH_PX

    # The mark lies on the passage's first character, and not on the page's top margin.
    pdf = pypdfium2.PdfDocument(path)
    try:
        page = pdf[page_number - 1]
        left, bottom, right, top = page.get_textpage().get_charbox(start)
        _, _, _, page_top = page.get_bbox()
        scale = rendered.image.width / page.get_size()[0]
    finally:
        pdf.close()
    row = int((page_top - (top + bottom) / 2) * scale)
    marked = [rendered.image.getpixel((x, row)) for x in range(int(left * scale), int(right * scale) + 1)]
    assert any(_is_highlight(pixel) for pixel in marked)
    assert not any(_is_highlight(rendered.image.getpixel((x, 5))) for x in range(rendered.image.width))


def test_render_without_located_passage_has_no_marks(source_root):
    path = source_root / "sub" / "patent act.pdf"

    rendered = PageRenderer().render(path.as_uri(), 1, "이 문장은 특허법 어디에도 없는 문장입니다", source_root=source_root)

    assert rendered.passage_span is None
    assert not rendered.marked_on_image
    assert rendered.page_count >= 1


def test_render_rejects_missing_page_and_file(source_root):
    renderer = PageRenderer()
    path = source_root / "sub" / "patent act.pdf"
    broken = source_root / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7 not really")

    with pytest.raises(PageNotFound, match="has no page 999"):
        renderer.render(path.as_uri(), 999, None, source_root=source_root)
    with pytest.raises(PageNotFound, match="cannot be read"):
        renderer.render((source_root / "gone.pdf").as_uri(), 1, None, source_root=source_root)
    with pytest.raises(PageNotFound, match="cannot be opened as a PDF"):
        renderer.render(broken.as_uri(), 1, None, source_root=source_root)


def test_render_cache_evicts_and_expires(source_root):
    renderer = PageRenderer(cache_pages=2)
    path = source_root / "sub" / "patent act.pdf"
    uri = path.as_uri()

    first = renderer.render(uri, 1, None, source_root=source_root)
    assert renderer.render(uri, 1, None, source_root=source_root) is first

    # Two more pages push page 1 out of a cache of two.
    renderer.render(uri, 2, None, source_root=source_root)
    renderer.render(uri, 3, None, source_root=source_root)
    assert renderer.render(uri, 1, None, source_root=source_root) is not first

    # A replaced file (new modification time) is rendered again.
    again = renderer.render(uri, 1, None, source_root=source_root)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert renderer.render(uri, 1, None, source_root=source_root) is not again
