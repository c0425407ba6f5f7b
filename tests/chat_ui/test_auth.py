"""Sign-in accounts, password hashes, share-link rules and Gradio's launch arguments.

One test launches the real chat app with sign-in on 127.0.0.1 and sends it real HTTP
requests. No test ever creates a share link. `share=True` only reaches a recorder that
replaces gr.Blocks.launch, which is Gradio's boundary to the tunnel.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import bcrypt
import gradio as gr
import httpx
import pytest
from pydantic import SecretStr

from chat_ui.auth import (
    PBKDF2_ITERATIONS,
    Accounts,
    AuthConfigError,
    hash_password,
    is_hashed,
    load_accounts,
    verify_password,
)
from chat_ui.ops_settings import OpsSettings
from chat_ui.sign_in_limit import SignInLimiter
from chat_ui.server import (
    _THEME,
    MAX_UPLOAD_BYTES,
    ShareWithoutAuthError,
    blocked_paths,
    launch,
    launch_options,
)
from chat_ui.settings import ChatSettings

# Hashes in most tests use few iterations, so that each check takes microseconds.
FAST = 1000


def _ops(**fields) -> OpsSettings:
    return OpsSettings(**fields)


def _private_file(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


# ---------------------------------------------------------------------------------------
# Hashes


def test_pbkdf2_hash_verifies_only_its_password():
    stored = hash_password("정답-password", iterations=FAST)

    assert stored.startswith(f"pbkdf2_sha256${FAST}$")
    assert verify_password("정답-password", stored)
    assert not verify_password("정답-passwor", stored)
    assert not verify_password("", stored)


def test_default_hash_uses_owasp_iterations_and_fresh_salt():
    first = hash_password("pw")
    second = hash_password("pw")

    assert first.split("$")[1] == str(PBKDF2_ITERATIONS)
    assert first != second
    assert verify_password("pw", first)


def test_hash_of_empty_password_is_rejected():
    with pytest.raises(AuthConfigError, match="empty password"):
        hash_password("")


@pytest.mark.parametrize("prefix", [b"$2b$", b"$2y$"])  # bcrypt's own prefix; htpasswd -B writes $2y$
def test_bcrypt_hash_verifies(prefix):
    stored = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).replace(b"$2b$", prefix).decode()

    assert verify_password("pw", stored)
    assert not verify_password("pW", stored)
    # bcrypt 5 raises for passwords over 72 bytes; that is a wrong password, not a crash.
    assert not verify_password("x" * 100, stored)


def test_plain_text_password_compares_exactly():
    assert verify_password("pw:with:colons", "pw:with:colons")
    assert not verify_password("pw", "pw ")


# ---------------------------------------------------------------------------------------
# Loading accounts


def test_accounts_merge_environment_and_file(tmp_path):
    hashed = hash_password("bob-pw", iterations=FAST)
    auth_file = _private_file(tmp_path / "users", f"# team accounts\n\nbob:{hashed}\ncarol: spaced pw\n")

    accounts = load_accounts(
        _ops(auth_users=SecretStr("alice:alice-pw, "), auth_file=auth_file, admin_users="alice, bob")
    )

    assert accounts.users == {"alice", "bob", "carol"}
    assert accounts.admins == {"alice", "bob"}
    assert accounts.verify("alice", "alice-pw")
    assert accounts.verify("bob", "bob-pw")
    assert accounts.verify("carol", " spaced pw")  # everything after the first colon
    assert not accounts.verify("carol", "spaced pw")
    assert accounts.verify_admin("bob", "bob-pw")
    assert not accounts.verify_admin("carol", " spaced pw")
    assert not accounts.is_admin(None)


def test_no_settings_means_no_accounts():
    accounts = load_accounts(_ops())

    assert not accounts
    assert len(accounts) == 0


@pytest.mark.parametrize(
    "users, file_text",
    [
        (" , ", None),  # only separators
        (None, "# no accounts yet\n\n"),  # a file of comments and blank lines
        (None, ""),  # an empty file
    ],
)
def test_sign_in_naming_nobody_is_rejected(tmp_path, users, file_text):
    fields = {}
    if users is not None:
        fields["auth_users"] = SecretStr(users)
    if file_text is not None:
        fields["auth_file"] = _private_file(tmp_path / "users", file_text)

    with pytest.raises(AuthConfigError, match="names no account"):
        load_accounts(_ops(**fields))


def test_password_file_not_utf8_is_rejected(tmp_path):
    auth_file = tmp_path / "users"
    auth_file.write_bytes(b"\xff\xfe:x\n")
    auth_file.chmod(0o600)

    with pytest.raises(AuthConfigError, match=f"{auth_file} .*not UTF-8"):
        load_accounts(_ops(auth_file=auth_file))


def test_unknown_user_is_rejected():
    accounts = load_accounts(_ops(auth_users=SecretStr(f"alice:{hash_password('pw', iterations=FAST)}")))

    assert not accounts.verify("mallory", "pw")
    assert not accounts.verify("Alice", "pw")


def test_async_verification_runs_the_same_check():
    accounts = load_accounts(_ops(auth_users=SecretStr("alice:pw"), admin_users="alice"))

    assert asyncio.run(accounts.verify_async("alice", "pw"))
    assert not asyncio.run(accounts.verify_async("alice", "nope"))
    assert asyncio.run(accounts.verify_admin_async("alice", "pw"))


# ---------------------------------------------------------------------------------------
# Sign-in rate limit. A fake clock moves time, so no test sleeps.


class FakeClock:
    """A monotonic clock that moves only when the test advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


