"""The pod that serves Qwen3 with TGI: read from runpod.toml, and turned into `create_pod` arguments.

runpod.toml follows the layout that RunPod's project tooling (`runpodctl project`, `runpod
project`) reads: a top-level `name` and a `[project]` table with `base_image`, `gpu_types`
(most preferred first), `gpu_count`, `volume_mount_path`, `ports`, `container_disk_size_gb`
and `[project.env_vars]`. Both tools look keys up by name and ignore the rest, so the TGI
launcher settings live in an extra `[tgi]` table and the pod's extras in `[pod]`.

Secrets never enter the file or the printed request: TGI's API key and the Hugging Face
token are passed to the pod as environment variables at deploy time, and `redacted` hides
their values.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from serving.errors import ServingError

TGI_IMAGE_REPOSITORY = "ghcr.io/huggingface/text-generation-inference"
# Qwen3 runs on TGI from 3.3.0 on, and 3.3.6 is TGI's last release.
MIN_TGI_VERSION = (3, 3, 0)
REDACTED = "***"

# Environment variables of the pod that hold secrets. TGI's launcher reads its --api-key
# from API_KEY, and huggingface_hub reads HF_TOKEN.
SECRET_ENV = ("API_KEY", "HF_TOKEN")

# The runpod SDK (checked with 1.10.0) writes every value into its GraphQL mutation between
# double quotes without escaping, so a quote, backslash or newline would break the request.
_UNSAFE_CHARS = re.compile(r'["\\\n\r]')


class RunPodConfigError(ServingError, ValueError):
    """runpod.toml or a deploy option is invalid."""


class TgiSettings(BaseModel):
    """The `[tgi]` table: what the launcher in the pod serves, and its token limits."""

    model_config = ConfigDict(extra="forbid")

    model_id: str = "Qwen/Qwen3-8B"
    # A commit of the model repository; None serves its main branch as it is at boot.
    revision: str | None = None
    dtype: Literal["bfloat16", "float16"] = "bfloat16"
    # Qwen3's config sets max_position_embeddings to 40,960: 32,768 tokens of output
    # (reasoning and answer) and 8,192 of prompt, as its model cards explain.
    max_input_tokens: int = Field(8192, gt=0)
    max_total_tokens: int = Field(40960, gt=0)
    max_batch_prefill_tokens: int | None = Field(None, gt=0)
    port: int = Field(8080, ge=1, le=65535)

    @model_validator(mode="after")
    def _check_limits(self) -> TgiSettings:
        if self.max_total_tokens <= self.max_input_tokens:
            raise ValueError(
                f"max_total_tokens ({self.max_total_tokens}) must exceed max_input_tokens ({self.max_input_tokens}), "
                "leaving room for the reasoning and the answer"
            )
        if self.max_batch_prefill_tokens is not None and self.max_batch_prefill_tokens < self.max_input_tokens:
            raise ValueError("max_batch_prefill_tokens must be at least max_input_tokens, or TGI fails to start: raise it or remove it")
        return self


class PodSettings(BaseModel):
    """The `[pod]` table: what RunPod's project layout has no key for."""

    model_config = ConfigDict(extra="forbid")

    cloud_type: Literal["SECURE", "COMMUNITY", "ALL"] = "SECURE"
    # A pod volume keeps the downloaded model across stop and resume.
    volume_in_gb: int = Field(80, ge=0)
    network_volume_id: str | None = None
    data_center_id: str | None = None


