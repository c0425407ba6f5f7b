"""Plain helpers that several chat_ui test modules import. Fixtures live in conftest.py.

pytest runs with --import-mode=importlib and the tests have no __init__.py, so a test
module imports this file as ``tests.chat_ui.support``.
"""

from __future__ import annotations

import socket
import sqlite3
from typing import Any

import pymysql

from chat_ui.log import TurnRecord
from chat_ui.log.database import parse_database_url


def make_turn(conversation_id: str, **overrides: Any) -> TurnRecord:
    """Build a short, valid turn of ``conversation_id`` with status ok. ``overrides`` replace fields."""
    fields: dict[str, Any] = {
        "conversation_id": conversation_id,
        "question": "청구항 1의 구성요소는?",
        "answer": "세 가지입니다 [1].",
        "model_id": "Qwen/Qwen3-8B",
        "model_base_url": "http://127.0.0.1:8080/v1",
        "latency_ms": 900,
    }
    fields.update(overrides)
    return TurnRecord(**fields)


def free_port() -> int:
    """Return a local TCP port that nothing listens on right now.

    Tests launch a server on it, or expect a connection to it to be refused.
    NOTE: another process may take the port between this call and its use.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def connect_outside_log(url: str) -> tuple[Any, str]:
    """Open a DB-API connection to the log database at ``url``, bypassing the log.

    Returns the connection and its driver's parameter marker: "?" for sqlite3 and "%s" for
    PyMySQL. The caller commits and closes the connection.
    """
    target = parse_database_url(url)
    if target.sqlite_path is not None:
        return sqlite3.connect(target.sqlite_path), "?"

    params = target.mysql_params
    connection = pymysql.connect(
        host=params["host"], port=params["port"], user=params["user"],
        password=params["password"], database=params["database"],
    )
    return connection, "%s"