RIGHT = "right-password"
WRONG = "wrong-guess-7f3a"


def _limited(clock: FakeClock, **limits) -> Accounts:
    return Accounts({"alice": RIGHT, "bob": RIGHT}, limiter=SignInLimiter(clock=clock, **limits))


def _fail(accounts: Accounts, user: str, times: int) -> None:
    for _ in range(times):
        assert not accounts.verify(user, WRONG)


def test_five_failures_lock_even_right_password():
    clock = FakeClock()
    accounts = _limited(clock)

    _fail(accounts, "alice", 4)
    assert accounts.verify("alice", RIGHT)
    _fail(accounts, "alice", 5)

    assert not accounts.verify("alice", RIGHT)
    clock.advance(29.9)
    assert not accounts.verify("alice", RIGHT)
    clock.advance(0.1)
    assert accounts.verify("alice", RIGHT)


def test_lock_doubles_up_to_fifteen_minutes():
    clock = FakeClock()
    accounts = _limited(clock)
    expected = [30, 60, 120, 240, 480, 900, 900]

    for lock_s in expected:
        _fail(accounts, "alice", 5)
        clock.advance(lock_s - 1)
        assert not accounts.verify("alice", RIGHT), f"lock shorter than {lock_s} s"
        clock.advance(1)
        # A wrong password after the lock starts a new count instead of a sign-in.
        assert accounts.limiter.lock_remaining_s("alice") == 0.0


def test_success_resets_failures_and_lock_length():
    clock = FakeClock()
    accounts = _limited(clock)
    _fail(accounts, "alice", 5)
    clock.advance(30)
    _fail(accounts, "alice", 5)
    clock.advance(60)

    assert accounts.verify("alice", RIGHT)
    _fail(accounts, "alice", 5)
    clock.advance(30)

    assert accounts.verify("alice", RIGHT)


def test_failures_older_than_window_do_not_count():
    clock = FakeClock()
    accounts = _limited(clock)
    _fail(accounts, "alice", 4)
    clock.advance(15 * 60)
    _fail(accounts, "alice", 4)

    assert accounts.verify("alice", RIGHT)


def test_attempts_during_lock_do_not_extend_it():
    clock = FakeClock()
    accounts = _limited(clock)
    _fail(accounts, "alice", 5)
    _fail(accounts, "alice", 20)
    clock.advance(30)
    _fail(accounts, "alice", 1)

    assert accounts.verify("alice", RIGHT)


