"""`veraclaim-chat log ...`: operator commands for the conversation log.

``log_app`` is a typer app that the chat CLI mounts as its ``log`` group. Each command
opens the log (which applies pending migrations unless VERACLAIM_LOG_AUTO_MIGRATE is
false), does its job and closes the log.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from chat_ui.errors import ChatUIError
from chat_ui.log.database import DEFAULT_DATABASE_URL
from chat_ui.log.settings import LogSettings
from chat_ui.log.store import ConversationLog

log_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Migrate, inspect, replay and purge the conversation log.",
)

DatabaseURL = Annotated[
    str,
    typer.Option(
        "--database-url",
        envvar="VERACLAIM_LOG_DATABASE_URL",
        help="Conversation log: sqlite:///PATH or mysql://USER:PASSWORD@HOST:PORT/DB.",
        show_default=True,
    ),
]
Traceback = Annotated[
    bool, typer.Option("--traceback", help="Show the Python traceback of an error.")
]


@contextmanager
def _opened(url: str, traceback: bool, settings: LogSettings | None = None) -> Iterator[ConversationLog]:
    """Open the log, and turn its errors into a one-line message and exit code 1."""
    try:
        log = ConversationLog.open(url, settings=settings)
        try:
            yield log
        finally:
            log.close()
    except ChatUIError as error:
        if traceback:
            raise
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=1) from None


@log_app.command()
def migrate(database_url: DatabaseURL = DEFAULT_DATABASE_URL, traceback: Traceback = False) -> None:
    """Apply the pending schema migrations."""
    settings = LogSettings().model_copy(update={"auto_migrate": True})
    with _opened(database_url, traceback, settings) as log:
        typer.echo(f"{log.database_name}: schema version {log.schema_version()}")


@log_app.command()
def status(database_url: DatabaseURL = DEFAULT_DATABASE_URL, traceback: Traceback = False) -> None:
    """Show the schema version and the number of records waiting in the journal."""
    with _opened(database_url, traceback) as log:
        current = log.status()
    typer.echo(f"database: {current.database_name}")
    typer.echo(f"schema version: {current.schema_version} of {current.latest_schema_version}")
    typer.echo(f"journal: {current.journal_directory}")
    typer.echo(f"journal backlog: {current.journal_backlog} records")


@log_app.command()
def replay(
    database_url: DatabaseURL = DEFAULT_DATABASE_URL,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the replay.", min=1)
    ] = 300.0,
    traceback: Traceback = False,
) -> None:
    """Write the records in the journal to the database now.

    Exits with code 2 when records are left, because the database is still unavailable or
    another process holds their journal segment.
    """
    with _opened(database_url, traceback) as log:
        backlog = log.flush(timeout=timeout)
    typer.echo(f"journal backlog: {backlog} records")
    if backlog:
        raise typer.Exit(code=2)


@log_app.command()
def purge(
    database_url: DatabaseURL = DEFAULT_DATABASE_URL,
    days: Annotated[
        int | None,
        typer.Option(
            help="Keep this many days; default VERACLAIM_LOG_RETENTION_DAYS.", min=1
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    traceback: Traceback = False,
) -> None:
    """Delete conversations, turns and feedback older than the retention period."""
    settings = LogSettings()
    retention_days = days if days is not None else settings.retention_days
    if retention_days is None:
        typer.echo(
            "Error: no retention period. Pass --days N or set VERACLAIM_LOG_RETENTION_DAYS.",
            err=True,
        )
        raise typer.Exit(code=1)

    with _opened(database_url, traceback, settings) as log:
        result = log.purge(retention_days, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    typer.echo(
        f"{verb} {result.conversations} conversations, {result.turns} turns and "
        f"{result.feedback} feedback records older than "
        f"{result.cutoff.isoformat(timespec='seconds')} UTC"
    )
    if not dry_run:
        typer.echo(f"dropped {result.rejected_entries} old entries from rejected.jsonl")
