"""Measure the latency the chat app adds under load: concurrent sessions through gradio_client.

The app runs on 127.0.0.1 with a real index and a SQLite log, in front of the fake TGI
server from tests/conftest.py, which streams its reply fast and in constant time. Each of
`--sessions` threads is one user with its own gradio_client session. It asks
`--questions` questions one after the other in one conversation through the app's `ask`
endpoint and times each from submit() to the final result.

The baseline is the fake model server's own latency for the same requests, measured
directly in the same run. Each question carries a tag, so its chat request can be found
among the requests the fake recorded. After the load phase, every recorded request body is
sent again straight to the fake, with the same concurrency, and timed to the end of its
stream. The latency the app adds to a question is its end-to-end time minus that baseline.
It includes Gradio's queue, retrieval (query embedding and BM25), prompt building, the
stream and the log.

    python scripts/bench_chat_load.py --index-dir var/index
    python scripts/bench_chat_load.py --index-dir var/index --concurrency-limit 8  # queueing

Any failed or unexpected answer makes the script exit with status 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Set before gradio and huggingface_hub are imported: nothing may call out of the machine.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

import httpx  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFTEST = REPO_ROOT / "tests" / "conftest.py"

# Questions about the sample PDFs. Session s asks them from position s on, so that
# neighbouring sessions differ.
QUESTIONS = [
    "특허출원은 언제 공개되나요?",
    "출원공개의 효과는 무엇인가요?",
    "보정은 언제까지 할 수 있나요?",
    "심사청구는 누가 할 수 있나요?",
    "특허권의 존속기간은 얼마인가요?",
    "분할출원은 언제 할 수 있나요?",
    "명세서의 보정 범위는 어떻게 되나요?",
    "우선권 주장은 어떻게 하나요?",
]
# The fake's answer: 40 short deltas, as a model streams tokens.
ANSWER_DELTAS = ["출원일부터 ", "1년 ", "6개월이 ", "지나면 ", "공개됩니다 ", "[1]. "] * 6 + ["끝", "."] * 2
ANSWER = "".join(ANSWER_DELTAS)


def load_fake_tgi() -> Any:
    """Return the FakeTGI and FakeReply classes from tests/conftest.py.

    The fake lives in the tests' conftest, which pytest loads as a plain module. The tests
    have no package (no __init__.py, --import-mode=importlib), so the script loads the file
    by its path rather than moving the fake or turning the tests into a package.
    """
    spec = importlib.util.spec_from_file_location("veraclaim_tests_conftest", CONFTEST)
    if spec is None or spec.loader is None:
        raise SystemExit(f"Could not load the fake TGI server from {CONFTEST}.")
    module = importlib.util.module_from_spec(spec)
    # dataclasses looks the module up by name while the file runs.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class EndlessReplies(list):
    """A reply queue for FakeTGI that gives the same reply to every chat request."""

    def __init__(self, reply: Any) -> None:
        super().__init__([reply])
        self._reply = reply

    def pop(self, index: int = -1) -> Any:
        return self._reply


def _tune_fake(fake: Any, sessions: int) -> None:
    """Make the fake serve like TGI or uvicorn under load.

    The standard library's server listens with a backlog of 5, so a burst of 32 new
    connections gets some of them reset. Calling listen() again raises the backlog.
    Without TCP_NODELAY, each token waits for the ACK of the one before, so 40 tokens take
    several hundred milliseconds instead of a few.
    """
    fake._server.socket.listen(max(128, 4 * sessions))
    handler = fake._server.RequestHandlerClass

    class NoDelayHandler(handler):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    fake._server.RequestHandlerClass = NoDelayHandler


@dataclass
class QuestionResult:
    tag: str
    session: int
    latency_s: float
    first_update_s: float | None
    error: str | None = None


@dataclass
class RunResult:
    results: list[QuestionResult] = field(default_factory=list)
    baseline_s: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[round(share * 100) - 1]


def _tag(session: int, number: int) -> str:
    # Digits in brackets: the keyword analyser drops them, so the tag leaves the relevance
    # floor's term coverage alone, while the prompt still carries it to the fake.
    return f"({session}-{number})"


def run_session(url: str, session: int, questions: int) -> list[QuestionResult]:
    """Ask `questions` questions in one conversation and time each one."""
    from gradio_client import Client

    results = []
    client = Client(url, verbose=False, analytics_enabled=False)
    conversation_id = ""
    try:
        for number in range(questions):
            tag = _tag(session, number)
            question = f"{QUESTIONS[(session + number) % len(QUESTIONS)]} {tag}"
            start = time.perf_counter()
            first_update = None
            try:
                job = client.submit(question, conversation_id, api_name="/ask")
                for _ in job:
                    if first_update is None:
                        first_update = time.perf_counter() - start
                answer, sources, conversation_id = job.result()
                latency = time.perf_counter() - start
                error = None
                if answer.strip() != ANSWER.strip():
                    error = f"unexpected answer {answer[:120]!r}"
                elif not sources:
                    error = "no sources"
            except Exception as exc:  # every failure counts, whatever its type
                latency = time.perf_counter() - start
                error = f"{type(exc).__name__}: {exc}"
            results.append(QuestionResult(tag, session, latency, first_update, error))
    finally:
        client.close()
    return results


def replay_direct(base_url: str, body: dict[str, Any]) -> float | str:
    """Send one recorded chat request straight to the fake and time it to the stream's end.

    Returns the seconds, or the error as text.
    """
    start = time.perf_counter()
    try:
        with httpx.Client(timeout=60) as client:
            with client.stream("POST", f"{base_url}/chat/completions", json=body) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    if line == "data: [DONE]":
                        break
    except httpx.HTTPError as exc:
        return f"baseline request failed: {type(exc).__name__}: {exc}"
    return time.perf_counter() - start


def _last_user_message(body: dict[str, Any]) -> str:
    users = [m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "user"]
    return users[-1] if users else ""


def run_once(args: argparse.Namespace, conftest: Any, run: int) -> RunResult:
    """Start the fake and the app, run the sessions, then measure the baseline."""
    from chat_ui.app import build_app
    from chat_ui.server import launch
    from chat_ui.service import ModelEndpoint, build_pipeline
    from chat_ui.settings import ChatSettings

    # 1. The fake model server: the same reply to every request, after a fixed pause.
    fake = conftest.FakeTGI()
    _tune_fake(fake, args.sessions)
    fake.replies = EndlessReplies(conftest.FakeReply(deltas=ANSWER_DELTAS, stall_s=args.model_delay_s))
    # Room for the prompt, so that the token budget never trims the context.
    fake.max_input_tokens, fake.max_total_tokens = 60_000, 65_536
    fake.start()

    # 2. The app, on a free port, with a fresh SQLite log.
    workdir = Path(tempfile.mkdtemp(prefix="bench-chat-load-"))
    settings = ChatSettings(
        index_dir=args.index_dir,
        log_database_url=f"sqlite:///{workdir / 'log.sqlite3'}",
        port=_free_port(),
        concurrency_limit=args.concurrency_limit,
        query_rewrite="rules",
        max_tokens=128,
        # The pipeline still computes each question's relevance, but a floor of 0 never
        # answers without the model. With the default floor, a question near it comes
        # back unanswered, since the tag shifts its similarity score a little.
        relevance_floor=0.0,
    )
    pipeline = build_pipeline(settings, ModelEndpoint(fake.base_url, fake.model_id, timeout_s=60))
    demo = build_app(pipeline, settings)
    launch(demo, settings, prevent_thread_lock=True)
    url = f"http://127.0.0.1:{settings.port}/"
    outcome = RunResult()

    try:
        # 3. One warm-up question loads the embedding model and fills caches; not counted.
        warm = run_session(url, session=99, questions=1)
        if warm[0].error:
            raise SystemExit(f"The warm-up question failed: {warm[0].error}")

        # 4. The load: every session in its own thread, all started together.
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.sessions) as pool:
            futures = [pool.submit(run_session, url, s, args.questions) for s in range(args.sessions)]
            for future in futures:
                outcome.results.extend(future.result())
        outcome.wall_s = time.perf_counter() - started

        # 5. The baseline: the recorded request of each question, straight to the fake.
        bodies = {}
        for request in fake.chat_requests():
            message = _last_user_message(request.body)
            for result in outcome.results:
                if result.tag in message:
                    bodies[result.tag] = request.body
        missing = [r.tag for r in outcome.results if r.tag not in bodies and r.error is None]
        for tag in missing:
            outcome.results.append(QuestionResult(tag, -1, 0.0, None, "no model request recorded"))
        with ThreadPoolExecutor(max_workers=args.sessions) as pool:
            timed = dict(pool.map(lambda item: (item[0], replay_direct(fake.base_url, item[1])), bodies.items()))
        for tag, value in timed.items():
            if isinstance(value, str):
                outcome.results.append(QuestionResult(tag, -1, 0.0, None, value))
            else:
                outcome.baseline_s[tag] = value
    finally:
        demo.close()
        pipeline.log.close()
        fake.stop()
    logging.getLogger(__name__).info("run %d done in %.1f s", run, outcome.wall_s)
    return outcome


def summarise(outcome: RunResult) -> dict[str, float]:
    ok = [r for r in outcome.results if r.error is None and r.tag in outcome.baseline_s]
    app = [r.latency_s for r in ok]
    base = [outcome.baseline_s[r.tag] for r in ok]
    added = [r.latency_s - outcome.baseline_s[r.tag] for r in ok]
    first = [r.first_update_s for r in ok if r.first_update_s is not None]
    return {
        "questions": len(outcome.results),
        "errors": sum(1 for r in outcome.results if r.error),
        "app_p50_ms": _percentile(app, 0.5) * 1000,
        "app_p95_ms": _percentile(app, 0.95) * 1000,
        "baseline_p50_ms": _percentile(base, 0.5) * 1000,
        "baseline_p95_ms": _percentile(base, 0.95) * 1000,
        "added_p50_ms": _percentile(added, 0.5) * 1000,
        "added_p95_ms": _percentile(added, 0.95) * 1000,
        "ratio_p50": _percentile(app, 0.5) / _percentile(base, 0.5),
        "first_update_p50_ms": _percentile(first, 0.5) * 1000 if first else float("nan"),
        "questions_per_s": len(ok) / outcome.wall_s if outcome.wall_s else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, default=Path("var/index"), help="Index folder to answer from.")
    parser.add_argument("--sessions", type=int, default=32, help="Concurrent chat sessions.")
    parser.add_argument("--questions", type=int, default=4, help="Questions per session, asked in turn.")
    parser.add_argument(
        "--concurrency-limit", type=int, default=32, help="ChatSettings.concurrency_limit of the app (2 to 256)."
    )
    parser.add_argument(
        "--model-delay-s", type=float, default=0.5, help="Seconds the fake model pauses before ending each answer."
    )
    parser.add_argument("--runs", type=int, default=3, help="Runs; the summary gives the median of each figure.")
    parser.add_argument("--json", type=Path, help="Also write every run's figures to this JSON file.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    if not args.index_dir.is_dir():
        parser.error(f"{args.index_dir} is not a folder; build an index with `veraclaim-index build data/samples`.")
    conftest = load_fake_tgi()

    summaries, failures = [], []
    for run in range(1, args.runs + 1):
        outcome = run_once(args, conftest, run)
        summary = summarise(outcome)
        summaries.append(summary)
        failures += [f"run {run} {r.tag}: {r.error}" for r in outcome.results if r.error]
        print(f"run {run}: " + ", ".join(f"{key} {value:.1f}" for key, value in summary.items()), flush=True)

    medians = {key: statistics.median(s[key] for s in summaries) for key in summaries[0]}
    print(
        f"\n{args.sessions} sessions x {args.questions} questions, concurrency limit "
        f"{args.concurrency_limit}, fake model pause {args.model_delay_s:g} s, {args.runs} runs; "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print("median over runs: " + ", ".join(f"{key} {value:.1f}" for key, value in medians.items()))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": summaries}, indent=2))

    if failures:
        print(f"\n{len(failures)} failed questions:", *failures[:20], sep="\n", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