def test_lock_is_per_user_name():
    clock = FakeClock()
    accounts = _limited(clock)
    _fail(accounts, "alice", 5)

    assert accounts.verify("bob", RIGHT)
    assert not accounts.verify("alice", RIGHT)


def test_unknown_user_name_is_locked_like_known_one():
    clock = FakeClock()
    accounts = _limited(clock)
    _fail(accounts, "mallory", 5)

    assert accounts.limiter.lock_remaining_s("mallory") == 30.0
    assert accounts.limiter.lock_remaining_s("alice") == 0.0


def test_async_sign_in_respects_lock():
    clock = FakeClock()
    accounts = _limited(clock)
    for _ in range(5):
        assert not asyncio.run(accounts.verify_async("alice", WRONG))

    assert not asyncio.run(accounts.verify_async("alice", RIGHT))
    assert not asyncio.run(accounts.verify_admin_async("alice", RIGHT))
    clock.advance(30)
    assert asyncio.run(accounts.verify_async("alice", RIGHT))


def test_lock_limits_are_constructor_parameters():
    clock = FakeClock()
    accounts = _limited(clock, max_failures=2, failure_window_s=10, lock_initial_s=5, lock_max_s=8)

    _fail(accounts, "alice", 2)
    assert accounts.limiter.lock_remaining_s("alice") == 5.0
    clock.advance(5)
    _fail(accounts, "alice", 2)
    assert accounts.limiter.lock_remaining_s("alice") == 8.0
    clock.advance(8)
    _fail(accounts, "alice", 1)
    clock.advance(10)
    _fail(accounts, "alice", 1)
    assert accounts.verify("alice", RIGHT)


@pytest.mark.parametrize(
    "limits",
    [
        {"max_failures": 0},  # would lock before any attempt
        {"failure_window_s": 0},  # no failure could ever count
        {"lock_initial_s": 0},  # a lock of no length
        {"lock_initial_s": 60, "lock_max_s": 30},  # cap below the first lock
    ],
)
def test_invalid_lock_limits_rejected(limits):
    with pytest.raises(ValueError, match=next(iter(limits))):
        SignInLimiter(**limits)


def test_lock_warning_names_user_not_password(caplog):
    clock = FakeClock()
    accounts = _limited(clock)

    with caplog.at_level(logging.WARNING, logger="chat_ui.sign_in_limit"):
        _fail(accounts, "alice", 5)
        assert not accounts.verify("alice", RIGHT)
        assert not accounts.verify("alice", RIGHT)

    messages = [record.getMessage() for record in caplog.records]
    assert any("locked sign-in for user 'alice' for 30 s" in message for message in messages)
    assert sum("rejected a sign-in for locked user 'alice'" in message for message in messages) == 1
    assert not any(RIGHT in message or WRONG in message for message in messages)


def test_default_lock_limits():
    accounts = Accounts({"alice": RIGHT})

    assert accounts.limiter.max_failures == 5
    assert accounts.limiter.failure_window_s == 15 * 60
    assert accounts.limiter.lock_initial_s == 30
    assert accounts.limiter.lock_max_s == 15 * 60


SECRET = "Sup3r-Secret"


