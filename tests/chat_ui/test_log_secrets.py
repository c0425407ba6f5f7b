"""Database secrets of the conversation log: the password or the whole URL from the
environment or from AWS SSM Parameter Store (moto's server on 127.0.0.1), and no secret in
any log line on the open, failure and reconnect paths."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import boto3
import pymysql
import pytest
from moto.server import ThreadedMotoServer

from chat_ui.errors import LogDatabaseError, SecretNotFoundError, SecretUnavailableError
from chat_ui.log import ConversationLog, LogSettings
from chat_ui.log.credentials import read_ssm_secret, resolve_target
from chat_ui.log.database import open_database
from chat_ui.log.migrations import LATEST_VERSION
from chat_ui.log.pool import LogMySQLDatabase
from tests.chat_ui.support import free_port, make_turn

REGION = "ap-northeast-2"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """URL of a moto server on a free 127.0.0.1 port, shared by this module's tests."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Point boto3 at the moto server with dummy credentials and no other AWS source."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return moto_endpoint


def put_secret(value: str) -> str:
    """Store ``value`` as a SecureString under a new name and return the name."""
    name = f"/veraclaim/test/{uuid.uuid4().hex[:8]}/database"
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name=name, Value=value, Type="SecureString"
    )
    return name


def leaked_lines(caplog: pytest.LogCaptureFixture, secret: str) -> list[str]:
    """Return each captured log line or traceback that contains ``secret`` in any form."""
    forms = {secret, quote(secret, safe=""), repr(secret)[1:-1]}
    leaked = []
    for record in caplog.records:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        if any(form in text for form in forms):
            leaked.append(f"{record.name}: {text[:200]}")
    return leaked


def kill_sessions(admin: pymysql.connections.Connection, user: str) -> None:
    with admin.cursor() as cursor:
        cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (user,))
        for (session_id,) in cursor.fetchall():
            try:
                cursor.execute(f"KILL CONNECTION {int(session_id)}")
            except pymysql.err.OperationalError:
                pass


# Where the secret comes from.


def test_password_from_ssm(
    aws_env: str, mariadb_user: tuple[str, str], mariadb_database: str, settings: LogSettings
) -> None:
    user, password = mariadb_user
    from_ssm = settings.model_copy(update={"ssm_database_password_parameter": put_secret(password)})

    with ConversationLog.open(f"mysql://{user}@127.0.0.1:3306/{mariadb_database}", settings=from_ssm) as log:
        turn_id = log.record_turn(make_turn(log.start_conversation()))
        assert log.get_turn(turn_id).turn_id == turn_id
        assert password not in repr(log)
        assert password not in log.database_name


def test_url_from_ssm(
    aws_env: str, mariadb_user: tuple[str, str], mariadb_database: str, settings: LogSettings
) -> None:
    user, password = mariadb_user
    url = f"mysql://{user}:{quote(password, safe='')}@127.0.0.1:3306/{mariadb_database}"
    from_ssm = settings.model_copy(update={"ssm_database_url_parameter": put_secret(url)})

    # The URL argument is replaced by the parameter's value.
    with ConversationLog.open("sqlite:///ignored.sqlite3", settings=from_ssm) as log:
        assert log.database_name == (
            f"MySQL database mysql://{user}:***@127.0.0.1:3306/{mariadb_database}"
        )
        turn_id = log.record_turn(make_turn(log.start_conversation()))
        assert log.get_turn(turn_id).turn_id == turn_id


