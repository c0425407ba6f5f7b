"""Fixtures of the chat tests: a throwaway MariaDB database per test, the conversation log
on both backends, the sample index, and the chat app launched on 127.0.0.1.

The server runs on 127.0.0.1:3306 as root with an empty password, and ``make test`` starts it.
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
import contextlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pymysql
import pytest

from chat_ui.log import ConversationLog, LogSettings
from tests.chat_ui.support import free_port

if TYPE_CHECKING:
    from chat_ui.ops_settings import OpsSettings
    from chat_ui.pipeline import AnswerPipeline

MARIADB_HOST = "127.0.0.1"
MARIADB_PORT = 3306
MARIADB_USER = "root"
MARIADB_CONNECT_TIMEOUT_S = 5


def connect_mariadb_admin() -> pymysql.connections.Connection:
    """Connect to the test server as root, failing the test with the fix if it is down."""
    try:
        return pymysql.connect(
            host=MARIADB_HOST,
            port=MARIADB_PORT,
            user=MARIADB_USER,
            password="",
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=MARIADB_CONNECT_TIMEOUT_S,
        )
    except pymysql.err.OperationalError as error:
        failure = error

    # Failing outside the except block keeps the driver's traceback out of the report.
    pytest.fail(
        f"MariaDB is not reachable on {MARIADB_HOST}:{MARIADB_PORT} as {MARIADB_USER} "
        f"with an empty password ({failure}). Start it with `make test`, which runs "
        "scripts/setup_venv.sh test.",
        pytrace=False,
    )


@pytest.fixture
def mariadb_admin() -> Iterator[pymysql.connections.Connection]:
    """Root connection to the test server, for setting up and inspecting databases."""
    connection = connect_mariadb_admin()
    yield connection
    try:
        connection.close()
    except pymysql.err.Error:
        pass  # already dropped by a server restart


@pytest.fixture
def mariadb_database(mariadb_admin: pymysql.connections.Connection) -> Iterator[str]:
    """Name of a new, empty database that is dropped after the test.

    Its default character set is latin1, as on an older server, so a table that does not
    declare utf8mb4 itself fails the tests instead of inheriting it.
    """
    name = f"veraclaim_test_{uuid.uuid4().hex[:16]}"
    with mariadb_admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET latin1")
    yield name
    # A new connection, because a test that restarted the server left mariadb_admin dead.
    connection = connect_mariadb_admin()
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        connection.close()


@pytest.fixture
def mariadb_url(mariadb_database: str) -> str:
    """mysql:// URL of the test's own database."""
    return f"mysql://{MARIADB_USER}@{MARIADB_HOST}:{MARIADB_PORT}/{mariadb_database}"


@pytest.fixture
def mariadb_user(
    mariadb_admin: pymysql.connections.Connection, mariadb_database: str
) -> Iterator[tuple[str, str]]:
    """(user, password) of a new account with every privilege on the test's database.

    The password contains characters that URLs must percent-encode.
    """
    user = f"veraclaim_{uuid.uuid4().hex[:8]}"
    password = f"Pw-{uuid.uuid4().hex[:10]}@/:%#"
    with mariadb_admin.cursor() as cursor:
        # "%%" is a literal "%" because PyMySQL formats a statement that has parameters.
        cursor.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
        cursor.execute(f"GRANT ALL ON `{mariadb_database}`.* TO '{user}'@'%'")
    yield user, password
    connection = connect_mariadb_admin()
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP USER IF EXISTS '{user}'@'%'")
    finally:
        connection.close()


# Stopping the server affects every test that uses it at the same time, so an outage must
# stay short. mariadbd needs a few seconds to stop and to start on this kind of machine.
MARIADBD = "/usr/sbin/mariadbd"
MARIADB_STOP_TIMEOUT_S = 30
MARIADB_START_TIMEOUT_S = 60


def _port_open() -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((MARIADB_HOST, MARIADB_PORT)) == 0


def _answers() -> bool:
    try:
        connection = pymysql.connect(
            host=MARIADB_HOST, port=MARIADB_PORT, user=MARIADB_USER, password="", connect_timeout=2
        )
    except pymysql.err.OperationalError:
        return False
    connection.close()
    return True


def _start_mariadb() -> None:
    deadline = time.monotonic() + MARIADB_START_TIMEOUT_S
    while True:
        # --oknodo: a server that is already running is fine.
        subprocess.run(
            ["start-stop-daemon", "--start", "--oknodo", "--background", "--exec", MARIADBD],
            check=False,
        )
        for _ in range(20):
            if _answers():
                return
            time.sleep(0.5)
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"MariaDB did not answer on {MARIADB_HOST}:{MARIADB_PORT} within "
                f"{MARIADB_START_TIMEOUT_S} s of starting it; see /var/log/mysql/error.log "
                f"and start it with: start-stop-daemon --start --background --exec {MARIADBD}"
            )


@contextmanager
def _mariadb_stopped() -> Iterator[None]:
    """Stop the server for the block, and start it again even when the block fails."""
    try:
        # --retry waits until the process has exited, so that the start below does not
        # find the old server still shutting down and skip itself.
        subprocess.run(
            ["start-stop-daemon", "--stop", "--oknodo", "--exec", MARIADBD,
             "--retry", str(MARIADB_STOP_TIMEOUT_S)],
            check=True,
        )
        deadline = time.monotonic() + MARIADB_STOP_TIMEOUT_S
        while _port_open():
            if time.monotonic() > deadline:
                raise RuntimeError(f"Port {MARIADB_PORT} is still open after stopping MariaDB.")
            time.sleep(0.1)
        yield
    finally:
        _start_mariadb()


