"""RunPod deployment: runpod.toml, the exact create_pod request, and the CLI against fakes.

The runpod SDK talks to a fake of RunPod's GraphQL API on 127.0.0.1 (RUNPOD_API_BASE_URL),
and `wait` and `status` probe the fake TGI instead of RunPod's proxy. Nothing reaches RunPod.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from serving.runpod.config import PodConfig, RunPodConfigError, load_pod_config, redacted
from serving.runpod.pods import RunPodAuthError, RunPodError, deploy_pod, get_pod, stop_pod

pytestmark = pytest.mark.timeout(120)

REPOSITORY = Path(__file__).resolve().parents[2]
RUNPOD_TOML = REPOSITORY / "runpod.toml"
CLI = str(Path(sys.executable).with_name("veraclaim-serve"))
RUNPOD_KEY = "rp_test_key_0123"
TGI_KEY = "tgi-secret-key-456"
HF_TOKEN = "hf_secret_token_789"

SOLD_OUT = "There are no longer any instances available with the requested specifications."


@dataclass
class FakeRunPod:
    """RunPod's GraphQL API as the runpod SDK 1.10 uses it: gpuTypes, pod, and pod mutations."""

    known_gpus: set[str] = field(default_factory=lambda: {"NVIDIA RTX A6000", "NVIDIA A40", "NVIDIA L40S"})
    sold_out: set[str] = field(default_factory=set)
    queries: list[str] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    url: str = ""

    def mutations(self, name: str) -> list[str]:
        return [query for query in self.queries if name in query]

    def respond(self, query: str) -> dict:
        if "podFindAndDeployOnDemand" in query:
            gpu = re.search(r'gpuTypeId: "([^"]+)"', query).group(1)
            if gpu in self.sold_out:
                return {"errors": [{"message": SOLD_OUT}]}
            return {"data": {"podFindAndDeployOnDemand": {
                "id": "pod-abc123", "imageName": "tgi", "env": [], "machineId": "m1", "machine": {"podHostId": "h1"},
            }}}
        if "gpuTypes(" in query:
            gpu = re.search(r'id: "([^"]+)"', query).group(1)
            found = [{"id": gpu, "displayName": gpu, "memoryInGb": 48}] if gpu in self.known_gpus else []
            return {"data": {"gpuTypes": found}}
        if "podStop" in query:
            pod_id = re.search(r'podId: "([^"]+)"', query).group(1)
            return {"data": {"podStop": {"id": pod_id, "desiredStatus": "EXITED"}}}
        if "podTerminate" in query:
            return {"data": {"podTerminate": None}}
        if "pod(input" in query:
            pod_id = re.search(r'podId: "([^"]+)"', query).group(1)
            if pod_id != "pod-abc123":
                return {"data": {"pod": None}}
            return {"data": {"pod": {
                "id": pod_id, "name": "veraclaim-tgi", "desiredStatus": "RUNNING", "imageName": "tgi",
                "gpuCount": 1, "costPerHr": 0.49, "uptimeSeconds": 120, "machine": {"gpuDisplayName": "RTX A6000"},
            }}}
        return {"errors": [{"message": f"unexpected query: {query[:80]}"}]}


