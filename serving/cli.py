"""`veraclaim-serve`: prepare and run the local model server, ask a server one question, or run TGI on RunPod."""

from __future__ import annotations

import enum
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from serving.errors import ServingError
from serving.runpod.cli import runpod_app

logger = logging.getLogger(__name__)

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Run and query the Veraclaim model server.")
app.add_typer(runpod_app, name="runpod")

# Seconds between checks that the server process is still alive.
WATCH_INTERVAL_S = 0.5


class ReasoningMode(str, enum.Enum):
    """Values of `transformers serve --reasoning`."""

    on = "on"
    off = "off"
    auto = "auto"


def _quiet_network_defaults() -> None:
    # huggingface_hub reads these when it is imported, so they are set before any command
    # imports it. An operator's own values win.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_UPDATE_CHECK", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")


@app.callback()
def _main(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")] = False,
    debug: Annotated[bool, typer.Option(help="Show the traceback of an error instead of its message only.")] = False,
) -> None:
    from dotenv import load_dotenv

    load_dotenv(".env", override=False)
    _quiet_network_defaults()
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        # httpx2 logs every request at INFO, which would interleave with a streamed answer.
        logging.getLogger("httpx2").setLevel(logging.WARNING)
    ctx.obj = {"debug": debug}


def _fail(ctx: typer.Context, error: Exception) -> typer.Exit:
    """Print the error's message to stderr and return the exit to raise, or re-raise with --debug."""
    if ctx.obj and ctx.obj.get("debug"):
        raise error
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(code=1)


@app.command("prepare-model")
def prepare_model(
    ctx: typer.Context,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Folder for converted models. Default: VERACLAIM_MODEL_CACHE or ~/.cache/veraclaim/models."),
    ] = None,
) -> None:
    """Convert the bundled SmolLM2 GGUF file into a model folder (once) and print its path."""
    from serving.local_model import prepare_local_model

    try:
        folder = prepare_local_model(cache_dir)
    except ServingError as error:
        raise _fail(ctx, error) from error
    typer.echo(str(folder))


@app.command()
def local(
    ctx: typer.Context,
    model: Annotated[
        str | None,
        typer.Option(help="Model folder or model id to serve. Default: the converted SmolLM2 folder."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8000,
    reasoning: Annotated[
        ReasoningMode | None,
        typer.Option(help="Reasoning mode for models whose chat template supports it, such as Qwen3."),
    ] = None,
    log_file: Annotated[
        Path | None, typer.Option(help="File for the server's output. Default: a new file in the temp folder.")
    ] = None,
    ready_timeout: Annotated[float, typer.Option(help="Seconds to wait for the server to become healthy.")] = 180,
) -> None:
    """Start `transformers serve` on this machine and run until Ctrl-C or SIGTERM."""
    from serving.local_model import prepare_local_model
    from serving.local_server import LocalServer

    # SIGTERM ends the wait below the same way as Ctrl-C, so both stop the server. SIGINT is
    # set too, because a non-interactive shell starts background jobs with SIGINT ignored.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)

    server = None
    try:
        served = model or prepare_local_model()
        server = LocalServer(
            served, host=host, port=port, log_path=log_file, reasoning=reasoning.value if reasoning else None
        )
        server.start()
        server.wait_ready(ready_timeout)
        typer.echo(
            f"model server ready\n"
            f"  base URL: {server.base_url}\n"
            f"  model id: {server.model_id}\n"
            f"  log:      {server.log_path}\n"
            f"Use it with:\n"
            f"  export VERACLAIM_MODEL_BASE_URL={server.base_url}\n"
            f"  export VERACLAIM_MODEL_ID={server.model_id}\n"
            f"Press Ctrl-C to stop."
        )
        while server.poll() is None:
            time.sleep(WATCH_INTERVAL_S)
        raise ServingError(f"the model server exited with code {server.poll()}: see its log {server.log_path}")
    except KeyboardInterrupt:
        typer.echo("stopping the model server", err=True)
    except (ServingError, ValueError) as error:
        raise _fail(ctx, error) from error
    finally:
        if server is not None:
            server.stop()


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@app.command()
def chat(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="Question to send as one user message.")],
    base_url: Annotated[
        str | None,
        typer.Option(help="Model server's base URL, e.g. http://127.0.0.1:8000/v1. Default: VERACLAIM_MODEL_BASE_URL."),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model id to request. Default: VERACLAIM_MODEL_ID, else the server's only model.")
    ] = None,
    system: Annotated[str | None, typer.Option(help="Optional system message.")] = None,
    max_tokens: Annotated[int, typer.Option(help="Maximum number of tokens to generate.")] = 512,
    temperature: Annotated[
        float | None,
        typer.Option(help="Sampling temperature. Default: Qwen3's value for the thinking mode, else 0.3."),
    ] = None,
    thinking: Annotated[
        bool | None,
        typer.Option(
            "--thinking/--no-thinking",
            help="Ask Qwen3 to think first (/think) or not (/no_think). Default: send no switch.",
        ),
    ] = None,
    show_reasoning: Annotated[
        bool, typer.Option(help="Print the model's reasoning to stderr. The answer always goes to stdout.")
    ] = False,
) -> None:
    """Stream one answer from the model server to stdout."""
    from serving.client import ChatClient, list_served_models
    from serving.settings import ServingSettings

    try:
        overrides = {key: value for key, value in {"model_base_url": base_url, "model_id": model}.items() if value}
        settings = ServingSettings(**overrides)
        if settings.model_base_url is None:
            raise ServingError(
                "no model server configured: start one with `veraclaim-serve local`, then pass --base-url "
                "or set VERACLAIM_MODEL_BASE_URL"
            )
        api_key = settings.model_api_key.get_secret_value() if settings.model_api_key else None
        model_id = settings.model_id or _only_served_model(
            list_served_models(settings.model_base_url, api_key=api_key, timeout=settings.model_timeout_s),
            settings.model_base_url,
        )

        client = ChatClient(
            settings.model_base_url,
            model_id,
            api_key=api_key,
            timeout=settings.model_timeout_s,
            stall_timeout=settings.model_stall_timeout_s,
            retry=settings.retry_policy(),
        )
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
        stream = client.stream_events(messages, thinking=thinking, max_tokens=max_tokens, temperature=temperature)
        for event in stream:
            if event.kind == "answer":
                sys.stdout.write(event.text)
                sys.stdout.flush()
            elif event.kind == "status":
                typer.echo(f"[{event.text}]", err=True)
            elif show_reasoning:
                typer.echo(event.text, err=True, nl=False)
    except (ServingError, ValueError) as error:
        raise _fail(ctx, error) from error
    finally:
        # End the answer's line, also when an error cut it short.
        sys.stdout.write("\n")
        sys.stdout.flush()


def _only_served_model(model_ids: list[str], base_url: str) -> str:
    if len(model_ids) == 1:
        return model_ids[0]
    raise ServingError(
        f"{base_url}/models lists {len(model_ids)} models ({', '.join(model_ids) or 'none'}): "
        "pass --model or set VERACLAIM_MODEL_ID"
    )


def main() -> None:
    app()