@pytest.fixture
def mariadb_outage() -> Iterator[Callable[[], contextlib.AbstractContextManager[None]]]:
    """A context manager factory that stops MariaDB for its block.

    The server is started again when the block ends, and once more when the test ends, in
    case the test failed between the two.
    """
    try:
        yield _mariadb_stopped
    finally:
        _start_mariadb()


# ---------------------------------------------------------------------------------------
# The conversation log on each backend. A test module may define its own fixture of the same
# name, which then replaces this one for that module.


@pytest.fixture
def settings(tmp_path: Path) -> LogSettings:
    """Log settings with the test's own journal directory and a fast replay."""
    return LogSettings(journal_dir=tmp_path / "journal", replay_interval_s=0.2)


@pytest.fixture(params=["sqlite", "mariadb"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty log database on each backend.

    The SQLite file is in a folder that does not exist yet, which the log creates.
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/db/log.sqlite3"
    return request.getfixturevalue("mariadb_url")


@pytest.fixture
def log(log_url: str, settings: LogSettings) -> Iterator[ConversationLog]:
    """The conversation log on ``log_url``, closed after the test."""
    conversation_log = ConversationLog.open(log_url, settings=settings)
    yield conversation_log
    conversation_log.close()


# ---------------------------------------------------------------------------------------
# The sample index and the chat pipeline over it.

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "data" / "samples"


@pytest.fixture(scope="session")
def patent_act_page_of_article_64() -> int:
    """The page of the sample Patent Act PDF that holds 제64조, read from the PDF itself."""
    import pypdfium2

    pdf = pypdfium2.PdfDocument(SAMPLES_DIR / "patent_act.pdf")
    try:
        pages = [pdf[i].get_textpage().get_text_range() for i in range(len(pdf))]
    finally:
        pdf.close()
    matches = [number for number, text in enumerate(pages, start=1) if "제64조(출원공개)" in text]
    assert len(matches) == 1, f"제64조 heading found on pages {matches}"
    return matches[0]


@pytest.fixture(scope="session")
def small_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of the Patent Act and one guideline chapter: enough Korean text to overflow a budget."""
    import shutil

    from index_builder.build import build_index

    source = tmp_path_factory.mktemp("small-source")
    for name in ("patent_act.pdf", "guidelines_amendment.pdf"):
        shutil.copy(SAMPLES_DIR / name, source / name)
    out = tmp_path_factory.mktemp("small-index") / "index"
    build_index(str(source), out, progress=False)
    return out


@pytest.fixture
def small_chat_settings(small_index: Path, tmp_path: Path) -> Callable[..., Any]:
    """A function that returns ChatSettings over `small_index` with a SQLite log in `tmp_path`.

    max_tokens is 64; keyword arguments override it and set the other fields.
    """
    from chat_ui.settings import ChatSettings

    def make(**overrides: Any) -> ChatSettings:
        fields = {"max_tokens": 64, **overrides}
        return ChatSettings(index_dir=small_index, log_database_url=f"sqlite:///{tmp_path / 'log.sqlite3'}", **fields)

    return make


@pytest.fixture(autouse=True)
def journal_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep each test's log journal out of the repository's var/ folder."""
    monkeypatch.setenv("VERACLAIM_LOG_JOURNAL_DIR", str(tmp_path / "journal"))


# ---------------------------------------------------------------------------------------
# The chat app, launched on 127.0.0.1 with the small index and the fake TGI server.


@dataclass(frozen=True)
class LaunchedApp:
    """A chat app that ``launch_chat_app`` started: its base URL and its pipeline."""

    url: str
    pipeline: AnswerPipeline


@pytest.fixture
def launch_chat_app(
    small_index: Path, tmp_path: Path, fake_tgi: Any
) -> Iterator[Callable[[OpsSettings], LaunchedApp]]:
    """A function that launches the chat app with the given OpsSettings and returns it.

    Each launch listens on a free port and streams its replies from the fake TGI server, with
    max_tokens=64. All launches of one test share the SQLite log in ``tmp_path``. Every app and its
    log are closed after the test.
    """
    from chat_ui.app import build_app
    from chat_ui.server import launch
    from chat_ui.service import ModelEndpoint, build_pipeline
    from chat_ui.settings import ChatSettings

    launched = []

    def start(ops: OpsSettings) -> LaunchedApp:
        settings = ChatSettings(
            index_dir=small_index,
            log_database_url=f"sqlite:///{tmp_path / 'log.sqlite3'}",
            host="127.0.0.1",
            port=free_port(),
            max_tokens=64,
        )
        pipeline = build_pipeline(settings, ModelEndpoint(fake_tgi.base_url, fake_tgi.model_id, timeout_s=10))
        demo = build_app(pipeline, settings)
        launched.append((demo, pipeline))
        launch(demo, settings, pipeline=pipeline, prevent_thread_lock=True, ops=ops)
        return LaunchedApp(url=f"http://127.0.0.1:{settings.port}", pipeline=pipeline)

    yield start
    for demo, pipeline in launched:
        demo.close()
        pipeline.log.close()
