"""Benchmark the conversation log: the time a chat turn spends in record_turn, and how many
turns per second the background writer stores.

    python scripts/bench_log.py                      # SQLite and the local MariaDB
    python scripts/bench_log.py --backend sqlite --runs 3

Latency: each run times N turns twice, interleaved. "Off" builds the TurnRecord, as the
pipeline does, and stores nothing; "on" builds it and calls record_turn(). Turns are paced
(``--pace-ms``) because chat turns arrive seconds apart and the writer thread otherwise
competes with the caller for the GIL; ``--pace-ms 0`` measures a tight loop. The report
gives the median over runs of each run's median per turn, and the difference and ratio of
on against off measured in the same run.

Throughput: each run queues ``--throughput-turns`` turns as fast as possible and waits
for flush(); turns per second = turns / (time from the first record_turn to the end of
flush()). The MariaDB database is created for the run and dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import pymysql  # noqa: E402

from chat_ui.log import ConversationLog, LogSettings, TurnRecord  # noqa: E402

MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
# A realistic turn: a Korean question, a 1,500-character answer, five cited sources.
ANSWER = "청구항 1은 제1 구성요소와 제2 구성요소를 포함합니다 [1]. " * 40
SOURCES = [
    {
        "n": n,
        "chunk_id": f"patent_act.pdf#p{n}-c{n}",
        "file_name": "patent_act.pdf",
        "page": n,
        "score": 0.8 - n / 100,
        "source_uri": "file:///data/samples/patent_act.pdf",
    }
    for n in range(1, 6)
]


def build_turn(conversation_id: str, index: int) -> TurnRecord:
    return TurnRecord(
        conversation_id=conversation_id,
        question=f"특허법 제64조의 출원공개 시기는 언제인가요? ({index})",
        answer=ANSWER,
        sources=SOURCES,
        model_id="Qwen/Qwen3-8B",
        model_base_url="http://127.0.0.1:8080/v1",
        latency_ms=1830.4,
        first_token_ms=212.7,
        sampling_params={"temperature": 0.3, "max_tokens": 512},
        input_tokens=1834,
        output_tokens=211,
    )


@contextmanager
def opened_log(backend: str, workdir: Path) -> Iterator[ConversationLog]:
    """Open a log on a new database of ``backend``; drop the database afterwards."""
    settings = LogSettings(journal_dir=workdir / "journal")
    if backend == "sqlite":
        with ConversationLog.open(f"sqlite:///{workdir}/{uuid.uuid4().hex}.sqlite3", settings=settings) as log:
            yield log
        return

    name = f"veraclaim_bench_{uuid.uuid4().hex[:12]}"
    admin = pymysql.connect(**MARIADB, autocommit=True)
    try:
        admin.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        url = f"mysql://{MARIADB['user']}@{MARIADB['host']}:{MARIADB['port']}/{name}"
        with ConversationLog.open(url, settings=settings) as log:
            yield log
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


def median_call_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000.0


def latency_run(log: ConversationLog, turns: int, pace_s: float) -> tuple[float, float]:
    """Return the median milliseconds per turn with logging off and on, interleaved."""
    conversation_id = log.start_conversation(title="bench")
    off: list[float] = []
    on: list[float] = []
    clock = time.perf_counter
    for index in range(turns):
        started = clock()
        build_turn(conversation_id, index)
        off.append(clock() - started)

        started = clock()
        log.record_turn(build_turn(conversation_id, index))
        on.append(clock() - started)
        if pace_s:
            time.sleep(pace_s)
    log.flush(timeout=300)
    return median_call_ms(off), median_call_ms(on)


def throughput_run(log: ConversationLog, turns: int) -> float:
    """Return the turns per second that reach the database, queueing as fast as possible."""
    conversation_id = log.start_conversation(title="bench")
    log.flush(timeout=60)
    records = [build_turn(conversation_id, index) for index in range(turns)]
    started = time.perf_counter()
    for record in records:
        log.record_turn(record)
    backlog = log.flush(timeout=600)
    elapsed = time.perf_counter() - started
    if backlog:
        raise RuntimeError(f"{backlog} turns went to the journal; the database was unavailable")
    return turns / elapsed


def repeat(runs: int, measure: Callable[[], Any]) -> list[Any]:
    return [measure() for _ in range(runs)]


def machine() -> dict[str, Any]:
    mariadb_version = None
    try:
        connection = pymysql.connect(**MARIADB)
        with connection.cursor() as cursor:
            cursor.execute("SELECT VERSION()")
            mariadb_version = cursor.fetchone()[0]
        connection.close()
    except pymysql.err.OperationalError:
        pass
    return {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "mariadb": mariadb_version,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "mariadb", "both"], default="both")
    parser.add_argument("--runs", type=int, default=5, help="Runs per measurement.")
    parser.add_argument("--turns", type=int, default=500, help="Turns per latency run.")
    parser.add_argument("--pace-ms", type=float, default=2.0, help="Pause between turns, ms.")
    parser.add_argument("--throughput-turns", type=int, default=2000, help="Turns per throughput run.")
    arguments = parser.parse_args()
    backends = ["sqlite", "mariadb"] if arguments.backend == "both" else [arguments.backend]

    results: dict[str, Any] = {"machine": machine(), "arguments": vars(arguments), "backends": {}}
    with tempfile.TemporaryDirectory(prefix="bench-log-") as directory:
        workdir = Path(directory)
        for backend in backends:
            with opened_log(backend, workdir) as log:
                latency = repeat(
                    arguments.runs,
                    lambda: latency_run(log, arguments.turns, arguments.pace_ms / 1000.0),
                )
                tight = repeat(arguments.runs, lambda: latency_run(log, arguments.turns, 0.0))
                rates = repeat(arguments.runs, lambda: throughput_run(log, arguments.throughput_turns))

            off_ms = statistics.median(off for off, _ in latency)
            on_ms = statistics.median(on for _, on in latency)
            results["backends"][backend] = {
                "off_ms": off_ms,
                "on_ms": on_ms,
                "added_ms": statistics.median(on - off for off, on in latency),
                "ratio": statistics.median(on / off for off, on in latency),
                "tight_added_ms": statistics.median(on - off for off, on in tight),
                "turns_per_s": statistics.median(rates),
                "turns_per_s_runs": [round(rate) for rate in rates],
            }

    print(json.dumps(results, indent=2))
    print()
    print("| backend | turn, logging off (ms) | turn, logging on (ms) | added (ms) | on/off | added, tight loop (ms) | turns stored per s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for backend, row in results["backends"].items():
        print(
            f"| {backend} | {row['off_ms']:.4f} | {row['on_ms']:.4f} | {row['added_ms']:.4f} | "
            f"{row['ratio']:.1f} | {row['tight_added_ms']:.4f} | {row['turns_per_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