def test_password_from_environment(
    mariadb_user: tuple[str, str],
    mariadb_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user, password = mariadb_user
    monkeypatch.setenv("VERACLAIM_LOG_DATABASE_PASSWORD", password)
    monkeypatch.setenv("VERACLAIM_LOG_JOURNAL_DIR", str(tmp_path / "journal"))

    with ConversationLog.open(f"mysql://{user}@127.0.0.1:3306/{mariadb_database}") as log:
        assert log.status().schema_version == LATEST_VERSION
    assert password not in repr(LogSettings())


SECRET_ORDER = [
    # the URL's own password wins over both settings
    ("mysql://u:in-url@db/log", "from-env", "from-ssm", "in-url"),
    # the environment comes before SSM
    ("mysql://u@db/log", "from-env", "from-ssm", "from-env"),
    # SSM fills in a URL without a password
    ("mysql://u@db/log", None, "from-ssm", "from-ssm"),
    # nothing configured: no password
    ("mysql://u@db/log", None, None, ""),
]


@pytest.mark.parametrize(("url", "environment", "ssm", "expected"), SECRET_ORDER)
def test_password_source_order(
    aws_env: str, url: str, environment: str | None, ssm: str | None, expected: str
) -> None:
    settings = LogSettings(
        database_password=environment,
        ssm_database_password_parameter=put_secret(ssm) if ssm else None,
    )

    target = resolve_target(url, settings)

    assert target.password == expected
    assert target.mysql_params["password"] == expected


def test_missing_parameter_named(aws_env: str) -> None:
    with pytest.raises(SecretNotFoundError, match="/veraclaim/missing") as caught:
        read_ssm_secret("/veraclaim/missing")

    assert isinstance(caught.value, LookupError)
    assert "SecureString" in str(caught.value)


def test_unreachable_ssm_reported(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")

    with pytest.raises(SecretUnavailableError, match="/veraclaim/any") as caught:
        read_ssm_secret("/veraclaim/any")

    assert isinstance(caught.value, ConnectionError)
    assert "credentials" in str(caught.value)


# No secret in the logs.


def test_botocore_debug_would_log_secret(aws_env: str, caplog: pytest.LogCaptureFixture) -> None:
    # The reason read_ssm_secret() quiets botocore: at DEBUG it logs the response body.
    secret = f"Visible-{uuid.uuid4().hex}"
    name = put_secret(secret)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="botocore")

    boto3.client("ssm", region_name=REGION).get_parameter(Name=name, WithDecryption=True)
    assert leaked_lines(caplog, secret), "botocore no longer logs bodies; the guard may go"

    caplog.clear()
    assert read_ssm_secret(name) == secret
    assert leaked_lines(caplog, secret) == []
    assert logging.getLogger("botocore").level == logging.DEBUG


def test_password_never_logged(
    aws_env: str,
    mariadb_user: tuple[str, str],
    mariadb_database: str,
    mariadb_admin: pymysql.connections.Connection,
    settings: LogSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user, password = mariadb_user
    parameter = put_secret(password)
    wrong_parameter = put_secret(password[::-1])
    url = f"mysql://{user}@127.0.0.1:3306/{mariadb_database}"
    from_ssm = settings.model_copy(update={"ssm_database_password_parameter": parameter})
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="botocore")

    # 1. Open, write and read.
    log = ConversationLog.open(url, settings=from_ssm)
    conversation_id = log.start_conversation()
    log.record_turn(make_turn(conversation_id))
    assert log.flush() == 0

    # 2. A connection lost in the middle of a request, on the same credentials.
    database = open_database(resolve_target(url, from_ssm))
    assert isinstance(database, LogMySQLDatabase)
    with database.connection_context():
        database.execute_sql("SELECT 1")
        kill_sessions(mariadb_admin, user)
        database.execute_sql("SELECT 1")
    assert database.reconnect_count == 1
    database.close_all()

    # 3. The user loses its rights: writes fail and go to the journal, then replay.
    with mariadb_admin.cursor() as cursor:
        cursor.execute(f"REVOKE ALL ON `{mariadb_database}`.* FROM '{user}'@'%'")
    kill_sessions(mariadb_admin, user)
    log.record_turn(make_turn(conversation_id))
    assert log.flush() == 1
    with pytest.raises(LogDatabaseError):
        log.turns(conversation_id)
    with mariadb_admin.cursor() as cursor:
        cursor.execute(f"GRANT ALL ON `{mariadb_database}`.* TO '{user}'@'%'")
    assert log.flush() == 0
    log.close()

    # 4. Opens that fail: a wrong password, and a server that is not there.
    wrong = settings.model_copy(update={"ssm_database_password_parameter": wrong_parameter})
    with pytest.raises(LogDatabaseError, match="Access denied"):
        ConversationLog.open(url, settings=wrong)
    with pytest.raises(LogDatabaseError, match="server is running"):
        ConversationLog.open(f"mysql://{user}@127.0.0.1:{free_port()}/x", settings=from_ssm)

    messages = [record.getMessage() for record in caplog.records]
    assert any("reconnecting (reconnect 1)" in message for message in messages)
    assert any("writing to the journal" in message for message in messages)
    assert any(record.name == "peewee" for record in caplog.records), "DEBUG was not captured"
    assert leaked_lines(caplog, password) == []
    assert leaked_lines(caplog, password[::-1]) == []
