"""Make the sample PDFs in data/samples from the Korean patent corpus.

The corpus is a folder of CSV files (Patent Act articles, examination-guideline pages, patents
and office-action notices). Every PDF is set in NanumGothic, embedded as a TrueType subset, so
text extraction returns the Hangul of the source rows. The PDF text is the CSV text except for
line breaks, the look-alikes in GLYPH_SUBSTITUTES, comma-joined code lists, and the titles,
labels and page footers this script adds. A fixed creation date makes reruns byte-identical.

Usage:
    python scripts/make_sample_pdfs.py --corpus ../shared/corpus --out data/samples
    python scripts/make_sample_pdfs.py --only patent_act --out /tmp/samples
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.enums import XPos, YPos

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO_ROOT.parent / "shared" / "corpus"
DEFAULT_OUT = REPO_ROOT / "data" / "samples"
DEFAULT_FONT = Path("/usr/share/fonts/truetype/nanum/NanumGothic.ttf")

# Fixed so that a rebuild with the same fpdf2 version writes byte-identical files.
CREATION_DATE = datetime(2025, 1, 1, tzinfo=timezone.utc)

FONT_FAMILY = "NanumGothic"
BODY_SIZE_PT = 10
LINE_HEIGHT_MM = 5.5
HEADING_SIZE_PT = 12
HEADING_HEIGHT_MM = 8
TITLE_SIZE_PT = 18
TITLE_HEIGHT_MM = 12
PARAGRAPH_GAP_MM = 1.5
LABEL_WIDTH_MM = 48

# NanumGothic 3.021 (Debian fonts-nanum 20200506) has no glyph for these characters of the
# corpus, so each one is drawn as the look-alike character that the font has.
GLYPH_SUBSTITUTES = {
    "\u2024": "\u00b7",  # one dot leader, used as a middle dot in 특허․실용신안
    "\u2027": "\u00b7",  # hyphenation point
    "\u22c5": "\u00b7",  # dot operator
    "\uff62": "\u300c",  # halfwidth left corner bracket
    "\uff63": "\u300d",  # halfwidth right corner bracket
    "\u2043": "-",  # hyphen bullet
    "\u2780": "\u2460",  # dingbat circled sans-serif digit one
    "\u2781": "\u2461",
    "\u2782": "\u2462",
}
_GLYPH_TABLE = str.maketrans(GLYPH_SUBSTITUTES)


class Kind(StrEnum):
    """A group of sample PDFs that --only selects."""

    PATENT_ACT = "patent_act"
    GUIDELINES = "guidelines"
    PATENTS = "patents"
    OFFICE_ACTIONS = "office_actions"


@dataclass(frozen=True)
class GuidelineChapter:
    """A run of examination-guideline pages, given by their `page` values in the CSV."""

    filename: str
    title: str
    first_page: int
    last_page: int


GUIDELINE_CHAPTERS = (
    GuidelineChapter("guidelines_description.pdf", "제2부 제3장 발명의 설명", 102, 126),
    GuidelineChapter("guidelines_novelty.pdf", "제3부 제2장 신규성", 204, 241),
    GuidelineChapter("guidelines_inventive_step.pdf", "제3부 제3장 진보성", 242, 273),
    GuidelineChapter("guidelines_amendment.pdf", "제4부 명세서 등의 보정", 306, 328),
)
GUIDELINES_TITLE = "특허·실용신안 심사기준"
PATENT_COUNT = 18
OFFICE_ACTION_COUNT = 5

# The office-action text is one line per notice. A line break goes before each of these
# section markers, and only where a space precedes the marker, so no character is lost.
OFFICE_ACTION_BREAKS = re.compile(
    r" (?=\[심사결과|\[구체적인 거절이유|\[첨 부\]|□ |※ |- 아 래 -|출 원 인 |대 리 인 |"
    r"발 명 자 |출 원 번 호 |출 원 일 자 |발 명 의 명 칭 |첨부\d |(?:비교대상발명|인용발명) \d+ :)"
)
CLAIM_START = re.compile(r"(?=\[청구항\d+\])")


class SampleBuildError(Exception):
    """Base class for the errors that stop the sample build."""


class FontNotFoundError(SampleBuildError, FileNotFoundError):
    """The TrueType font file does not exist."""


class CorpusNotFoundError(SampleBuildError, FileNotFoundError):
    """A corpus CSV file does not exist."""


class CorpusError(SampleBuildError, ValueError):
    """A corpus CSV file lacks the rows a sample needs."""


class MissingGlyphError(SampleBuildError, ValueError):
    """The text uses characters that the font cannot draw."""


class SampleDocument(FPDF):
    """An A4 document in NanumGothic with a centred page label in the footer."""

    def __init__(self, font_path: Path, title: str) -> None:
        super().__init__(format="A4", unit="mm")
        self.add_font(FONT_FAMILY, "", str(font_path))
        self.set_font(FONT_FAMILY, size=BODY_SIZE_PT)
        self.set_margins(left=20, top=20, right=20)
        self.set_auto_page_break(auto=True, margin=20)
        self.set_title(title)
        self.set_lang("ko")
        self.set_creator("Veraclaim scripts/make_sample_pdfs.py")
        self.set_creation_date(CREATION_DATE)

        # None means the page number. fpdf2 draws the footer when a page closes, so set the
        # label after add_page() for the page that is being written.
        self.page_label: str | None = None

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font(FONT_FAMILY, size=8)
        label = self.page_label if self.page_label is not None else str(self.page_no())
        self.cell(0, 5, f"- {label} -", align="C")
        self.set_font(FONT_FAMILY, size=BODY_SIZE_PT)

    def write_title(self, text: str) -> None:
        self.set_font(FONT_FAMILY, size=TITLE_SIZE_PT)
        self.multi_cell(0, TITLE_HEIGHT_MM, text, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(FONT_FAMILY, size=BODY_SIZE_PT)
        self.ln(4)

    def write_heading(self, text: str) -> None:
        # A heading never ends a page, so it moves on when its first body line would not fit.
        if self.will_page_break(HEADING_HEIGHT_MM + LINE_HEIGHT_MM):
            self.add_page()
        self.set_font(FONT_FAMILY, size=HEADING_SIZE_PT)
        self.multi_cell(0, HEADING_HEIGHT_MM, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(FONT_FAMILY, size=BODY_SIZE_PT)

    def write_paragraph(self, text: str, gap_mm: float = PARAGRAPH_GAP_MM) -> None:
        self.multi_cell(0, LINE_HEIGHT_MM, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(gap_mm)

    def write_field(self, label: str, value: str) -> None:
        self.cell(LABEL_WIDTH_MM, LINE_HEIGHT_MM, label)
        self.multi_cell(0, LINE_HEIGHT_MM, value, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def write_rule(self) -> None:
        self.ln(1)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(3)


@dataclass(frozen=True)
class Sample:
    """One PDF to write: file name, metadata title, the text it shows and its layout code."""

    filename: str
    title: str
    text: str
    render: Callable[[SampleDocument], None]


def substitute_glyphs(text: str) -> str:
    """Replace the characters NanumGothic lacks by the look-alikes in GLYPH_SUBSTITUTES."""
    return text.translate(_GLYPH_TABLE)


def load_font_codepoints(font_path: Path) -> frozenset[int]:
    """Return the code points that the font maps to a glyph."""
    if not font_path.is_file():
        raise FontNotFoundError(
            f"Font file not found: {font_path}. Install it with "
            "`apt-get install -y fonts-nanum`, or pass --font with the path of a "
            "Korean TrueType font."
        )
    return frozenset(TTFont(font_path, lazy=True).getBestCmap())


def check_glyphs(sample: Sample, codepoints: frozenset[int]) -> None:
    """Raise MissingGlyphError if the sample text has a character the font cannot draw."""
    missing = sorted(
        {char for char in sample.text if not char.isspace() and ord(char) not in codepoints}
    )
    if missing:
        listed = ", ".join(f"{char!r} (U+{ord(char):04X})" for char in missing)
        raise MissingGlyphError(
            f"{sample.filename}: the font has no glyph for {listed}. Add a look-alike to "
            "GLYPH_SUBSTITUTES in scripts/make_sample_pdfs.py or pick other source rows."
        )


def read_rows(corpus: Path, name: str) -> list[dict[str, str]]:
    path = corpus / name
    if not path.is_file():
        raise CorpusNotFoundError(
            f"Corpus file not found: {path}. Pass --corpus with the folder that holds "
            "the corpus CSV files."
        )
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def split_paragraphs(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def format_registration_number(value: str) -> str:
    """Return the registration number as digits. The CSV stores some as `1009230660000.0`."""
    return value.strip().removesuffix(".0")


def join_codes(value: str) -> str:
    """Join `|`-separated classification codes with commas, showing each code once."""
    codes = dict.fromkeys(code.strip() for code in value.split("|") if code.strip())
    return ", ".join(codes)


def join_names(value: str) -> str:
    """Join `|`-separated applicants with commas. Repeated masked names (`개인 출원인`) stay."""
    return ", ".join(name.strip() for name in value.split("|") if name.strip())


def patent_act_sample(corpus: Path) -> Sample:
    articles = [
        {key: substitute_glyphs(value) for key, value in row.items()}
        for row in read_rows(corpus, "patent_act_articles.csv")
    ]
    title = "특허법 (발췌)"

    def render(pdf: SampleDocument) -> None:
        pdf.add_page()
        pdf.write_title(title)
        for article in articles:
            pdf.write_heading(f"{article['article']}({article['title']})")
            for paragraph in split_paragraphs(article["text"]):
                pdf.write_paragraph(paragraph)
            pdf.ln(3)

    text = "".join(row["article"] + row["title"] + row["text"] for row in articles)
    return Sample("patent_act.pdf", title, title + text, render)


def guideline_samples(corpus: Path) -> list[Sample]:
    rows = read_rows(corpus, "examination_guidelines_pages.csv")
    pages = {int(row["page"]): substitute_glyphs(row["text"]) for row in rows}
    return [guideline_sample(chapter, pages) for chapter in GUIDELINE_CHAPTERS]


def guideline_sample(chapter: GuidelineChapter, pages: dict[int, str]) -> Sample:
    numbers = range(chapter.first_page, chapter.last_page + 1)
    missing = [number for number in numbers if number not in pages]
    if missing:
        raise CorpusError(
            f"{chapter.filename}: examination_guidelines_pages.csv has no rows for pages "
            f"{missing}. Use a corpus with all 736 guideline pages."
        )
    title = f"{GUIDELINES_TITLE} {chapter.title} (원문 {chapter.first_page}-{chapter.last_page}쪽)"

    # One source page per PDF page, and the footer shows the source page number. A page
    # too long for one PDF page continues on the next one under the same label.
    def render(pdf: SampleDocument) -> None:
        for number in numbers:
            pdf.add_page()
            pdf.page_label = str(number)
            pdf.write_paragraph(pages[number], gap_mm=0)

    text = "".join(pages[number] for number in numbers)
    return Sample(chapter.filename, title, text, render)


def patent_samples(corpus: Path) -> list[Sample]:
    rows = read_rows(corpus, "patents.csv")[:PATENT_COUNT]
    return [
        patent_sample({key: substitute_glyphs(value) for key, value in row.items()})
        for row in rows
    ]


def patent_fields(patent: dict[str, str]) -> list[tuple[str, str]]:
    registration_number = format_registration_number(patent["registration_number"])
    fields = [
        ("(51) 국제특허분류(Int. Cl.)", join_codes(patent["ipc_code"])),
        ("CPC특허분류", join_codes(patent["cpc_code"])),
        ("(21) 출원번호", patent["application_number"]),
        ("(22) 출원일자", patent["application_date"]),
    ]
    if registration_number:
        fields.append(("(11) 등록번호", registration_number))
        fields.append(("(24) 등록일자", patent["registration_date"]))
    fields.append(("(71) 출원인", join_names(patent["applicant"])))
    fields.append(("(54) 발명의 명칭", f"{patent['title']}\n{patent['title_en']}"))
    return fields


def patent_sample(patent: dict[str, str]) -> Sample:
    number = patent["application_number"]
    registered = bool(format_registration_number(patent["registration_number"]))

    # A row with a registration number is a granted patent, one without is a published application.
    gazette = "등록특허공보" if registered else "공개특허공보"
    fields = patent_fields(patent)
    claims = [claim.strip() for claim in CLAIM_START.split(patent["claims"]) if claim.strip()]

    def render(pdf: SampleDocument) -> None:
        pdf.add_page()
        pdf.write_paragraph("(19) 대한민국특허청(KR)", gap_mm=0)
        pdf.write_title(f"(12) {gazette}")
        for label, value in fields:
            pdf.write_field(label, value)
        pdf.write_rule()
        pdf.write_heading("(57) 요약")
        pdf.write_paragraph(patent["abstract"])
        pdf.write_rule()
        pdf.write_heading("청구범위")
        for claim in claims:
            pdf.write_paragraph(claim)

    text = "".join(value for _, value in fields) + patent["abstract"] + patent["claims"]
    return Sample(f"patent_{number}.pdf", f"{gazette} {number} {patent['title']}", text, render)


def office_action_samples(corpus: Path) -> list[Sample]:
    # Some application numbers have several notices. The first one of each number is used.
    notices: dict[str, str] = {}
    for row in read_rows(corpus, "office_action_notices.csv"):
        notices.setdefault(row["application_number"], substitute_glyphs(row["text"]))
    chosen = list(notices.items())[:OFFICE_ACTION_COUNT]
    return [office_action_sample(number, text) for number, text in chosen]


def office_action_sample(number: str, text: str) -> Sample:
    title = "의견제출통지서"
    header = f"출원번호 {number}"
    paragraphs = split_paragraphs(OFFICE_ACTION_BREAKS.sub("\n", text))

    def render(pdf: SampleDocument) -> None:
        pdf.add_page()
        pdf.write_title(title)
        pdf.write_paragraph(header)
        pdf.write_rule()
        for paragraph in paragraphs:
            pdf.write_paragraph(paragraph)

    return Sample(f"office_action_{number}.pdf", f"{title} {number}", title + header + text, render)


def collect_samples(corpus: Path, kinds: Iterable[Kind]) -> list[Sample]:
    builders: dict[Kind, Callable[[Path], list[Sample]]] = {
        Kind.PATENT_ACT: lambda path: [patent_act_sample(path)],
        Kind.GUIDELINES: guideline_samples,
        Kind.PATENTS: patent_samples,
        Kind.OFFICE_ACTIONS: office_action_samples,
    }
    return [sample for kind in kinds for sample in builders[kind](corpus)]


def write_sample(sample: Sample, font_path: Path, out: Path) -> Path:
    pdf = SampleDocument(font_path, sample.title)
    sample.render(pdf)
    path = out / sample.filename
    pdf.output(str(path))
    logger.info("Wrote %s (%d pages, %d bytes)", path, pdf.pages_count, path.stat().st_size)
    return path


def build_samples(
    corpus: Path, out: Path, font_path: Path, kinds: Iterable[Kind] = tuple(Kind)
) -> list[Path]:
    """Write the sample PDFs of the given kinds into `out` and return their paths."""
    codepoints = load_font_codepoints(font_path)
    samples = collect_samples(corpus, kinds)

    # Check every text before writing, so a missing glyph leaves no half-written set.
    for sample in samples:
        check_glyphs(sample, codepoints)

    out.mkdir(parents=True, exist_ok=True)
    return [write_sample(sample, font_path, out) for sample in samples]


CorpusOption = Annotated[Path, typer.Option(help="Folder with the corpus CSV files.")]
OutOption = Annotated[Path, typer.Option(help="Folder for the PDFs; created if missing.")]
FontOption = Annotated[Path, typer.Option(help="TrueType font with Hangul glyphs to embed.")]
OnlyOption = Annotated[
    list[Kind] | None,
    typer.Option(help="Write only this kind of sample; repeat the option for several kinds."),
]


def main(
    corpus: CorpusOption = DEFAULT_CORPUS,
    out: OutOption = DEFAULT_OUT,
    font: FontOption = DEFAULT_FONT,
    only: OnlyOption = None,
) -> None:
    """Make the sample PDFs from the Korean patent corpus."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    # fontTools logs each subsetting step at INFO. It also warns that it drops NanumGothic's
    # TSI* tables, which hold Visual TrueType hinting sources and are not needed to draw glyphs.
    logging.getLogger("fontTools").setLevel(logging.ERROR)

    kinds = only or list(Kind)
    try:
        paths = build_samples(corpus, out, font, kinds)
    except SampleBuildError as error:
        logger.error("%s", error)
        raise typer.Exit(code=1) from error
    logger.info("Wrote %d PDFs to %s", len(paths), out)


if __name__ == "__main__":
    typer.run(main)
