"""The ``veraclaim-index`` command: build, rebuild, roll back, push, pull, search and evaluate an index.

Exit codes (docs/rebuild.md):
- 0: success, including builds that skipped some PDFs and rebuilds in which nothing changed;
- 1: the build, rollback, push or pull failed, and CURRENT names the version it named before
  (this includes a new version that the evaluation gate rejected);
- 2: invalid arguments or settings, such as a missing source folder or an invalid golden set;
- 3: another build, rollback or pull holds the index folder's lock;
- 4: ``rebuild`` only: a new version was published, but some documents failed in a way that
  may not recur (a download), so the next run retries them.
"""

from __future__ import annotations

import json
import logging
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError

from index_builder.build import build_index
from index_builder.errors import (
    BuildLockedError,
    IndexBuilderError,
    IndexNotFoundError,
    InvalidSettingsError,
    InvalidSourceError,
    NothingIndexedError,
    OutputDirError,
    SourceNotFoundError,
)
from index_builder.evaluate import GoldenSetError, evaluate, format_table, load_golden, unreachable_pages
from index_builder.reader import SEARCH_MODES, open_index
from index_builder.report import BuildReport
from index_builder.settings import IndexBuilderSettings, describe_invalid_settings
from index_builder.versions import REPORT_FILE, BuildLock, current_version, list_versions
from index_builder.versions import rollback as rollback_version

logger = logging.getLogger(__name__)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3
EXIT_PARTIAL = 4
# The build report that `rebuild` writes when --report is not given, inside the index root.
DEFAULT_REPORT_NAME = REPORT_FILE

# Errors in what the user typed, as opposed to failures while building.
_USAGE_ERRORS = (InvalidSourceError, SourceNotFoundError, OutputDirError, InvalidSettingsError, GoldenSetError)

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


_SOURCE_ARGUMENT = typer.Argument(help="Folder of PDFs, file:///abs/path, or s3://bucket/prefix.")
_ENDPOINT_OPTION = typer.Option(
    "--endpoint-url", help="S3 endpoint URL, such as a MinIO server. Default: AWS_ENDPOINT_URL or AWS."
)
_MODEL_OPTION = typer.Option(
    "--embedding-model",
    help="sentence-transformers model name or folder. Default: VERACLAIM_EMBEDDING_MODEL, else all-MiniLM-L6-v2.",
)
_FULL_OPTION = typer.Option("--full", help="Read every PDF again instead of reusing the chunks of unchanged ones.")
_PUBLISH_OPTION = typer.Option(
    "--publish-to", help="s3://bucket/prefix to upload the new version and its CURRENT pointer to."
)


@app.command()
def build(
    context: typer.Context,
    source: Annotated[str, _SOURCE_ARGUMENT],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Index folder: a new version is added and CURRENT switched to it."),
    ],
    endpoint_url: Annotated[str | None, _ENDPOINT_OPTION] = None,
    embedding_model: Annotated[str | None, _MODEL_OPTION] = None,
    full: Annotated[bool, _FULL_OPTION] = False,
    publish_to: Annotated[str | None, _PUBLISH_OPTION] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show progress bars on stderr.")
    ] = True,
) -> None:
    """Index every PDF in SOURCE into a new version of the index folder given by --out."""
    report = _run_build(context, source, out, endpoint_url, embedding_model, full, publish_to, progress, None)
    _echo_report(report)


@app.command()
def rebuild(
    context: typer.Context,
    source: Annotated[str, _SOURCE_ARGUMENT],
    out: Annotated[Path, typer.Option("--out", "-o", help="Index folder to update.")],
    report_path: Annotated[
        Path | None,
        typer.Option("--report", help=f"JSON build report to write. Default: OUT/{DEFAULT_REPORT_NAME}."),
    ] = None,
    endpoint_url: Annotated[str | None, _ENDPOINT_OPTION] = None,
    embedding_model: Annotated[str | None, _MODEL_OPTION] = None,
    full: Annotated[bool, _FULL_OPTION] = False,
    publish_to: Annotated[str | None, _PUBLISH_OPTION] = None,
) -> None:
    """Update the index for a scheduler: incremental, no progress bars, a JSON report, exit code 3 if already running."""
    report_file = report_path or Path(out) / DEFAULT_REPORT_NAME
    report = _run_build(context, source, out, endpoint_url, embedding_model, full, publish_to, False, report_file)
    _echo_report(report)
    report.write_json(report_file)
    if report.published and report.failed_transiently:
        typer.echo(f"{len(report.failed_transiently)} document(s) failed and will be retried next run.", err=True)
        raise typer.Exit(EXIT_PARTIAL)


