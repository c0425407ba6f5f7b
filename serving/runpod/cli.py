"""`veraclaim-serve runpod deploy|status|wait|stop`: run TGI with Qwen3 on a RunPod GPU pod."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from serving.errors import ServingError

logger = logging.getLogger(__name__)

runpod_app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Deploy TGI with Qwen3 to a RunPod pod, and watch or stop it."
)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="RunPod project file. Default: VERACLAIM_RUNPOD_CONFIG_PATH or runpod.toml.")
]
PodIdArgument = Annotated[str, typer.Argument(help="Pod id, as `deploy` printed it.")]


def _fail(ctx: typer.Context, error: Exception) -> typer.Exit:
    parent = ctx.find_root().obj or {}
    if parent.get("debug"):
        raise error
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(code=1)


def _settings(config: Path | None) -> Any:
    from serving.settings import RunPodSettings

    return RunPodSettings(**({"config_path": config} if config else {}))


@runpod_app.command()
def deploy(
    ctx: typer.Context,
    config: ConfigOption = None,
    model_id: Annotated[str | None, typer.Option(help="Model to serve. Default: [tgi] model_id (Qwen/Qwen3-8B).")] = None,
    revision: Annotated[str | None, typer.Option(help="Commit of the model repository to serve.")] = None,
    gpu_type: Annotated[
        list[str] | None, typer.Option(help="GPU type id to try, most preferred first; repeat it. Default: gpu_types.")
    ] = None,
    max_input_tokens: Annotated[int | None, typer.Option(help="TGI --max-input-tokens.")] = None,
    max_total_tokens: Annotated[int | None, typer.Option(help="TGI --max-total-tokens (input plus output).")] = None,
    image: Annotated[str | None, typer.Option(help="TGI image, pinned to a release of 3.3.0 or later.")] = None,
    name: Annotated[str | None, typer.Option(help="Pod name.")] = None,
    volume_gb: Annotated[int | None, typer.Option(help="Pod volume in GB for the model cache.")] = None,
    network_volume_id: Annotated[str | None, typer.Option(help="Network volume for the model cache.")] = None,
    cloud_type: Annotated[str | None, typer.Option(help="SECURE, COMMUNITY or ALL.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the request, with secrets hidden, and call nothing.")
    ] = False,
    allow_no_api_key: Annotated[
        bool, typer.Option(help="Deploy without a TGI API key, so anyone with the pod's URL can use it.")
    ] = False,
) -> None:
    """Create a pod that runs TGI with the configured model, and print its id and base URL."""
    from serving.runpod.config import load_pod_config
    from serving.runpod.pods import deploy_pod, proxy_url
    from serving.settings import ServingSettings

    try:
        settings = _settings(config)
        pod_config = load_pod_config(
            settings.config_path,
            name=name,
            image=image,
            gpu_types=gpu_type or None,
            **{
                "tgi.model_id": model_id,
                "tgi.revision": revision,
                "tgi.max_input_tokens": max_input_tokens,
                "tgi.max_total_tokens": max_total_tokens,
                "pod.volume_in_gb": volume_gb,
                "pod.network_volume_id": network_volume_id,
                "pod.cloud_type": cloud_type,
            },
        )

        # The TGI key is the one the chat client sends, so the two always match.
        serving_settings = ServingSettings()
        secrets = {}
        if serving_settings.model_api_key:
            secrets["API_KEY"] = serving_settings.model_api_key.get_secret_value()
        if settings.hf_token:
            secrets["HF_TOKEN"] = settings.hf_token.get_secret_value()
        if "API_KEY" not in secrets and not allow_no_api_key:
            raise ServingError(
                "no TGI API key: set VERACLAIM_MODEL_API_KEY so that only the chat can use the pod, "
                "or pass --allow-no-api-key"
            )

        if dry_run:
            typer.echo(json.dumps(_dry_run_report(pod_config, secrets, settings), indent=2, ensure_ascii=False))
            return

        api_key = settings.api_key.get_secret_value() if settings.api_key else None
        pod = deploy_pod(pod_config, secrets, api_key=api_key)
        base_url = f"{proxy_url(settings.proxy_url_template, pod.pod_id, pod_config.tgi.port)}/v1"
        typer.echo(
            f"pod created\n"
            f"  pod id:   {pod.pod_id}\n"
            f"  GPU:      {pod.gpu_type}\n"
            f"  base URL: {base_url}\n"
            f"Wait until the model is loaded with:\n"
            f"  veraclaim-serve runpod wait {pod.pod_id}\n"
            f"Then point the chat at it:\n"
            f"  export VERACLAIM_MODEL_BASE_URL={base_url}\n"
            f"  export VERACLAIM_MODEL_ID={pod_config.tgi.model_id}"
        )
    except (ServingError, ValueError) as error:
        raise _fail(ctx, error) from error


def _dry_run_report(pod_config: Any, secrets: dict[str, str], settings: Any) -> dict[str, Any]:
    from runpod.api.mutations.pods import generate_pod_deployment_mutation

    from serving.runpod.config import redacted

    first = redacted(pod_config.create_pod_arguments(pod_config.gpu_types[0], secrets))
    # The mutation that runpod.create_pod sends for the first GPU type, built by the SDK
    # itself, with create_pod's defaults for the two minimums it always sends.
    mutation = generate_pod_deployment_mutation(**{"min_vcpu_count": 1, "min_memory_in_gb": 1, **first})
    return {
        "create_pod": first,
        "gpu_types_in_order": pod_config.gpu_types,
        "graphql_mutation": " ".join(mutation.split()),
        "proxy_base_url": proxy_url_for_docs(settings.proxy_url_template, pod_config.tgi.port),
    }


def proxy_url_for_docs(template: str, port: int) -> str:
    return template.format(pod_id="<pod_id>", port=port) + "/v1"


@runpod_app.command()
def status(
    ctx: typer.Context,
    pod_id: PodIdArgument,
    config: ConfigOption = None,
) -> None:
    """Print the pod's state from RunPod, and whether TGI's /health returns 200."""
    from serving.health import probe_health
    from serving.runpod.config import load_pod_config
    from serving.runpod.pods import get_pod, proxy_url

    try:
        settings = _settings(config)
        port = load_pod_config(settings.config_path).tgi.port
        api_key = settings.api_key.get_secret_value() if settings.api_key else None
        pod = get_pod(pod_id, api_key=api_key)
        base_url = proxy_url(settings.proxy_url_template, pod_id, port)
        probe = probe_health(base_url)
        machine = pod.get("machine") or {}
        typer.echo(
            f"pod {pod_id} ({pod.get('name')})\n"
            f"  desired status: {pod.get('desiredStatus')}\n"
            f"  image:          {pod.get('imageName')}\n"
            f"  GPU:            {pod.get('gpuCount')} x {machine.get('gpuDisplayName')}\n"
            f"  cost per hour:  {pod.get('costPerHr')}\n"
            f"  uptime:         {pod.get('uptimeSeconds')} s\n"
            f"  base URL:       {base_url}/v1\n"
            f"  TGI health:     {'ready' if probe.ready else probe.describe()}"
        )
    except (ServingError, ValueError) as error:
        raise _fail(ctx, error) from error


@runpod_app.command()
def wait(
    ctx: typer.Context,
    pod_id: PodIdArgument,
    config: ConfigOption = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait; the first boot downloads the model.")] = 1800,
    interval: Annotated[float, typer.Option(help="Seconds between two /health probes.")] = 10,
) -> None:
    """Poll TGI's /health through RunPod's proxy until the model is loaded."""
    from serving.health import HealthProbe, wait_until_healthy
    from serving.runpod.config import load_pod_config
    from serving.runpod.pods import proxy_url

    def show(probe: HealthProbe, elapsed: float) -> None:
        typer.echo(f"not ready after {elapsed:.0f} s: GET {probe.url}: {probe.describe()}", err=True)

    try:
        settings = _settings(config)
        port = load_pod_config(settings.config_path).tgi.port
        base_url = proxy_url(settings.proxy_url_template, pod_id, port)
        typer.echo(f"waiting for {base_url}/health (up to {timeout:g} s)", err=True)
        wait_until_healthy(base_url, timeout=timeout, interval=interval, on_progress=show)
        typer.echo(f"ready: {base_url}/v1")
    except (ServingError, ValueError) as error:
        raise _fail(ctx, error) from error


@runpod_app.command()
def stop(
    ctx: typer.Context,
    pod_id: PodIdArgument,
    terminate: Annotated[
        bool, typer.Option(help="Delete the pod and its volume instead of stopping it.")
    ] = False,
) -> None:
    """Stop the pod (GPU billing ends, the volume stays), or terminate it."""
    from serving.runpod.pods import stop_pod

    try:
        settings = _settings(None)
        api_key = settings.api_key.get_secret_value() if settings.api_key else None
        stop_pod(pod_id, api_key=api_key, terminate=terminate)
        typer.echo(f"pod {pod_id} {'terminated' if terminate else 'stopped'}")
    except (ServingError, ValueError) as error:
        raise _fail(ctx, error) from error
