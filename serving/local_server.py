"""Run `transformers serve` as a child process: the local CPU engine of the embedded default.

The server preloads one model and listens on `host:port`, 127.0.0.1 by default. It runs in
its own process group, so a Ctrl-C in the terminal reaches only the parent, which then stops
the server. The server's stdout and stderr go to a log file whose last lines every start-up
error includes.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from serving.errors import LocalServerError, LocalServerModelNotFound, LocalServerTimeout

logger = logging.getLogger(__name__)

REASONING_MODES = ("on", "off", "auto")

# Environment of the server process. The update check is the transformers CLI's daily call
# to pypi.org. HF_HUB_OFFLINE is only a default, so an operator who serves a hub model id
# can export HF_HUB_OFFLINE=0.
_FORCED_ENV = {
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "DO_NOT_TRACK": "1",
    "PYTHONUNBUFFERED": "1",
}
_DEFAULT_ENV = {"HF_HUB_OFFLINE": "1"}

LOG_TAIL_LINES = 40
# Seconds that the server gets to exit after SIGTERM before it is killed.
STOP_GRACE_S = 10.0
HEALTH_POLL_S = 0.25

# The server is always a local child process, so its health checks bypass any HTTP_PROXY.
_DIRECT_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def find_free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on `host` right now.

    Another process can take the port before the server binds it. The server then exits
    with "address already in use", which `wait_ready` reports.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise LocalServerError(
                f"port {port} on {host} is not available ({error.strerror}): stop the process "
                "that uses it, or choose another port (omit --port to pick a free one)"
            ) from error


def _looks_like_path(model: str) -> bool:
    # A model id has the form "name" or "namespace/name", so a leading "/", "." or "~"
    # marks a path. `transformers serve` would only report it as an invalid repo id.
    return model.startswith(("/", ".", "~"))


def read_log_tail(log_path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last `lines` lines of a log file, or "" if it cannot be read."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""

    # Progress bars rewrite one line with carriage returns. Keep only its last state, and
    # split on "\n" alone because str.splitlines would also split at each "\r".
    cleaned = [line.rsplit("\r", 1)[-1] for line in text.rstrip("\n").split("\n")]
    return "\n".join(cleaned[-lines:])


def live_group_members(pgid: int) -> list[int]:
    """Return the pids in process group `pgid` that are alive, not counting zombies.

    Reads /proc, so it returns [] on systems without it. A zombie still counts as a group
    member for os.killpg, so killpg cannot tell whether a group has finished.
    """
    members = []
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = stat_path.read_text()
        except OSError:
            continue
        # Fields after the command name, which is in parentheses and may contain spaces.
        fields = stat.rsplit(")", 1)[-1].split()
        state, process_group = fields[0], int(fields[2])
        if process_group == pgid and state not in ("Z", "X"):
            members.append(int(stat_path.parent.name))
    return members


class LocalServer:
    """A `transformers serve` process that serves one model over an OpenAI-compatible API.

    Use it as a context manager, or call `start`, `wait_ready` and `stop`. `base_url` and
    `model_id` are what `serving.client.ChatClient` needs.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: Path | None = None,
        reasoning: str | None = None,
    ) -> None:
        if reasoning is not None and reasoning not in REASONING_MODES:
            raise ValueError(f"reasoning must be one of {REASONING_MODES}, got {reasoning!r}")

        # `transformers serve` reports a folder under the exact string it was given, so an
        # absolute path keeps the id stable whatever the working directory.
        model_path = Path(model).expanduser()
        if model_path.is_dir():
            self.model = str(model_path.resolve())
        elif _looks_like_path(str(model)):
            raise LocalServerModelNotFound(
                f"model folder {str(model)!r} does not exist: run `veraclaim-serve prepare-model` "
                "or pass an existing model folder or a model id"
            )
        else:
            self.model = str(model)
        self.host = host
        self.port = port
        self.reasoning = reasoning
        self.log_path = log_path
        self.model_id = self.model
        self._process: subprocess.Popen[bytes] | None = None
        self._owns_log = False
        self._was_ready = False

    @property
    def base_url(self) -> str:
        """OpenAI-compatible base URL, e.g. `http://127.0.0.1:8123/v1`."""
        if self.port is None:
            raise LocalServerError("the server has no port yet: call start() first")
        return f"{self.root_url}/v1"

    @property
    def root_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def command(self) -> list[str]:
        """Return the command line that starts the server."""
        if self.port is None:
            raise LocalServerError("the server has no port yet: call start() first")
        argv = [
            sys.executable,
            "-m",
            "transformers.cli.transformers",
            "serve",
            self.model,
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        if self.reasoning is not None:
            argv += ["--reasoning", self.reasoning]
        return argv

    def start(self) -> None:
        """Start the server process. It is ready only once `wait_ready` returns."""
        if self._process is not None and self._process.poll() is None:
            raise LocalServerError(f"the server is already running with pid {self._process.pid}")

        self._was_ready = False
        if self.port is None:
            self.port = find_free_port(self.host)
        else:
            # Another server on a chosen port would answer the health check in our place,
            # so `wait_ready` would report ready while our process fails to bind.
            _check_port_free(self.host, self.port)
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix=f"veraclaim-serve-{self.port}-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
            self._owns_log = True

        env = {**_DEFAULT_ENV, **os.environ, **_FORCED_ENV}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        logger.info(
            "started transformers serve (pid %d) for %s on %s, log %s",
            self._process.pid,
            self.model,
            self.root_url,
            self.log_path,
        )

    def wait_ready(self, timeout: float = 180) -> None:
        """Wait until GET /health returns 200, then read the served model id from /v1/models.

        Raises LocalServerError as soon as the process exits, and LocalServerTimeout (after
        stopping the process) when `timeout` seconds pass. Both include the log's last lines.
        """
        if self._process is None:
            raise LocalServerError("the server is not started: call start() first")

        deadline = time.monotonic() + timeout
        while True:
            exit_code = self._process.poll()
            if exit_code is not None:
                error = self._failure(f"transformers serve exited with code {exit_code} before it was ready")
                # The engine child can outlive a crashed server, so the group is stopped too.
                self.stop()
                raise error
            if self._is_healthy():
                break
            if time.monotonic() >= deadline:
                error = self._failure(
                    f"transformers serve was not healthy on {self.root_url}/health after {timeout:.0f} s",
                    timeout=True,
                )
                self.stop()
                raise error
            time.sleep(HEALTH_POLL_S)

        self.model_id = self._served_model_id()
        self._was_ready = True
        logger.info("transformers serve is ready on %s with model id %s", self.base_url, self.model_id)

    def stop(self) -> None:
        """Stop the server: SIGTERM to its process group, then SIGKILL after a grace period."""
        process = self._process
        if process is None:
            return

        # 1. SIGTERM to the whole group: the server, its model engine and their helpers.
        if process.poll() is None:
            self._signal_group(process, signal.SIGTERM)

        # 2. Wait for every live member, since the engine can outlive the server by a moment.
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and (process.poll() is None or live_group_members(process.pid)):
            time.sleep(0.05)

        # 3. Kill what ignored SIGTERM.
        survivors = live_group_members(process.pid)
        if process.poll() is None or survivors:
            logger.warning(
                "transformers serve (process group %d) still runs %s seconds after SIGTERM, killing pids %s",
                process.pid,
                STOP_GRACE_S,
                survivors,
            )
            self._signal_group(process, signal.SIGKILL)
        process.wait()
        logger.info("transformers serve (pid %d) stopped with code %s", process.pid, process.returncode)
        self._process = None

        # A log that this object created is removed when a server that became ready stops
        # cleanly. Any other log is kept, because error messages point to it.
        clean_exit = process.returncode in (0, -signal.SIGTERM)
        if self._owns_log and self._was_ready and clean_exit and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)

    def poll(self) -> int | None:
        """Return the server's exit code, or None while it runs."""
        return self._process.poll() if self._process is not None else None

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _signal_group(self, process: subprocess.Popen[bytes], signum: int) -> None:
        # The server started its own session, so its process group id is its pid. Signalling
        # the group also reaches the model engine, which runs in a child process.
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass

    def _is_healthy(self) -> bool:
        try:
            with _DIRECT_OPENER.open(f"{self.root_url}/health", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _served_model_id(self) -> str:
        # /v1/models lists the preloaded model under the id that requests must send.
        try:
            with _DIRECT_OPENER.open(f"{self.base_url}/models", timeout=10) as response:
                listed = [entry["id"] for entry in json.load(response).get("data", [])]
        except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            logger.warning("could not list models on %s (%s); using %s", self.base_url, error, self.model)
            return self.model

        if self.model in listed or len(listed) != 1:
            return self.model
        return listed[0]

    def _failure(self, message: str, *, timeout: bool = False) -> LocalServerError:
        tail = read_log_tail(self.log_path) if self.log_path is not None else ""
        full = f"{message}. Last lines of {self.log_path}:\n{tail or '(log is empty)'}"
        error_class = LocalServerTimeout if timeout else LocalServerError
        return error_class(full, log_path=self.log_path, log_tail=tail)
