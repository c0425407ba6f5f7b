"""Fixtures of the chat tests: a throwaway MariaDB database per test, and the sample index.

The server runs on 127.0.0.1:3306 as root with an empty password, and ``make test`` starts it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

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
    connection.close()


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
    with mariadb_admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def mariadb_url(mariadb_database: str) -> str:
    """mysql:// URL of the test's own database."""
    return f"mysql://{MARIADB_USER}@{MARIADB_HOST}:{MARIADB_PORT}/{mariadb_database}"


# ---------------------------------------------------------------------------------------
# The sample index and the chat pipeline over it.

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "data" / "samples"


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The index of every committed sample PDF, built once per session (about 2 minutes on 2 cores)."""
    from index_builder.build import build_index

    out = tmp_path_factory.mktemp("sample-index") / "index"
    build_index(str(SAMPLES_DIR), out, progress=False)
    return out


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