def _run_build(
    context: typer.Context,
    source: str,
    out: Path,
    endpoint_url: str | None,
    embedding_model: str | None,
    full: bool,
    publish_to: str | None,
    progress: bool,
    report_file: Path | None,
) -> BuildReport:
    """Run a build, and an upload if asked; on failure, write the report if asked and exit."""
    try:
        overrides = {"embedding_model": embedding_model} if embedding_model else {}
        settings = IndexBuilderSettings(**overrides)
        if settings.eval_golden is not None:
            # An invalid golden set fails here, before minutes of embedding, not at publishing.
            load_golden(settings.eval_golden)
        report = build_index(source, out, settings=settings, endpoint_url=endpoint_url, progress=progress, full=full)
        if publish_to and report.published and report.version:
            from index_builder.remote import upload_version

            upload_version(report.out, report.version, publish_to, endpoint_url=endpoint_url, settings=settings)
        return report
    except BuildLockedError as error:
        _fail(context, error, EXIT_LOCKED)
    except NothingIndexedError as error:
        _echo_report(error.report)
        _write_failure(report_file, error.report, error)
        _fail(context, error, EXIT_FAILED)
    except ValidationError as error:
        _fail(context, ValueError(describe_invalid_settings(error)), EXIT_USAGE)
    except _USAGE_ERRORS as error:
        _fail(context, error, EXIT_USAGE)
    except IndexBuilderError as error:
        _write_failure(report_file, BuildReport(source=source, out=Path(out)), error)
        _fail(context, error, EXIT_FAILED)


def _write_failure(report_file: Path | None, report: BuildReport, error: Exception) -> None:
    if report_file is None:
        return
    report.error = str(error)
    report.version = current_version(report.out) if Path(report.out).is_dir() else None
    report.write_json(report_file)


@app.command()
def rollback(
    context: typer.Context,
    index_dir: Annotated[Path, typer.Argument(help="Index folder whose CURRENT to move back.")],
    to: Annotated[
        str | None, typer.Option("--to", help="Version id to serve. Default: the one before the current version.")
    ] = None,
) -> None:
    """Serve the previous version again (or the one given by --to), by switching CURRENT."""
    root = index_dir.expanduser().resolve()
    try:
        with BuildLock(root):
            before = current_version(root)
            after = rollback_version(root, to)
    except BuildLockedError as error:
        _fail(context, error, EXIT_LOCKED)
    except IndexBuilderError as error:
        _fail(context, error, EXIT_FAILED)
    typer.echo(f"CURRENT: {before} -> {after}")
    typer.echo(f"Versions: {', '.join(list_versions(root))}")


@app.command()
def pull(
    context: typer.Context,
    uri: Annotated[str, typer.Argument(help="s3://bucket/prefix that a build published to with --publish-to.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Local index folder of this chat replica.")],
    endpoint_url: Annotated[str | None, _ENDPOINT_OPTION] = None,
) -> None:
    """Fetch the version that the bucket's CURRENT names, validate it, and make it this folder's CURRENT."""
    from index_builder.remote import pull_current

    try:
        # A replica takes what the builder published and never evaluates it, so the
        # VERACLAIM_EVAL_* variables, even invalid ones, are not read here.
        settings = IndexBuilderSettings(eval_golden=None, eval_min_recall_at_5=0.0, eval_max_drop=1.0)
        version, fetched = pull_current(uri, out, endpoint_url=endpoint_url, settings=settings)
    except BuildLockedError as error:
        _fail(context, error, EXIT_LOCKED)
    except ValidationError as error:
        _fail(context, ValueError(describe_invalid_settings(error)), EXIT_USAGE)
    except _USAGE_ERRORS as error:
        _fail(context, error, EXIT_USAGE)
    except IndexBuilderError as error:
        _fail(context, error, EXIT_FAILED)
    typer.echo(f"{'Pulled' if fetched else 'Already current:'} version {version} into {out.expanduser().resolve()}")


