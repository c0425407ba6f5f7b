"""The ``veraclaim-index`` command: build an index from PDFs, and search it.

Exit codes: 0 on success, including builds that skipped some PDFs; 1 when nothing could
be indexed or the build failed; 2 for invalid arguments, such as a missing source folder.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError

from index_builder.build import BuildReport, build_index
from index_builder.errors import (
    IndexBuilderError,
    InvalidSettingsError,
    InvalidSourceError,
    NothingIndexedError,
    OutputDirError,
    SourceNotFoundError,
)
from index_builder.settings import IndexBuilderSettings
from index_builder.store import open_index

logger = logging.getLogger(__name__)

EXIT_FAILED = 1
EXIT_USAGE = 2

# Errors in what the user typed, as opposed to failures while building.
_USAGE_ERRORS = (InvalidSourceError, SourceNotFoundError, OutputDirError, InvalidSettingsError)

_SNIPPET_CHARS = 160

app = typer.Typer(
    help="Build and search Veraclaim's FAISS index of PDF documents.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def configure(
    context: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help="Raise errors with tracebacks instead of short messages.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log at DEBUG level instead of INFO.")
    ] = False,
) -> None:
    """Set up logging to stderr and remember the debug switch."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    context.obj = {"debug": debug}


@app.command()
def build(
    context: typer.Context,
    source: Annotated[str, typer.Argument(help="Folder of PDFs, file:///abs/path, or s3://bucket/prefix.")],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Index folder to create, or to replace if it contains an index."),
    ],
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            "--endpoint-url",
            help="S3 endpoint URL, such as a MinIO server. Default: AWS_ENDPOINT_URL or AWS.",
        ),
    ] = None,
    embedding_model: Annotated[
        str | None,
        typer.Option(
            "--embedding-model",
            help=(
                "sentence-transformers model name or folder. "
                "Default: VERACLAIM_EMBEDDING_MODEL, else all-MiniLM-L6-v2."
            ),
        ),
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show progress bars on stderr.")
    ] = True,
) -> None:
    """Index every PDF in SOURCE into the folder given by --out."""
    try:
        overrides = {"embedding_model": embedding_model} if embedding_model else {}
        settings = IndexBuilderSettings(**overrides)
        report = build_index(source, out, settings=settings, endpoint_url=endpoint_url, progress=progress)
    except NothingIndexedError as error:
        _echo_report(error.report)
        _fail(context, error, EXIT_FAILED)
    except ValidationError as error:
        _fail(context, error, EXIT_USAGE)
    except _USAGE_ERRORS as error:
        _fail(context, error, EXIT_USAGE)
    except IndexBuilderError as error:
        _fail(context, error, EXIT_FAILED)
    _echo_report(report)


@app.command()
def search(
    context: typer.Context,
    index_dir: Annotated[Path, typer.Argument(help="Index folder written by `veraclaim-index build`.")],
    query: Annotated[str, typer.Argument(help="Question or phrase to search for.")],
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="Number of hits to print.")] = 5,
    mode: Annotated[
        str, typer.Option(help="dense (embeddings), keyword (BM25 over Korean morphemes) or hybrid (both, fused).")
    ] = "hybrid",
) -> None:
    """Print the chunks of the index that best match QUERY, with file, page and score."""
    try:
        reader = open_index(index_dir)
        hits = reader.search(query, k=k, mode=mode)
    except IndexBuilderError as error:
        _fail(context, error, EXIT_FAILED)

    if not hits:
        typer.echo("No hits.")
    for rank, hit in enumerate(hits, start=1):
        snippet = " ".join(hit.text.split())
        if len(snippet) > _SNIPPET_CHARS:
            snippet = snippet[: _SNIPPET_CHARS - 1] + "…"
        typer.echo(f"{rank}. {hit.score:.3f}  {hit.file_name}  page {hit.page}  (chunk {hit.chunk_id})")
        typer.echo(f"   {snippet}")
        typer.echo(f"   {hit.source_uri}")


def _echo_report(report: BuildReport) -> None:
    typer.echo(f"Source: {report.source}")
    typer.echo(
        f"Indexed {len(report.indexed)} of {len(report.documents)} document(s) "
        f"into {report.chunk_count} chunks in {report.duration:.1f} s."
    )
    if report.chunk_count:
        typer.echo(f"Index: {report.out}")
    if report.skipped:
        typer.echo(f"Skipped {len(report.skipped)} document(s):")
        for document in report.skipped:
            typer.echo(f"  {document.file_name}: {document.reason}  [{document.uri}]")


def _fail(context: typer.Context, error: Exception, exit_code: int) -> NoReturn:
    if context.obj and context.obj.get("debug"):
        raise error
    typer.echo(f"Error: {error}", err=True)
    raise typer.Exit(exit_code)


def main() -> None:
    """Run the command line interface; the console script ``veraclaim-index`` calls this."""
    app()
