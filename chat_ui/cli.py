"""`veraclaim-chat`: serve the chat app, or run the whole embedded default on one machine."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from chat_ui.log.cli import log_app

logger = logging.getLogger(__name__)

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Serve the Veraclaim chat app.")
app.add_typer(log_app, name="log", help="Migrate, inspect, replay and purge the conversation log.")

# The repository's sample PDFs, which the embedded default indexes.
SAMPLES_DIR = Path(__file__).resolve().parents[1] / "data" / "samples"


def quiet_network_defaults() -> None:
    """Keep every library from calling out unless the operator asked for it.

    These must be set before gradio or huggingface_hub is imported, because both read them
    at import time.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# Set by --debug: errors then keep their traceback instead of a one-line message.
_show_tracebacks = False


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error.")] = False,
) -> None:
    global _show_tracebacks
    from dotenv import load_dotenv

    load_dotenv(".env", override=False)
    quiet_network_defaults()
    _configure_logging(verbose)
    _show_tracebacks = debug


@contextmanager
def _setup_errors() -> Iterator[None]:
    """Turn a configuration or start-up error into one line on stderr and exit code 2."""
    from pydantic import ValidationError

    from chat_ui.errors import ChatUIError
    from index_builder.errors import IndexBuilderError
    from serving.errors import ServingError

    try:
        yield
    except (ValidationError, ChatUIError, IndexBuilderError, ServingError, ValueError, OSError) as exc:
        if _show_tracebacks:
            raise
        typer.echo(f"Error: {exc}", err=True)
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
) -> None:
    """Serve the chat against an already running model server (TGI, vLLM or transformers serve)."""
    from chat_ui.service import ModelEndpoint, build_pipeline
    from chat_ui.settings import ChatSettings
    from serving.settings import ServingSettings

    overrides = {k: v for k, v in {"index_dir": index_dir, "port": port}.items() if v is not None}
    with _setup_errors():
        settings = ChatSettings(**overrides)
        serving = ServingSettings()
    base_url = base_url or serving.model_base_url
    model = model or serving.model_id
    if not base_url or not model:
        raise typer.BadParameter(
            "no model server configured: pass --base-url and --model, or set VERACLAIM_MODEL_BASE_URL "
            "and VERACLAIM_MODEL_ID, or run `veraclaim-chat embedded` to start the local model too"
        )

    api_key = serving.model_api_key.get_secret_value() if serving.model_api_key else None
    endpoint = ModelEndpoint(
        base_url,
        model,
        api_key=api_key,
        timeout_s=serving.model_timeout_s,
        stall_timeout_s=serving.model_stall_timeout_s,
        retry=serving.retry_policy(),
        token_limits=serving.token_limits(),
        tokenizer_path=serving.model_tokenizer,
    )
    with _setup_errors():
        pipeline = build_pipeline(settings, endpoint)
    _serve(pipeline, settings)


@app.command()
def embedded(
    samples: Annotated[Path, typer.Option(help="Folder of PDFs to index.")] = SAMPLES_DIR,
    rebuild: Annotated[bool, typer.Option(help="Re-read every PDF, not only new or changed ones.")] = False,
) -> None:
    """Run everything on this machine: the local model, the sample index and the chat on 127.0.0.1:7860."""
    from chat_ui.embedded import ensure_index, local_token_limits
    from chat_ui.service import ModelEndpoint, build_pipeline
    from chat_ui.settings import ChatSettings
    from serving.local_model import prepare_local_model
    from serving.local_server import LocalServer

    with _setup_errors():
        settings = ChatSettings()
        ensure_index(samples, settings.index_dir, force=rebuild)
        model_dir = prepare_local_model()

    # SIGTERM (from systemd, docker stop or kill) would end Python without unwinding, leaving
    # the model server running. As SystemExit it unwinds the `with` block, which stops it.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with LocalServer(model_dir) as server:
        server.wait_ready()
        endpoint = ModelEndpoint(
            server.base_url,
            server.model_id,
            token_limits=local_token_limits(model_dir),
            tokenizer_path=model_dir,
        )
        with _setup_errors():
            pipeline = build_pipeline(settings, endpoint)
        _serve(pipeline, settings)


def _serve(pipeline, settings) -> None:
    """Serve the chat until it stops, then let the log write what it still has queued."""
    from chat_ui.app import build_app
    from chat_ui.server import launch

    try:
        launch(build_app(pipeline, settings), settings)
    finally:
        pipeline.log.close()


def main() -> None:
    app()