@pytest.mark.parametrize(
    ("users", "file_text", "admins", "expected"),
    [
        ("alice", None, "", "expected user:password"),  # no colon
        ("alice:", None, "", "expected user:password"),  # empty password
        (f":{SECRET}", None, "", "expected user:password"),  # empty user
        (f"al ice:{SECRET}", None, "", "remove spaces"),  # a space Gradio's form would strip
        (f"alice:{SECRET}", f"alice:{SECRET}\n", "", "defined twice"),  # in both sources
        (f"alice:{SECRET},alice:{SECRET}2", None, "", "defined twice"),  # twice in one source
        (f"alice:{SECRET}", None, "alice,bob", "bob"),  # an admin without an account
        (None, None, "alice", "alice"),  # admins but no accounts at all
        (f"alice:pbkdf2_sha256$many${SECRET}$x", None, "", "Invalid PBKDF2 hash"),  # iterations not a number
        (f"alice:pbkdf2_sha256$1000${SECRET}", None, "", "Invalid PBKDF2 hash"),  # hash part missing
        (None, f"bob {SECRET}\n", "", ":1"),  # the file's line is named
    ],
)
def test_invalid_accounts_are_rejected_without_secrets(tmp_path, users, file_text, admins, expected):
    fields = {"admin_users": admins}
    if users is not None:
        fields["auth_users"] = SecretStr(users)
    if file_text is not None:
        fields["auth_file"] = _private_file(tmp_path / "users", file_text)

    with pytest.raises(AuthConfigError) as raised:
        load_accounts(_ops(**fields))

    assert expected in str(raised.value)
    assert SECRET not in str(raised.value)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_password_file_readable_by_others_is_rejected(tmp_path):
    auth_file = tmp_path / "users"
    auth_file.write_text("alice:pw\n", encoding="utf-8")
    auth_file.chmod(0o644)

    with pytest.raises(AuthConfigError, match=f"chmod 600 {auth_file}"):
        load_accounts(_ops(auth_file=auth_file))


def test_missing_password_file_is_named(tmp_path):
    with pytest.raises(AuthConfigError, match="does not exist"):
        load_accounts(_ops(auth_file=tmp_path / "absent"))


def test_plain_text_passwords_warn_without_showing_them(caplog):
    caplog.set_level(logging.INFO)

    accounts = load_accounts(_ops(auth_users=SecretStr(f"alice:{SECRET}")))

    assert "plain-text password" in caplog.text
    assert SECRET not in caplog.text
    assert SECRET not in repr(accounts)


def test_users_setting_is_hidden_in_settings_repr():
    ops = _ops(auth_users=SecretStr(f"alice:{SECRET}"), metrics_token=SecretStr(SECRET))

    assert SECRET not in repr(ops)


# ---------------------------------------------------------------------------------------
# Share links and launch arguments


@pytest.fixture
def settings(tmp_path) -> ChatSettings:
    return ChatSettings(host="127.0.0.1", port=7861, log_database_url=f"sqlite:///{tmp_path / 'log.sqlite3'}")


def _without_i18n(options: dict) -> dict:
    options = dict(options)
    assert isinstance(options.pop("i18n"), gr.I18n)
    return options


def test_launch_options_without_sign_in(settings):
    options = launch_options(settings, Accounts({}))

    assert _without_i18n(options) == {
        "server_name": "127.0.0.1",
        "server_port": 7861,
        "share": False,
        "auth": None,
        "auth_message": None,
        "theme": _THEME,
        "prevent_thread_lock": False,
        "show_error": False,
        "quiet": True,
        "ssr_mode": False,
        "enable_monitoring": False,
        "run_history": False,
        "max_file_size": MAX_UPLOAD_BYTES,
        "blocked_paths": blocked_paths(settings),
    }


def test_launch_options_share_with_sign_in(settings):
    accounts = Accounts({"alice": "pw"})

    options = launch_options(settings, accounts, share=True, prevent_thread_lock=True)

    assert _without_i18n(options) == {
        "server_name": "127.0.0.1",
        "server_port": 7861,
        "share": True,
        "auth": accounts.verify_async,
        "auth_message": options["auth_message"],
        "theme": _THEME,
        "prevent_thread_lock": True,
        "show_error": False,
        "quiet": True,
        "ssr_mode": False,
        "enable_monitoring": False,
        "run_history": False,
        "max_file_size": MAX_UPLOAD_BYTES,
        "blocked_paths": blocked_paths(settings),
    }
    assert "로그인" in options["auth_message"]
    assert "Sign in" in options["auth_message"]