@pytest.fixture
def fake_runpod(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRunPod]:
    fake = FakeRunPod()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.queries.append(body["query"])
            fake.authorizations.append(self.headers.get("Authorization", ""))
            if self.headers.get("Authorization") != f"Bearer {RUNPOD_KEY}":
                self.send_response(401)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                return
            data = json.dumps(fake.respond(body["query"])).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    # The SDK reads this variable at every call.
    monkeypatch.setenv("RUNPOD_API_BASE_URL", fake.url)
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def run_cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {key: value for key, value in os.environ.items() if not key.startswith(("VERACLAIM_", "RUNPOD_", "HF_"))}
    base.update(HOME=str(cwd), HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    return subprocess.run(
        [CLI, *args], cwd=cwd, env={**base, **env}, capture_output=True, text=True, timeout=60
    )


def test_repository_toml_has_runpod_project_layout() -> None:
    import tomllib

    document = tomllib.loads(RUNPOD_TOML.read_text(encoding="utf-8"))

    # The keys that `runpodctl project` and `runpod project` read.
    project = document["project"]
    for key in ("uuid", "name", "base_image", "gpu_types", "gpu_count", "volume_mount_path", "ports",
                "container_disk_size_gb"):
        assert key in project, key
    assert isinstance(document["name"], str)
    assert isinstance(project["gpu_types"], list)


def test_repository_toml_defaults() -> None:
    config = load_pod_config(RUNPOD_TOML)

    assert config.image == "ghcr.io/huggingface/text-generation-inference:3.3.6"
    assert config.tgi.model_id == "Qwen/Qwen3-8B"
    assert config.tgi.dtype == "bfloat16"
    assert config.gpu_types[0] == "NVIDIA RTX A6000"
    assert config.tgi.max_total_tokens - config.tgi.max_input_tokens == 32768
    assert config.volume_mount_path == "/data"


def test_launcher_arguments_are_exact() -> None:
    config = load_pod_config(RUNPOD_TOML, **{"tgi.revision": "b968826d"})

    assert config.launcher_args() == [
        "--model-id", "Qwen/Qwen3-8B",
        "--revision", "b968826d",
        "--dtype", "bfloat16",
        "--max-input-tokens", "8192",
        "--max-total-tokens", "40960",
        "--hostname", "0.0.0.0",
        "--port", "8080",
        "--huggingface-hub-cache", "/data",
        "--usage-stats", "off",
    ]


def test_create_pod_arguments_carry_secrets_only_in_env() -> None:
    config = load_pod_config(RUNPOD_TOML)

    arguments = config.create_pod_arguments("NVIDIA A40", {"API_KEY": TGI_KEY, "HF_TOKEN": HF_TOKEN})
    shown = json.dumps(redacted(arguments))

    assert arguments["env"] == {"API_KEY": TGI_KEY, "HF_TOKEN": HF_TOKEN}
    assert TGI_KEY not in arguments["docker_args"]
    assert TGI_KEY not in shown
    assert HF_TOKEN not in shown
    assert arguments["ports"] == "8080/http"
    assert arguments["gpu_type_id"] == "NVIDIA A40"


# Each row: a runpod.toml body that must be rejected, and a part of the message.
INVALID_TOMLS = [
    # An unpinned image.
    ('[project]\nbase_image = "ghcr.io/huggingface/text-generation-inference:latest"\n', "pin the TGI image"),
    # A TGI release without Qwen3.
    ('[project]\nbase_image = "ghcr.io/huggingface/text-generation-inference:3.2.3"\n', "3.3.0 or later"),
    # A secret written into the file.
    ('[project.env_vars]\nAPI_KEY = "oops"\n', "API_KEY is a secret"),
    # No room left for the answer.
    ("[tgi]\nmax_input_tokens = 4096\nmax_total_tokens = 4096\n", "leaving room"),
    # The opened port and TGI's port differ.
    ('[project]\nports = "80/http"\n[tgi]\nport = 8080\n', "must include"),
    # A misspelt key is an error, not a silent default.
    ("[tgi]\nmax_tokens = 100\n", "max_tokens"),
    # A quote would break the SDK's GraphQL string.
    ('[tgi]\nmodel_id = "Qwen/\\"Qwen3\\""\n', None),
]


@pytest.mark.parametrize(("body", "message"), INVALID_TOMLS)
def test_invalid_toml_is_rejected(tmp_path: Path, body: str, message: str | None) -> None:
    path = tmp_path / "runpod.toml"
    path.write_text(body, encoding="utf-8")

    with pytest.raises(RunPodConfigError) as caught:
        load_pod_config(path).create_pod_arguments("NVIDIA A40", {})

    if message is not None:
        assert message in str(caught.value)


def test_missing_toml_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(RunPodConfigError, match="--config"):
        load_pod_config(tmp_path / "runpod.toml")


def test_deploy_sends_exact_mutation(fake_runpod: FakeRunPod) -> None:
    config = load_pod_config(RUNPOD_TOML)

    pod = deploy_pod(config, {"API_KEY": TGI_KEY}, api_key=RUNPOD_KEY)

    assert pod.pod_id == "pod-abc123"
    assert pod.gpu_type == "NVIDIA RTX A6000"
    [mutation] = fake_runpod.mutations("podFindAndDeployOnDemand")
    assert 'imageName: "ghcr.io/huggingface/text-generation-inference:3.3.6"' in mutation
    assert 'gpuTypeId: "NVIDIA RTX A6000"' in mutation
    assert "cloudType: SECURE" in mutation
    assert "gpuCount: 1" in mutation
    assert "volumeInGb: 80" in mutation
    assert "containerDiskInGb: 20" in mutation
    assert 'volumeMountPath: "/data"' in mutation
    assert 'ports: "8080/http"' in mutation
    assert f'dockerArgs: "{" ".join(config.launcher_args())}"' in mutation
    assert f'{{ key: "API_KEY", value: "{TGI_KEY}" }}' in mutation
    assert "startSsh" not in mutation
    assert set(fake_runpod.authorizations) == {f"Bearer {RUNPOD_KEY}"}


def test_deploy_falls_back_to_next_gpu(fake_runpod: FakeRunPod) -> None:
    fake_runpod.sold_out = {"NVIDIA RTX A6000"}

    pod = deploy_pod(load_pod_config(RUNPOD_TOML), {}, api_key=RUNPOD_KEY)

    assert pod.gpu_type == "NVIDIA A40"
    tried = [re.search(r'gpuTypeId: "([^"]+)"', query).group(1) for query in fake_runpod.mutations("podFind")]
    assert tried == ["NVIDIA RTX A6000", "NVIDIA A40"]


def test_deploy_with_no_gpu_left_lists_types(fake_runpod: FakeRunPod) -> None:
    fake_runpod.sold_out = {"NVIDIA RTX A6000", "NVIDIA A40", "NVIDIA L40S"}

    with pytest.raises(RunPodError) as caught:
        deploy_pod(load_pod_config(RUNPOD_TOML), {}, api_key=RUNPOD_KEY)

    message = str(caught.value)
    assert "NVIDIA L40S" in message
    # The fourth type is unknown to the fake, which create_pod reports as a ValueError.
    assert "NVIDIA RTX 6000 Ada Generation: No GPU found" in message


def test_wrong_api_key_is_auth_error(fake_runpod: FakeRunPod) -> None:
    with pytest.raises(RunPodAuthError, match="RUNPOD_API_KEY"):
        deploy_pod(load_pod_config(RUNPOD_TOML), {}, api_key="rp_wrong")


def test_missing_api_key_is_auth_error() -> None:
    with pytest.raises(RunPodAuthError, match="RUNPOD_API_KEY"):
        get_pod("pod-abc123", api_key=None)


def test_stop_and_terminate_send_mutations(fake_runpod: FakeRunPod) -> None:
    stop_pod("pod-abc123", api_key=RUNPOD_KEY)
    stop_pod("pod-abc123", api_key=RUNPOD_KEY, terminate=True)

    assert 'podStop(input: { podId: "pod-abc123" })' in fake_runpod.mutations("podStop")[0]
    assert 'podTerminate(input: { podId: "pod-abc123" })' in fake_runpod.mutations("podTerminate")[0]


def test_unknown_pod_is_not_found(fake_runpod: FakeRunPod) -> None:
    with pytest.raises(RunPodError, match="not found"):
        get_pod("pod-missing", api_key=RUNPOD_KEY)


def test_cli_dry_run_prints_request_without_calls(fake_runpod: FakeRunPod, tmp_path: Path) -> None:
    (tmp_path / "runpod.toml").write_text(RUNPOD_TOML.read_text(encoding="utf-8"), encoding="utf-8")

    result = run_cli(
        "runpod", "deploy", "--dry-run", "--model-id", "Qwen/Qwen3-14B", "--gpu-type", "NVIDIA A100 80GB PCIe",
        cwd=tmp_path, RUNPOD_API_BASE_URL=fake_runpod.url, VERACLAIM_MODEL_API_KEY=TGI_KEY, HF_TOKEN=HF_TOKEN,
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["create_pod"]["gpu_type_id"] == "NVIDIA A100 80GB PCIe"
    assert report["create_pod"]["docker_args"].startswith("--model-id Qwen/Qwen3-14B --dtype bfloat16")
    assert report["create_pod"]["env"] == {"API_KEY": "***", "HF_TOKEN": "***"}
    assert "podFindAndDeployOnDemand" in report["graphql_mutation"]
    assert report["proxy_base_url"] == "https://<pod_id>-8080.proxy.runpod.net/v1"
    assert TGI_KEY not in result.stdout + result.stderr
    assert HF_TOKEN not in result.stdout + result.stderr
    assert fake_runpod.queries == []


def test_cli_deploy_requires_tgi_key(tmp_path: Path) -> None:
    result = run_cli("runpod", "deploy", "--dry-run", "--config", str(RUNPOD_TOML), cwd=tmp_path)

    assert result.returncode == 1
    assert "VERACLAIM_MODEL_API_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_deploy_prints_pod_and_base_url(fake_runpod: FakeRunPod, tmp_path: Path) -> None:
    result = run_cli(
        "runpod", "deploy", "--config", str(RUNPOD_TOML),
        cwd=tmp_path, RUNPOD_API_BASE_URL=fake_runpod.url, RUNPOD_API_KEY=RUNPOD_KEY, VERACLAIM_MODEL_API_KEY=TGI_KEY,
    )

    assert result.returncode == 0, result.stderr
    assert "pod-abc123" in result.stdout
    assert "VERACLAIM_MODEL_BASE_URL=https://pod-abc123-8080.proxy.runpod.net/v1" in result.stdout
    assert TGI_KEY not in result.stdout + result.stderr
    assert len(fake_runpod.mutations("podFindAndDeployOnDemand")) == 1


def test_cli_wait_polls_health_with_progress(fake_tgi, tmp_path: Path) -> None:
    fake_tgi.health_statuses = [502, 503, 200]

    result = run_cli(
        "runpod", "wait", "pod-abc123", "--config", str(RUNPOD_TOML), "--interval", "0.05", "--timeout", "20",
        cwd=tmp_path, VERACLAIM_RUNPOD_PROXY_URL_TEMPLATE=fake_tgi.root_url,
    )

    assert result.returncode == 0, result.stderr
    assert "HTTP 502" in result.stderr
    assert "HTTP 503" in result.stderr
    assert result.stdout.strip() == f"ready: {fake_tgi.base_url}"


def test_cli_wait_times_out(fake_tgi, tmp_path: Path) -> None:
    fake_tgi.health_statuses = [503]

    result = run_cli(
        "runpod", "wait", "pod-abc123", "--config", str(RUNPOD_TOML), "--interval", "0.05", "--timeout", "0.5",
        cwd=tmp_path, VERACLAIM_RUNPOD_PROXY_URL_TEMPLATE=fake_tgi.root_url,
    )

    assert result.returncode == 1
    assert "not ready after 0.5 s" in result.stderr


def test_cli_status_reports_pod_and_health(fake_runpod: FakeRunPod, fake_tgi, tmp_path: Path) -> None:
    result = run_cli(
        "runpod", "status", "pod-abc123", "--config", str(RUNPOD_TOML),
        cwd=tmp_path, RUNPOD_API_BASE_URL=fake_runpod.url, RUNPOD_API_KEY=RUNPOD_KEY,
        VERACLAIM_RUNPOD_PROXY_URL_TEMPLATE=fake_tgi.root_url,
    )

    assert result.returncode == 0, result.stderr
    assert "desired status: RUNNING" in result.stdout
    assert "TGI health:     ready" in result.stdout


def test_cli_stop_terminates(fake_runpod: FakeRunPod, tmp_path: Path) -> None:
    result = run_cli(
        "runpod", "stop", "pod-abc123", "--terminate",
        cwd=tmp_path, RUNPOD_API_BASE_URL=fake_runpod.url, RUNPOD_API_KEY=RUNPOD_KEY,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "pod pod-abc123 terminated"
    assert len(fake_runpod.mutations("podTerminate")) == 1


def test_default_config_matches_toml() -> None:
    # The code's defaults and the repository's file describe the same pod.
    assert PodConfig().launcher_args() == load_pod_config(RUNPOD_TOML).launcher_args()
