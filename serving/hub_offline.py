"""Let the streaming client reach its model server while huggingface_hub is in offline mode.

`InferenceClient` sends every request through huggingface_hub's shared httpx2 client. When
HF_HUB_OFFLINE is set, that client's request hook raises OfflineModeIsEnabled for every URL,
including a model server on 127.0.0.1 (seen with huggingface_hub 2.4). The embedded default
sets HF_HUB_OFFLINE=1 so that no library calls the Hub, and its chat must still reach the
local server.

`allow_model_server` records the origin (scheme, host, port) of a model server. In offline
mode its first call installs a client factory whose hook lets recorded origins through and
hands every other request to huggingface_hub's own hook, so Hub requests still fail offline.
Outside offline mode it changes nothing.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlsplit

import httpx2
from huggingface_hub import constants as hub_constants
from huggingface_hub.utils import set_client_factory

# NOTE: both names are private to huggingface_hub (checked with 2.4.0). The public
# set_client_factory replaces the whole client, so the wrapper needs the default one.
from huggingface_hub.utils import _http as hub_http

logger = logging.getLogger(__name__)

_DEFAULT_PORTS = {"http": 80, "https": 443}

_allowed_origins: set[tuple[str, str, int]] = set()
_lock = threading.Lock()
_installed = False


def origin_of(url: str) -> tuple[str, str, int]:
    """Return the (scheme, host, port) triple of a URL, with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    return scheme, host, port


def allow_model_server(base_url: str) -> None:
    """Let requests to `base_url`'s origin pass huggingface_hub's offline check."""
    global _installed
    if not hub_constants.is_offline_mode():
        return

    origin = origin_of(base_url)
    with _lock:
        if origin in _allowed_origins:
            return
        _allowed_origins.add(origin)

        # The factory in place may be a user's own (proxy, certificates), so it is wrapped
        # rather than replaced. set_client_factory closes the shared client, which interrupts
        # nothing: offline mode failed every request through it until now.
        if not _installed:
            previous_factory = getattr(hub_http, "_GLOBAL_CLIENT_FACTORY", hub_http.default_client_factory)
            set_client_factory(lambda: _with_model_server_hook(previous_factory()))
            _installed = True
    logger.info("huggingface_hub is in offline mode, so requests to the model server at %s are allowed", base_url)


def _with_model_server_hook(client: httpx2.Client) -> httpx2.Client:
    hooks = client.event_hooks
    hooks["request"] = [
        _model_server_hook if hook is hub_http.hf_request_event_hook else hook for hook in hooks["request"]
    ]
    client.event_hooks = hooks
    return client


def _model_server_hook(request: httpx2.Request) -> None:
    if origin_of(str(request.url)) in _allowed_origins:
        return
    hub_http.hf_request_event_hook(request)