@app.command()
def push(
    context: typer.Context,
    index_dir: Annotated[Path, typer.Argument(help="Index folder whose current version to upload.")],
    uri: Annotated[str, typer.Argument(help="s3://bucket/prefix to upload to.")],
    endpoint_url: Annotated[str | None, _ENDPOINT_OPTION] = None,
) -> None:
    """Upload the current version of INDEX_DIR to S3 and switch the bucket's CURRENT to it."""
    from index_builder.remote import upload_version

    root = index_dir.expanduser().resolve()
    try:
        version = current_version(root)
        if version is None:
            raise OutputDirError(f"{root} has no CURRENT version to upload. Build one with `veraclaim-index build`.")
        upload_version(root, version, uri, endpoint_url=endpoint_url, settings=IndexBuilderSettings())
    except _USAGE_ERRORS as error:
        _fail(context, error, EXIT_USAGE)
    except IndexBuilderError as error:
        _fail(context, error, EXIT_FAILED)
    typer.echo(f"Uploaded version {version} to {uri}")


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


class EvalMode(StrEnum):
    """The --mode values of `eval`: one search mode, or all of them."""

    ALL = "all"
    DENSE = "dense"
    KEYWORD = "keyword"
    HYBRID = "hybrid"


@app.command("eval")
def eval_command(
    context: typer.Context,
    index_dir: Annotated[Path, typer.Argument(help="Index folder written by `veraclaim-index build`.")],
    golden: Annotated[
        Path, typer.Option("--golden", help="Golden set: JSON Lines of questions and the pages that answer them.")
    ],
    mode: Annotated[EvalMode, typer.Option(help="Search mode to evaluate, or all three.")] = EvalMode.ALL,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full result as JSON instead of tables.")] = False,
    misses: Annotated[
        bool, typer.Option("--misses", help="Also list the questions with no correct hit in the top 5.")
    ] = False,
) -> None:
    """Print recall@1, recall@5, recall@10 and MRR@10 of INDEX_DIR on the golden set, per search mode."""
    modes = SEARCH_MODES if mode is EvalMode.ALL else (mode.value,)
    try:
        items = load_golden(golden)
        reader = open_index(index_dir)
        result = evaluate(reader, items, modes, golden=str(golden))
    except (GoldenSetError, IndexNotFoundError) as error:
        _fail(context, error, EXIT_USAGE)
    except IndexBuilderError as error:
        _fail(context, error, EXIT_FAILED)

    # A page the index does not contain can never be found: say so instead of silently
    # counting it as a miss.
    for problem in unreachable_pages(items, reader.pages()):
        typer.echo(f"Warning: {problem}; check the golden file's file name and page.", err=True)

    if as_json:
        document = {
            "index": str(reader.path),
            "version": reader.version,
            "chunk_count": reader.chunk_count,
            **result.to_dict(),
        }
        typer.echo(json.dumps(document, ensure_ascii=False, indent=2))
        return
    typer.echo(f"Index: {reader.path} (version {reader.version or 'unversioned'}, {reader.chunk_count} chunks)")
    typer.echo(format_table(result, misses=misses))


def _echo_report(report: BuildReport) -> None:
    typer.echo(f"Source: {report.source}")
    typer.echo(
        f"Indexed {len(report.indexed)} of {len(report.documents)} document(s) "
        f"into {report.chunk_count} chunks in {report.duration:.1f} s "
        f"({report.reused_chunks} chunks reused, {report.embedded_chunks} embedded)."
    )
    if report.published:
        typer.echo(f"Index: {report.out} (version {report.version}, now CURRENT)")
    elif report.version:
        typer.echo(f"Index: {report.out} unchanged (version {report.version} stays CURRENT)")
    if report.removed_documents:
        typer.echo(f"Removed {len(report.removed_documents)} document(s) no longer in the source.")
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
