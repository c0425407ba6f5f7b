"""Create, inspect and stop TGI pods through the `runpod` SDK.

The SDK sends GraphQL to `$RUNPOD_API_BASE_URL/graphql` (default https://api.runpod.io) and
reads the key from the module attribute `runpod.api_key`, which `stop_pod` and
`terminate_pod` take no argument for, so every call here sets that attribute first. Tests
point RUNPOD_API_BASE_URL at a fake on 127.0.0.1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from serving.errors import ServingError
from serving.runpod.config import PodConfig

logger = logging.getLogger(__name__)


class RunPodError(ServingError, RuntimeError):
    """A RunPod API call failed, or no GPU of the configured types was available."""


class RunPodAuthError(RunPodError, PermissionError):
    """RunPod rejected the API key, or none was set."""


@dataclass(frozen=True)
class DeployedPod:
    """A pod that RunPod accepted, and the GPU type it got."""

    pod_id: str
    gpu_type: str
    response: dict[str, Any]


def _sdk(api_key: str | None) -> Any:
    if not api_key:
        raise RunPodAuthError("no RunPod API key: set RUNPOD_API_KEY (or VERACLAIM_RUNPOD_API_KEY)")
    try:
        import runpod
    except ImportError as error:
        raise RunPodError("the runpod SDK is not installed: pip install 'runpod>=1.9,<1.10.1'") from error
    runpod.api_key = api_key
    return runpod


def _call(description: str, function: Any, *args: Any, **kwargs: Any) -> Any:
    import runpod.error

    try:
        return function(*args, **kwargs)
    except runpod.error.AuthenticationError as error:
        raise RunPodAuthError(f"{description} failed: RunPod rejected the API key ({error}): check RUNPOD_API_KEY") from error
    except runpod.error.QueryError as error:
        raise RunPodError(f"{description} failed: {error}") from error
    except (OSError, ValueError, KeyError, TypeError) as error:
        # requests' errors are OSErrors; ValueError and KeyError come from odd responses.
        raise RunPodError(f"{description} failed: {type(error).__name__}: {error}") from error


def deploy_pod(config: PodConfig, secrets: dict[str, str], *, api_key: str | None) -> DeployedPod:
    """Create the pod on the first GPU type of `config.gpu_types` that RunPod can provide."""
    runpod = _sdk(api_key)
    import runpod.error

    failures: list[str] = []
    for gpu_type in config.gpu_types:
        arguments = config.create_pod_arguments(gpu_type, secrets)
        logger.info("requesting a pod %r on %s with %s", config.name, gpu_type, config.image)
        try:
            response = runpod.create_pod(**arguments)
        except runpod.error.QueryError as error:
            # RunPod returns "no longer any instances available" when the type is sold out.
            logger.warning("no pod on %s: %s", gpu_type, error)
            failures.append(f"{gpu_type}: {error}")
            continue
        except runpod.error.AuthenticationError as error:
            raise RunPodAuthError(f"RunPod rejected the API key ({error}): check RUNPOD_API_KEY") from error
        except ValueError as error:
            # create_pod raises ValueError for a GPU type id that RunPod does not know.
            failures.append(f"{gpu_type}: {error}")
            continue
        except OSError as error:
            raise RunPodError(f"creating the pod failed: {type(error).__name__}: {error}") from error

        pod_id = response["id"]
        logger.info("created pod %s on %s", pod_id, gpu_type)
        return DeployedPod(pod_id=pod_id, gpu_type=gpu_type, response=response)

    raise RunPodError(
        "no GPU type in runpod.toml could be deployed: " + "; ".join(failures)
        + ": add GPU types to [project] gpu_types, try cloud_type = \"ALL\", or retry later"
    )


def get_pod(pod_id: str, *, api_key: str | None) -> dict[str, Any]:
    """Return RunPod's record of a pod. Raises RunPodError if RunPod does not know the pod."""
    runpod = _sdk(api_key)
    pod = _call(f"reading pod {pod_id}", runpod.get_pod, pod_id)
    if not pod:
        raise RunPodError(f"pod {pod_id} not found: check the id with `runpodctl get pod`")
    return pod


def stop_pod(pod_id: str, *, api_key: str | None, terminate: bool = False) -> None:
    """Stop the pod (its volume and the downloaded model stay), or terminate it (all is deleted)."""
    runpod = _sdk(api_key)
    if terminate:
        _call(f"terminating pod {pod_id}", runpod.terminate_pod, pod_id)
        logger.info("terminated pod %s", pod_id)
    else:
        _call(f"stopping pod {pod_id}", runpod.stop_pod, pod_id)
        logger.info("stopped pod %s", pod_id)


def proxy_url(template: str, pod_id: str, port: int) -> str:
    """Return the public URL of a pod's HTTP port through RunPod's proxy."""
    return template.format(pod_id=pod_id, port=port).rstrip("/")