def test_blocked_paths_cover_index_and_log(settings, tmp_path):
    blocked = blocked_paths(settings)

    assert str(settings.index_dir.resolve()) in blocked
    assert str(tmp_path.resolve()) in blocked  # the SQLite log's folder
    assert str((Path.cwd() / ".env").resolve()) in blocked


def test_share_without_sign_in_is_rejected(settings):
    with pytest.raises(ShareWithoutAuthError) as raised:
        launch_options(settings, Accounts({}), share=True)

    assert "VERACLAIM_AUTH_USERS" in str(raised.value)
    assert "--force-share" in str(raised.value)


def test_force_share_passes_share_without_auth(settings):
    options = launch_options(settings, Accounts({}), share=True, force_share=True)

    assert options["share"] is True
    assert options["auth"] is None


def test_force_share_launch_warns_loudly(settings, monkeypatch, caplog):
    # Gradio's launch is the boundary to the share tunnel, so a recorder takes its place.
    calls: list[dict] = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: calls.append(kwargs))
    caplog.set_level(logging.WARNING)

    with gr.Blocks() as demo:
        gr.Markdown("demo")
    launch(demo, settings, share=True, force_share=True, ops=_ops())

    assert len(calls) == 1
    assert calls[0]["share"] is True
    assert calls[0]["auth"] is None
    assert calls[0]["app_kwargs"] == {"routes": [], "lifespan": None}
    assert "PUBLIC URL WITHOUT SIGN-IN" in caplog.text


def test_share_launch_without_sign_in_never_reaches_gradio(settings, monkeypatch):
    calls: list[dict] = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: calls.append(kwargs))

    with gr.Blocks() as demo:
        gr.Markdown("demo")
    with pytest.raises(ShareWithoutAuthError):
        launch(demo, settings, share=True, ops=_ops())

    assert calls == []


# ---------------------------------------------------------------------------------------
# The launched app, over real HTTP on 127.0.0.1


@pytest.fixture
def signed_in_server(launch_chat_app):
    ops = _ops(auth_users=SecretStr(f"alice:{hash_password('alice-pw', iterations=FAST)}"))
    return launch_chat_app(ops).url


def test_signed_in_app_rejects_anonymous_requests(signed_in_server, fake_tgi):
    with httpx.Client(base_url=signed_in_server, trust_env=False, timeout=30) as client:
        assert client.get("/config").status_code == 401
        assert client.post("/gradio_api/call/ask", json={"data": ["질문", ""]}).status_code == 401
        assert client.post("/login", data={"username": "alice", "password": "wrong"}).status_code == 400
        assert client.post("/login", data={"username": "mallory", "password": "alice-pw"}).status_code == 400

        assert client.post("/login", data={"username": "alice", "password": "alice-pw"}).status_code == 200
        assert client.get("/config").status_code == 200

    # On 127.0.0.1 without a share link, /metrics stays open for a local scraper even
    # with sign-in on. /admin needs admin users, and this server has none.
    with httpx.Client(base_url=signed_in_server, trust_env=False, timeout=30) as client:
        assert client.get("/metrics").status_code == 200
        assert client.get("/admin/").status_code == 404


@pytest.mark.parametrize(
    "stored",
    [
        {"carol": "plain-password", "dave": "other-plain"},
        {"carol": hash_password("pw", iterations=FAST), "dave": "plain"},
        {"carol": hash_password("pw", iterations=FAST), "dave": hash_password("pw2", iterations=FAST)},
    ],
)
def test_unknown_name_is_checked_against_the_common_kind_of_secret(stored):
    # An unknown name must cost what a known one does, so with plain-text accounts it must
    # not be checked against a PBKDF2 hash.
    accounts = Accounts(stored)

    assert not accounts.verify("mallory", "plain-password")
    reference = accounts._timing_reference()
    assert reference in stored.values()
    plain = sum(not is_hashed(secret) for secret in stored.values())
    assert is_hashed(reference) == (len(stored) - plain >= plain)
