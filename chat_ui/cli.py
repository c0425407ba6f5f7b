"""`veraclaim-chat`: serve the chat app, or run the whole embedded default on one machine."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from chat_ui.log.cli import log_app

if TYPE_CHECKING:
    from chat_ui.auth import Accounts
    from chat_ui.ops_settings import OpsSettings

logger = logging.getLogger(__name__)

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Serve the Veraclaim chat app.")
app.add_typer(log_app, name="log", help="Migrate, inspect, replay and purge the conversation log.")

# The repository's sample PDFs, which the embedded default indexes.
SAMPLES_DIR = Path(__file__).resolve().parents[1] / "data" / "samples"

ShareOption = Annotated[
    bool,
    typer.Option(
        "--share",
        help="Also serve the chat at a public gradio.live URL through Gradio's tunnel. Needs "
        "VERACLAIM_AUTH_USERS or VERACLAIM_AUTH_FILE.",
    ),
]
ForceShareOption = Annotated[
    bool,
    typer.Option("--force-share", help="Allow --share without sign-in: anyone with the link can use the chat."),
]


def quiet_network_defaults() -> None:
    """Keep every library from calling out unless the operator asked for it.

    These must be set before gradio or huggingface_hub is imported, because both read them
    at import time.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")


class LogFormatOption(str, Enum):
    """Values of --log-format."""

    text = "text"
    json = "json"


# Set by --debug: errors then keep their traceback instead of a one-line message.
_show_tracebacks = False


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error.")] = False,
    log_format: Annotated[
        LogFormatOption | None,
        typer.Option(help="Log lines as plain text or JSON objects. Default: VERACLAIM_LOG_FORMAT, else text."),
    ] = None,
) -> None:
    global _show_tracebacks
    from dotenv import load_dotenv

    from chat_ui.logsetup import configure_logging
    from chat_ui.ops_settings import OpsSettings

    _show_tracebacks = debug
    load_dotenv(".env", override=False)
    quiet_network_defaults()
    with _setup_errors():
        ops = OpsSettings()
    configure_logging(
        verbose=verbose,
        log_format=log_format.value if log_format is not None else ops.log_format,
        log_questions=ops.log_questions,
    )


@contextmanager
def _setup_errors() -> Iterator[None]:
    """Turn a configuration or start-up error into one line on stderr and exit code 2."""
    from pydantic import ValidationError

    from chat_ui.errors import ChatUIError
    from index_builder.errors import IndexBuilderError
    from index_builder.settings import describe_invalid_settings
    from serving.errors import ServingError

    try:
        yield
    except (ValidationError, ChatUIError, IndexBuilderError, ServingError, ValueError, OSError) as exc:
        if _show_tracebacks:
            raise
        message = describe_invalid_settings(exc) if isinstance(exc, ValidationError) else str(exc)
        typer.echo(f"Error: {message}", err=True)
        typer.echo("Run with --debug for the traceback.", err=True)
        raise typer.Exit(2) from exc


@app.command()
def serve(
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible base URL of the model server, e.g. http://host:8080/v1.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model id to request from the server.")] = None,
    index_dir: Annotated[Path | None, typer.Option(help="Index folder written by veraclaim-index build.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to serve the chat on.")] = None,
    share: ShareOption = False,
    force_share: ForceShareOption = False,
) -> None:
    """Serve the chat against an already running model server (TGI, vLLM or transformers serve)."""
    from chat_ui.service import ModelEndpoint, build_pipeline
    from chat_ui.settings import ChatSettings
    from serving.settings import ServingSettings

    overrides = {k: v for k, v in {"index_dir": index_dir, "port": port}.items() if v is not None}
    with _setup_errors():
        access = _access(share, force_share)
        settings = ChatSettings(**overrides)
        serving = ServingSettings()
    base_url = base_url or serving.model_base_url
    model = model or serving.model_id
    if not base_url or not model:
        raise typer.BadParameter(
            "no model server configured: pass --base-url and --model, or set VERACLAIM_MODEL_BASE_URL "
            "and VERACLAIM_MODEL_ID, or run `veraclaim-chat embedded` to start the local model too"
        )

    endpoint = ModelEndpoint.from_settings(
        serving, base_url, model, token_limits=serving.token_limits(), tokenizer_path=serving.model_tokenizer
    )
    with _setup_errors():
        pipeline = build_pipeline(settings, endpoint)
    _serve(pipeline, settings, access)