class PodConfig(BaseModel):
    """Everything that `runpod.create_pod` needs, except the secrets."""

    model_config = ConfigDict(extra="forbid")

    name: str = "veraclaim-tgi"
    image: str = f"{TGI_IMAGE_REPOSITORY}:3.3.6"
    gpu_types: list[str] = Field(
        default_factory=lambda: ["NVIDIA RTX A6000", "NVIDIA A40", "NVIDIA L40S", "NVIDIA RTX 6000 Ada Generation"],
        min_length=1,
    )
    gpu_count: int = Field(1, ge=1)
    volume_mount_path: str = "/data"
    container_disk_in_gb: int = Field(20, ge=1)
    env: dict[str, str] = Field(default_factory=dict)
    tgi: TgiSettings = Field(default_factory=TgiSettings)
    pod: PodSettings = Field(default_factory=PodSettings)

    @field_validator("image")
    @classmethod
    def _check_image(cls, image: str) -> str:
        repository, _, tag = image.rpartition(":")
        if repository == TGI_IMAGE_REPOSITORY:
            version = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", tag)
            if version is None:
                raise ValueError(f"pin the TGI image to a release such as {TGI_IMAGE_REPOSITORY}:3.3.6, got {image!r}")
            if tuple(int(part) for part in version.groups()) < MIN_TGI_VERSION:
                raise ValueError(f"Qwen3 needs TGI 3.3.0 or later, got {image!r}")
        return image

    @field_validator("env")
    @classmethod
    def _no_secrets_in_file(cls, env: dict[str, str]) -> dict[str, str]:
        for name in SECRET_ENV:
            if name in env:
                raise ValueError(f"{name} is a secret: set it in the environment at deploy time, not in runpod.toml")
        return env

    def launcher_args(self) -> list[str]:
        """Return the arguments of `text-generation-launcher`, the TGI image's entry point."""
        tgi = self.tgi
        args = ["--model-id", tgi.model_id]
        if tgi.revision:
            args += ["--revision", tgi.revision]
        args += [
            "--dtype", tgi.dtype,
            "--max-input-tokens", str(tgi.max_input_tokens),
            "--max-total-tokens", str(tgi.max_total_tokens),
        ]
        if tgi.max_batch_prefill_tokens is not None:
            args += ["--max-batch-prefill-tokens", str(tgi.max_batch_prefill_tokens)]
        args += [
            "--hostname", "0.0.0.0",
            "--port", str(tgi.port),
            # The volume keeps the model across restarts of the pod.
            "--huggingface-hub-cache", self.volume_mount_path,
            "--usage-stats", "off",
        ]
        return args

    def create_pod_arguments(self, gpu_type: str, secrets: dict[str, str]) -> dict[str, Any]:
        """Return the keyword arguments of `runpod.create_pod` for one GPU type.

        `secrets` contains the pod's secret environment (API_KEY, HF_TOKEN) and may be empty.
        """
        env = {**self.env, **secrets}
        arguments: dict[str, Any] = {
            "name": self.name,
            "image_name": self.image,
            "gpu_type_id": gpu_type,
            "cloud_type": self.pod.cloud_type,
            "gpu_count": self.gpu_count,
            "volume_in_gb": self.pod.volume_in_gb,
            "container_disk_in_gb": self.container_disk_in_gb,
            "docker_args": " ".join(self.launcher_args()),
            "ports": f"{self.tgi.port}/http",
            "volume_mount_path": self.volume_mount_path,
            "env": env,
            # TGI's image has no SSH server, and the proxy needs no public IP.
            "start_ssh": False,
            "support_public_ip": False,
        }
        if self.pod.network_volume_id:
            arguments["network_volume_id"] = self.pod.network_volume_id
        if self.pod.data_center_id:
            arguments["data_center_id"] = self.pod.data_center_id
        _check_graphql_safe(arguments)
        return arguments


def redacted(arguments: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `create_pod` arguments whose secret values are replaced by ***."""
    env = {key: (REDACTED if key in SECRET_ENV else value) for key, value in arguments.get("env", {}).items()}
    return {**arguments, "env": env}


def _check_graphql_safe(arguments: dict[str, Any]) -> None:
    values = {key: value for key, value in arguments.items() if isinstance(value, str)}
    values.update({f"env {key}": value for key, value in arguments["env"].items()})
    values.update({f"env name {key}": key for key in arguments["env"]})
    for label, value in values.items():
        if _UNSAFE_CHARS.search(value):
            # The value itself may be a secret, so only its name is shown.
            raise RunPodConfigError(
                f"{label} contains a quote, backslash or line break, which the runpod SDK cannot send: remove it"
            )


def load_pod_config(path: Path, **overrides: Any) -> PodConfig:
    """Read runpod.toml and apply `overrides` (the CLI's options; None means "keep the file's value").

    Override keys are PodConfig fields, or `tgi.<field>` and `pod.<field>`.
    """
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise RunPodConfigError(f"{path} not found: run from the repository root or pass --config") from error
    except tomllib.TOMLDecodeError as error:
        raise RunPodConfigError(f"{path} is not valid TOML: {error}") from error

    project = document.get("project", {})
    values: dict[str, Any] = {
        "name": document.get("name"),
        "image": project.get("base_image"),
        "gpu_types": project.get("gpu_types"),
        "gpu_count": project.get("gpu_count"),
        "volume_mount_path": project.get("volume_mount_path"),
        "container_disk_in_gb": project.get("container_disk_size_gb"),
        "env": project.get("env_vars"),
        "tgi": dict(document.get("tgi", {})),
        "pod": dict(document.get("pod", {})),
    }
    _check_ports(path, project.get("ports"), values["tgi"].get("port", TgiSettings().port))

    for key, value in overrides.items():
        if value is None:
            continue
        table, _, field = key.partition(".")
        if field:
            values[table][field] = value
        else:
            values[key] = value

    try:
        return PodConfig(**{key: value for key, value in values.items() if value is not None})
    except ValidationError as error:
        raise RunPodConfigError(f"invalid pod configuration in {path} or the options: {error}") from error


def _check_ports(path: Path, ports: str | None, tgi_port: int) -> None:
    # RunPod's tools open the ports of [project]; ours derives them from [tgi].port, so the
    # two must agree for `runpodctl project` users to reach the same server.
    if ports is not None and f"{tgi_port}/http" not in ports.replace(" ", "").split(","):
        raise RunPodConfigError(f"{path}: [project] ports ({ports!r}) must include \"{tgi_port}/http\" from [tgi] port")
