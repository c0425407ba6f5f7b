#!/usr/bin/env python3
"""Benchmark index builds: our cold, unchanged and one-change builds, the embedding floor, and plain LangChain.

Usage:
  python scripts/bench_build.py speed [--runs 3] [--corpus samples|texlive|all] [--skip-langchain]
  python scripts/bench_build.py rss [--pages 10000]

``speed`` copies the corpus into a temporary folder and, in each run, times in one process:
- cold: build_index into an empty folder;
- floor: only embedding the chunk texts of that index with the same model and batch size;
- langchain: PyPDFLoader → RecursiveCharacterTextSplitter measured in the model's tokens
  (the same chunk budget as ours) → HuggingFaceEmbeddings → FAISS.from_documents;
- unchanged: build_index again with nothing changed;
- one change: bytes appended to one PDF, so its hash changes, then build_index;
- that document alone: a cold build of a folder with only that PDF.
The embedding model is loaded before timing, for every pipeline. Ratios are computed per
run, within the run, and the medians are printed.

``rss`` builds an index of synthetic PDFs with that many pages in a child process and
prints the child's peak RSS and its PDF worker's.

The corpus is data/samples plus the PDFs of Debian's texlive-lang-korean package, which the
tests unpack into ~/.cache/veraclaim/test-data (run the test suite once, or
`apt-get download texlive-lang-korean && dpkg -x texlive-lang-korean_*.deb DIR`).
langchain needs langchain-community and pypdf (the test extra).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REPOSITORY = Path(__file__).resolve().parents[1]
SAMPLES = REPOSITORY / "data" / "samples"
TEXLIVE = Path.home() / ".cache" / "veraclaim" / "test-data" / "texlive-lang-korean" / "usr" / "share" / "doc"
# The document changed in the one-change run: 5 pages of statute text.
CHANGED_DOCUMENT = "patent_act.pdf"


def corpus_files(name: str) -> list[Path]:
    files: list[Path] = []
    if name in ("samples", "all"):
        files += sorted(SAMPLES.glob("*.pdf"))
    if name in ("texlive", "all"):
        if not TEXLIVE.is_dir():
            sys.exit(f"{TEXLIVE} is missing: run the index_builder tests once to fetch texlive-lang-korean")
        files += sorted(TEXLIVE.rglob("*.pdf"))
    return files


def timed(function, *arguments, **keywords) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*arguments, **keywords)
    return time.perf_counter() - started, result


def langchain_build(folder: Path, model_location: str, embeddings) -> int:
    """Index ``folder`` the plain LangChain way and return the number of chunks."""
    from langchain_community.document_loaders import PyPDFLoader
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from transformers import AutoTokenizer

    documents = []
    for path in sorted(folder.glob("*.pdf")):
        documents.extend(PyPDFLoader(str(path)).load())
    tokenizer = AutoTokenizer.from_pretrained(model_location)
    splitter = RecursiveCharacterTextSplitter.from_huggingface_tokenizer(tokenizer, chunk_size=254, chunk_overlap=32)
    chunks = [chunk for chunk in splitter.split_documents(documents) if chunk.page_content.strip()]
    FAISS.from_documents(chunks, embeddings)
    return len(chunks)


def speed(arguments: argparse.Namespace) -> None:
    from index_builder.build import build_index
    from index_builder.embed import load_embedder, model_location
    from index_builder.settings import IndexBuilderSettings
    from index_builder.store import iter_chunks
    from index_builder.versions import served_dir

    settings = IndexBuilderSettings()
    embedder = load_embedder(settings.embedding_model)
    embeddings = None
    if not arguments.skip_langchain:
        from langchain_community.embeddings import HuggingFaceEmbeddings

        embeddings = HuggingFaceEmbeddings(
            model_name=model_location(settings.embedding_model),
            encode_kwargs={"normalize_embeddings": True, "batch_size": settings.embedding_batch_size},
        )

    work = Path(tempfile.mkdtemp(prefix="veraclaim-bench-"))
    source = work / "source"
    source.mkdir()
    files = corpus_files(arguments.corpus)
    for path in files:
        # Distinct names: texlive has no name clashes with the samples, but keep it safe.
        shutil.copy(path, source / path.name)
    alone = work / "alone"
    alone.mkdir()
    shutil.copy(SAMPLES / CHANGED_DOCUMENT, alone / CHANGED_DOCUMENT)

    # Warm-up: Kiwi's model, the PDF worker's imports and torch's first call.
    build_index(str(alone), work / "warm-up", progress=False)

    rows = []
    for run in range(arguments.runs):
        out = work / f"index-{run}"
        shutil.copy(SAMPLES / CHANGED_DOCUMENT, source / CHANGED_DOCUMENT)
        cold_seconds, report = timed(build_index, str(source), out, progress=False)
        texts = [chunk.text for chunk in iter_chunks(served_dir(out) / "chunks.jsonl")]
        floor_seconds, _ = timed(embedder.embed, texts, batch_size=settings.embedding_batch_size)
        unchanged_seconds, _ = timed(build_index, str(source), out, progress=False)
        with (source / CHANGED_DOCUMENT).open("ab") as file:
            file.write(b"\n% changed\n")
        changed_seconds, changed = timed(build_index, str(source), out, progress=False)
        alone_seconds, _ = timed(build_index, str(alone), work / f"alone-{run}", progress=False)
        row = {
            "run": run + 1,
            "documents": len(report.documents),
            "pages": sum(document.pages for document in report.documents),
            "chunks": report.chunk_count,
            "cold_s": cold_seconds,
            "floor_s": floor_seconds,
            "unchanged_s": unchanged_seconds,
            "one_change_s": changed_seconds,
            "one_change_embedded_chunks": changed.embedded_chunks,
            "document_alone_s": alone_seconds,
            "cold_stages": report.stages,
        }
        if embeddings is not None:
            row["langchain_s"], row["langchain_chunks"] = timed(langchain_build, source, model_location(settings.embedding_model), embeddings)
        row["cold_over_floor"] = cold_seconds / floor_seconds
        row["unchanged_over_cold"] = unchanged_seconds / cold_seconds
        row["one_change_over_alone"] = changed_seconds / alone_seconds
        if "langchain_s" in row:
            row["langchain_over_cold"] = row["langchain_s"] / cold_seconds
        print(json.dumps(row), flush=True)
        rows.append(row)
        shutil.rmtree(out, ignore_errors=True)

    shutil.rmtree(work, ignore_errors=True)
    print("\n| measure | median | runs |")
    print("| --- | ---: | --- |")
    for key in rows[0]:
        if key in ("run", "cold_stages"):
            continue
        values = [row[key] for row in rows if key in row]
        print(f"| {key} | {statistics.median(values):.3f} | {', '.join(f'{value:.3f}' for value in values)} |")
    print(f"\nmachine: {platform.platform()}, {os.cpu_count()} cores, load average {os.getloadavg()}")


def rss(arguments: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="veraclaim-rss-"))
    source = work / "source"
    make_synthetic_pdfs(source, arguments.pages)
    child = subprocess.run(
        [sys.executable, __file__, "rss-child", str(source), str(work / "index")],
        capture_output=True,
        text=True,
        check=False,
    )
    shutil.rmtree(work, ignore_errors=True)
    if child.returncode != 0:
        sys.exit(child.stderr)
    print(child.stdout.strip())


def rss_child(source: str, out: str) -> None:
    from index_builder.build import build_index

    seconds, report = timed(build_index, source, Path(out), progress=False)
    print(
        json.dumps(
            {
                "pages": sum(document.pages for document in report.documents),
                "documents": len(report.documents),
                "chunks": report.chunk_count,
                "seconds": round(seconds, 1),
                # ru_maxrss is in KiB on Linux.
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "peak_worker_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
            }
        )
    )


def make_synthetic_pdfs(folder: Path, pages: int, pages_per_document: int = 100) -> None:
    """Write PDFs with one Korean sentence per page, ``pages`` pages in all."""
    from fpdf import FPDF

    logging.getLogger("fontTools.subset").setLevel(logging.ERROR)
    folder.mkdir(parents=True)
    for document in range(0, pages, pages_per_document):
        pdf = FPDF()
        pdf.add_font("NanumGothic", "", "/usr/share/fonts/truetype/nanum/NanumGothic.ttf")
        pdf.set_font("NanumGothic", size=11)
        for page in range(document, min(pages, document + pages_per_document)):
            pdf.add_page()
            pdf.multi_cell(0, 7, f"{page}번째 쪽: 청구항 {page % 20 + 1}. 기판 위에 게이트 절연막을 형성하는 단계를 포함하는 방법.")
        pdf.output(str(folder / f"synthetic-{document // pages_per_document:04d}.pdf"))


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    if len(sys.argv) > 1 and sys.argv[1] == "rss-child":
        rss_child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    speed_parser = commands.add_parser("speed", help="time builds against the floor and LangChain")
    speed_parser.add_argument("--runs", type=int, default=3, help="runs whose medians are reported")
    speed_parser.add_argument("--corpus", choices=["samples", "texlive", "all"], default="all")
    speed_parser.add_argument("--skip-langchain", action="store_true", help="leave out the LangChain baseline")
    rss_parser = commands.add_parser("rss", help="peak memory of a build of synthetic pages")
    rss_parser.add_argument("--pages", type=int, default=10_000, help="pages of synthetic PDFs")
    arguments = parser.parse_args()
    speed(arguments) if arguments.command == "speed" else rss(arguments)


if __name__ == "__main__":
    main()
