"""Serve the chat app: Gradio's launch arguments, sign-in, share links, /metrics and /admin.

Rules this module enforces:

- A share link (a public URL through Gradio's tunnel) needs sign-in. Without accounts,
  `--share` is rejected unless `--force-share` is given, which logs a warning.
- /metrics needs the bearer token VERACLAIM_METRICS_TOKEN. Without a token it is served only
  when the server listens on a loopback address and is not shared, because tunnelled share
  traffic and a reverse proxy on the same host both arrive from 127.0.0.1.
- /admin is served only when VERACLAIM_ADMIN_USERS names at least one account.
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from chat_ui.auth import Accounts, load_accounts
from chat_ui.errors import ShareWithoutAuthError
from chat_ui.language import translate
from chat_ui.logsetup import TurnLogger
from chat_ui.ops_settings import OpsSettings
from chat_ui.settings import ChatSettings

if TYPE_CHECKING:
    from chat_ui.pipeline import AnswerPipeline

logger = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 1024 * 1024

# System fonts only: the default theme loads Google Fonts, which a closed network never answers.
_THEME = gr.themes.Default(
    font=["Noto Sans KR", "Apple SD Gothic Neo", "Malgun Gothic", "NanumGothic", "sans-serif"],
    font_mono=["ui-monospace", "monospace"],
)


def is_loopback(host: str) -> bool:
    """Return whether `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to any address


def check_share(accounts: Accounts, *, share: bool, force_share: bool) -> bool:
    """Reject a share link without sign-in unless `force_share` is set.

    Returns True when the chat is about to be shared without sign-in, which launch() logs.
    """
    if not share or accounts:
        return False
    if not force_share:
        raise ShareWithoutAuthError(
            "--share creates a public URL, so it needs sign-in: set VERACLAIM_AUTH_USERS or "
            "VERACLAIM_AUTH_FILE (see `veraclaim-chat hash-password`). To share without sign-in "
            "anyway, add --force-share."
        )
    return True


def launch_options(
    settings: ChatSettings,
    accounts: Accounts,
    *,
    share: bool = False,
    force_share: bool = False,
    prevent_thread_lock: bool = False,
) -> dict[str, Any]:
    """Return the keyword arguments for `gr.Blocks.launch`, except `app_kwargs`.

    Raises ShareWithoutAuthError for a share link without accounts and without `force_share`.
    """
    from chat_ui.app import build_i18n

    check_share(accounts, share=share, force_share=force_share)
    return {
        "server_name": settings.host,
        "server_port": settings.port,
        "share": share,
        # A coroutine, so that Gradio awaits it and the PBKDF2 check runs off its event loop.
        "auth": accounts.verify_async if accounts else None,
        "auth_message": _login_message() if accounts else None,
        "i18n": build_i18n(),
        "theme": _THEME,
        "prevent_thread_lock": prevent_thread_lock,
        "show_error": False,
        "quiet": True,
        # Without server-side rendering, the Python app serves every request, /metrics and
        # /admin included, whatever GRADIO_SSR_MODE says.
        "ssr_mode": False,
        # /metrics and /admin replace Gradio's own monitoring dashboard.
        "enable_monitoring": False,
        # The run-history page can connect to the Hugging Face Hub with a user's token, and
        # the chat keeps its own history.
        "run_history": False,
        # The app has no upload field, but /gradio_api/upload accepts files of any size.
        "max_file_size": MAX_UPLOAD_BYTES,
        "blocked_paths": blocked_paths(settings),
    }


def blocked_paths(settings: ChatSettings) -> list[str]:
    """Return the folders and files Gradio must never serve, even if GRADIO_ALLOWED_PATHS names them.

    These are the index, the SQLite log and its journal, and the working folder's .env.
    """
    from chat_ui.log.settings import LogSettings

    paths = [settings.index_dir, Path(".env"), LogSettings().journal_dir]
    url = settings.log_database_url
    if url.startswith("sqlite:///"):
        paths.append(Path(url.removeprefix("sqlite:///")).parent)
    return [str(path.expanduser().resolve()) for path in paths]


def metrics_served(settings: ChatSettings, ops: OpsSettings, *, share: bool) -> bool:
    """Return whether /metrics may be served, logging why when it may not."""
    if not ops.metrics_enabled:
        return False
    if ops.metrics_token is not None:
        return True
    if share or not is_loopback(settings.host):
        logger.warning(
            "/metrics is off: the server is %s, so set VERACLAIM_METRICS_TOKEN for the scraper "
            "to send as a bearer token",
            "shared" if share else f"listening on {settings.host}",
        )
        return False
    return True


def launch(
    demo: gr.Blocks,
    settings: ChatSettings,
    *,
    pipeline: AnswerPipeline | None = None,
    prevent_thread_lock: bool = False,
    share: bool = False,
    force_share: bool = False,
    ops: OpsSettings | None = None,
    accounts: Accounts | None = None,
) -> None:
    """Serve `demo` on the configured host and port, with /metrics and /admin for `pipeline`.

    `ops` defaults to OpsSettings() read from the environment, and `accounts` to the
    accounts it names. Raises AuthConfigError for invalid accounts and ShareWithoutAuthError
    as launch_options does.
    """
    from chat_ui.admin import admin_mount, build_admin
    from chat_ui.metrics import ChatMetrics, metrics_route

    # 1. Accounts and launch arguments; both raise before anything listens.
    ops = ops if ops is not None else OpsSettings()
    accounts = accounts if accounts is not None else load_accounts(ops)
    options = launch_options(
        settings, accounts, share=share, force_share=force_share, prevent_thread_lock=prevent_thread_lock
    )
    if check_share(accounts, share=share, force_share=force_share):
        logger.warning(
            "!!! --force-share: the chat gets a PUBLIC URL WITHOUT SIGN-IN. Anyone with the link "
            "can ask questions, read the indexed documents' text and use the model. !!!"
        )
    elif not accounts and not is_loopback(settings.host):
        logger.warning(
            "serving on %s without sign-in: anyone who can reach the port can use the chat. "
            "Set VERACLAIM_AUTH_USERS or VERACLAIM_AUTH_FILE unless a proxy in front signs users in",
            settings.host,
        )

    # 2. Routes beside the chat: they exist only with a pipeline to observe and a log to read.
    routes: list[Any] = []
    lifespan = None
    if pipeline is not None:
        pipeline.add_observer(TurnLogger(log_questions=ops.log_questions))
        if metrics_served(settings, ops, share=share):
            metrics = ChatMetrics()
            pipeline.add_observer(metrics.observe)
            token = ops.metrics_token.get_secret_value() if ops.metrics_token else None
            routes.append(metrics_route(metrics, token))
        if accounts.admins:
            mounts, lifespan = admin_mount(build_admin(pipeline.log, accounts), accounts, theme=_THEME)
            routes.extend(mounts)
        else:
            logger.info("/admin is off: set VERACLAIM_ADMIN_USERS to users with a sign-in account")
    options["app_kwargs"] = {"routes": routes, "lifespan": lifespan}

    # 3. Serve. Gradio prints the share URL itself when it creates one.
    logger.info(
        "serving the chat on http://%s:%d (sign-in %s, share link %s)",
        settings.host,
        settings.port,
        "on" if accounts else "off",
        "on" if share else "off",
    )
    demo.launch(**options)


def _login_message() -> str:
    return f"{translate('auth.login_message', 'ko')}<br>{translate('auth.login_message', 'en')}"