@app.command()
def embedded(
    samples: Annotated[Path, typer.Option(help="Folder of PDFs to index.")] = SAMPLES_DIR,
    rebuild: Annotated[bool, typer.Option(help="Re-read every PDF, not only new or changed ones.")] = False,
    share: ShareOption = False,
    force_share: ForceShareOption = False,
) -> None:
    """Run everything on this machine: the local model, the sample index and the chat on 127.0.0.1:7860."""
    from chat_ui.embedded import ensure_index, local_token_limits, match_local_engine
    from chat_ui.service import ModelEndpoint, build_pipeline
    from chat_ui.settings import ChatSettings
    from serving.local_model import prepare_local_model
    from serving.local_server import LocalServer
    from serving.settings import ServingSettings

    with _setup_errors():
        access = _access(share, force_share)
        settings = match_local_engine(ChatSettings())
        serving = ServingSettings()
        ensure_index(samples, settings.index_dir, force=rebuild)
        model_dir = prepare_local_model()

    # SIGTERM (from systemd, docker stop or kill) would end Python without unwinding, leaving
    # the model server running. As SystemExit it unwinds the `with` block, which stops it.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with LocalServer(model_dir) as server:
        server.wait_ready()
        # NOTE: a local model server that dies is not restarted: questions then fail, after
        # the retries, until `embedded` is started again.
        endpoint = ModelEndpoint.from_settings(
            serving,
            server.base_url,
            server.model_id,
            token_limits=local_token_limits(model_dir),
            tokenizer_path=model_dir,
        )
        with _setup_errors():
            pipeline = build_pipeline(settings, endpoint)
        _serve(pipeline, settings, access)


@dataclass(frozen=True)
class _Access:
    """Sign-in and sharing choices, checked before the slow start-up steps."""

    ops: OpsSettings
    accounts: Accounts
    share: bool
    force_share: bool


def _access(share: bool, force_share: bool) -> _Access:
    """Read the accounts and reject --share without sign-in, before the index or model loads."""
    from chat_ui.auth import load_accounts
    from chat_ui.ops_settings import OpsSettings
    from chat_ui.server import check_share

    ops = OpsSettings()
    accounts = load_accounts(ops)
    check_share(accounts, share=share, force_share=force_share)
    return _Access(ops, accounts, share, force_share)


def _serve(pipeline, settings, access: _Access) -> None:
    """Serve the chat until it stops, then let the log write what it still has queued."""
    from chat_ui.app import build_app
    from chat_ui.server import launch

    try:
        with _setup_errors():
            launch(
                build_app(pipeline, settings),
                settings,
                pipeline=pipeline,
                share=access.share,
                force_share=access.force_share,
                ops=access.ops,
                accounts=access.accounts,
            )
    finally:
        pipeline.log.close()


@app.command("hash-password")
def hash_password_command(
    user: Annotated[
        str | None, typer.Option(help="Print a user:hash line for VERACLAIM_AUTH_FILE instead of the hash alone.")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")
    ] = False,
) -> None:
    """Print a PBKDF2 hash of a password for VERACLAIM_AUTH_USERS or VERACLAIM_AUTH_FILE."""
    from chat_ui.auth import check_user_name, hash_password

    with _setup_errors():
        if user is not None:
            check_user_name(user, "--user")
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        hashed = hash_password(password)
    typer.echo(f"{user}:{hashed}" if user is not None else hashed)


def main() -> None:
    app()
