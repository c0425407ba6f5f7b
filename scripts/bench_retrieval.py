#!/usr/bin/env python3
"""Benchmark retrieval: recall of the three search modes, search latency at 100,000 chunks, query embedding.

Usage:
  python scripts/bench_retrieval.py [--index DIR] [--golden FILE] [--chunks 100000] [--scaled-index DIR]
                                    [--runs 5] [--threads N] [--json FILE]
  python scripts/bench_retrieval.py recall|latency|embed [same options]

- recall: the golden set (data/eval/golden.jsonl) on the sample index, dense, keyword and
  hybrid, over all questions and over the Korean ones (every kind but "english"). Search is
  deterministic, so one run gives the numbers.
- latency: an index of ``--chunks`` chunks made from the sample index (see scale_chunks),
  opened with open_index. Each run searches every golden query once per mode with k=5 and
  reports p50 and p95. Query embedding is excluded: the queries are embedded before the
  clock starts and the reader's embedder is replaced by a lookup of those vectors, so
  dense and hybrid time the FAISS search, BM25 and the fusion only.
- embed: the time of Embedder.embed_query alone for every golden query, p50 per run,
  interleaved with SentenceTransformer.encode (the torch path) and ONNX Runtime on two
  threads, with each path's ratio to the torch path of the same run.

Without --index the sample index is built from data/samples first (a few minutes on 2 cores).
The tables give the median over ``--runs`` runs of each run's percentile.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from index_builder.evaluate import KINDS, evaluate, load_golden  # noqa: E402
from index_builder.reader import SEARCH_MODES, IndexReader, open_index  # noqa: E402
from index_builder.store import CHUNKS_FILE, INDEX_FILE, Chunk, VersionWriter, iter_chunks  # noqa: E402
from index_builder.versions import served_dir  # noqa: E402

SAMPLES = REPOSITORY / "data" / "samples"
GOLDEN = REPOSITORY / "data" / "eval" / "golden.jsonl"
TOP_K = 5
# Noise added to each replica's vector before it is normalised again: a standard deviation
# of 0.5 per unit length gives a cosine of about 0.9 to the original vector.
VECTOR_NOISE = 0.5
# Share of words each replica drops, and adjacent word pairs it swaps per 100 words, so the
# replicas are not identical BM25 documents.
DROP_WORDS = 0.1
SWAPS_PER_100_WORDS = 5
SEED = 20261204

# The targets of docs/benchmarks.md: (measure, target, whether higher is better).
TARGETS = (
    ("hybrid recall@5", 0.90, True),
    ("hybrid - dense recall@5, Korean questions", 0.20, True),
    ("hybrid retrieval p50 ms at 100k chunks", 20.0, False),
    ("query embedding p50 ms", 15.0, False),
)


def machine() -> dict[str, object]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(memory, 1),
        "python": platform.python_version(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def percentile(values: Sequence[float], share: float) -> float:
    """Return the ``share`` percentile of ``values`` by linear interpolation (numpy's default)."""
    return float(np.percentile(np.asarray(values), share * 100))


def sample_index(index: Path | None) -> Path:
    if index is not None:
        return index
    from index_builder.build import build_index

    out = Path(tempfile.mkdtemp(prefix="veraclaim-bench-samples-")) / "index"
    print(f"Building the sample index into {out} ...", file=sys.stderr)
    build_index(str(SAMPLES), out, progress=False)
    return out


def bench_recall(reader: IndexReader, golden: Path) -> dict[str, object]:
    items = load_golden(golden)
    result = evaluate(reader, items, golden=str(golden))
    korean = [kind for kind in KINDS if kind != "english"]
    table = {}
    for mode, mode_result in result.modes.items():
        table[mode] = {
            "all": mode_result.scores.to_dict(),
            "korean": mode_result.scores_where(korean).to_dict(),
        }
    return {"questions": len(items), "korean_questions": table["hybrid"]["korean"]["questions"], "modes": table}


def scale_chunks(folder: Path, target: int) -> tuple[list[Chunk], np.ndarray]:
    """Return ``target`` chunks and vectors made from the version folder ``folder``.

    The first copy is the real chunks with their stored vectors. Every further copy of a
    chunk drops DROP_WORDS of its words at random, swaps a few adjacent words, names the
    file ``rNNN_<file>``, and stores the original vector plus Gaussian noise, normalised.
    """
    import faiss

    base = list(iter_chunks(folder / CHUNKS_FILE))
    index = faiss.read_index(str(folder / INDEX_FILE))
    vectors = np.vstack([index.reconstruct(chunk.chunk_id) for chunk in base]).astype(np.float32)
    generator = np.random.default_rng(SEED)
    shuffler = random.Random(SEED)

    chunks: list[Chunk] = []
    rows: list[np.ndarray] = []
    replica = 0
    while len(chunks) < target:
        for chunk, vector in zip(base, vectors, strict=True):
            if len(chunks) == target:
                break
            if replica == 0:
                text, row, name = chunk.text, vector, chunk.file_name
            else:
                text = vary_text(chunk.text, shuffler)
                noisy = vector + generator.normal(0.0, VECTOR_NOISE / np.sqrt(vector.size), vector.size)
                row = (noisy / np.linalg.norm(noisy)).astype(np.float32)
                name = f"r{replica:03d}_{chunk.file_name}"
            chunks.append(
                Chunk(
                    chunk_id=len(chunks),
                    text=text,
                    source_uri=f"file:///bench/{name}",
                    file_name=name,
                    page=chunk.page,
                    chunk_no=chunk.chunk_no,
                )
            )
            rows.append(row)
        replica += 1
    return chunks, np.vstack(rows)


def vary_text(text: str, shuffler: random.Random) -> str:
    words = [word for word in text.split() if shuffler.random() >= DROP_WORDS] or text.split()
    for _ in range(max(1, len(words) * SWAPS_PER_100_WORDS // 100)):
        if len(words) > 1:
            position = shuffler.randrange(len(words) - 1)
            words[position], words[position + 1] = words[position + 1], words[position]
    return " ".join(words)


class PrecomputedQueries:
    """Stands in for the reader's Embedder with vectors embedded before timing, so latency excludes embedding."""

    def __init__(self, embedder, queries: Sequence[str]) -> None:
        self._embedder = embedder
        self._vectors = {query: embedder.embed_query(query) for query in queries}
        self.dimension = embedder.dimension

    def embed_query(self, text: str) -> np.ndarray:
        return self._vectors[text]

    def __getattr__(self, name: str):
        return getattr(self._embedder, name)


def bench_latency(
    folder: Path, golden: Path, target: int, runs: int, model: str, scaled: Path | None
) -> dict[str, object]:
    queries = [item.search_query for item in load_golden(golden)]

    # 1. The scaled index, written and opened by the real store and reader. A folder that
    #    an earlier run wrote is reused, which saves the minutes of BM25 indexing.
    started = time.perf_counter()
    out = scaled or Path(tempfile.mkdtemp(prefix="veraclaim-bench-100k-")) / "version"
    if not (out / "manifest.json").is_file():
        chunks, vectors = scale_chunks(folder, target)
        writer = VersionWriter(out, vectors.shape[1])
        writer.add(chunks, vectors)
        writer.finish(embedding_model=model, documents=[])
    build_seconds = time.perf_counter() - started
    reader = open_index(out)
    print(f"Scaled index: {reader.chunk_count} chunks in {out} ({build_seconds:.0f} s)", file=sys.stderr)

    # 2. Query vectors computed now, outside the clock. IndexReader keeps its embedder in
    #    _embedder; the benchmark replaces it because no public hook skips embedding.
    reader._embedder = PrecomputedQueries(reader._embedder, queries)
    for query in queries[:10]:
        for mode in SEARCH_MODES:
            reader.search(query, k=TOP_K, mode=mode)

    # 3. Every query in every mode, interleaved, so load bursts hit all modes alike.
    per_run: dict[str, list[dict[str, float]]] = {mode: [] for mode in SEARCH_MODES}
    for _ in range(runs):
        timings: dict[str, list[float]] = {mode: [] for mode in SEARCH_MODES}
        for query in queries:
            for mode in SEARCH_MODES:
                began = time.perf_counter()
                reader.search(query, k=TOP_K, mode=mode)
                timings[mode].append((time.perf_counter() - began) * 1000)
        for mode in SEARCH_MODES:
            per_run[mode].append({"p50": percentile(timings[mode], 0.5), "p95": percentile(timings[mode], 0.95)})
    return {
        "chunks": reader.chunk_count,
        "queries": len(queries),
        "build_seconds": round(build_seconds, 1),
        "modes": {mode: summarize(per_run[mode]) for mode in SEARCH_MODES},
    }


def bench_embed(reader: IndexReader, golden: Path, runs: int) -> dict[str, object]:
    """Time query embedding on each path, interleaved per query, so load bursts hit all paths alike.

    - torch: SentenceTransformer.encode of the normalised query, the path before ONNX Runtime.
    - embed_query: Embedder.embed_query, on ONNX Runtime with QUERY_THREADS threads.
    - onnxruntime, 2 threads: the same exported model with two intra-op threads.
    """
    from index_builder.embed import QUERY_THREADS, load_embedder
    from index_builder.normalize import normalize_text
    from index_builder.onnx_query import build_query_encoder

    embedder = load_embedder(reader.embedding_model)
    embedder.prepare_queries()
    two_threads = build_query_encoder(embedder._model, threads=2)
    paths: dict[str, Callable[[str], object]] = {
        "torch": lambda query: embedder.embed([normalize_text(query)])[0],
        f"embed_query ({embedder.query_backend}, {QUERY_THREADS} thread)": embedder.embed_query,
        "onnxruntime, 2 threads": lambda query: two_threads.encode(normalize_text(query)),
    }
    queries = [item.search_query for item in load_golden(golden)]
    for query in queries[:10]:
        for embed in paths.values():
            embed(query)

    per_run: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
    for _ in range(runs):
        timings: dict[str, list[float]] = {name: [] for name in paths}
        for query in queries:
            for name, embed in paths.items():
                began = time.perf_counter()
                embed(query)
                timings[name].append((time.perf_counter() - began) * 1000)
        for name in paths:
            per_run[name].append({"p50": percentile(timings[name], 0.5), "p95": percentile(timings[name], 0.95)})
    summaries = {name: summarize(per_run[name]) for name in paths}
    baseline = [run["p50"] for run in per_run["torch"]]
    for name, summary in summaries.items():
        # The ratio of each run's p50 to the torch p50 of the same run, then the median.
        ratios = [run["p50"] / base for run, base in zip(per_run[name], baseline, strict=True)]
        summary["ratio_to_torch"] = round(statistics.median(ratios), 3)
    default_path = next(name for name in paths if name.startswith("embed_query"))
    return {"queries": len(queries), "default": default_path, "paths": summaries, **summaries[default_path]}


def summarize(per_run: list[dict[str, float]]) -> dict[str, object]:
    return {
        "p50_ms": round(statistics.median(run["p50"] for run in per_run), 2),
        "p95_ms": round(statistics.median(run["p95"] for run in per_run), 2),
        "runs_p50_ms": [round(run["p50"], 2) for run in per_run],
        "runs_p95_ms": [round(run["p95"], 2) for run in per_run],
    }


def print_report(results: dict[str, object]) -> None:
    print(f"Machine: {results['machine']}, threads: {results['threads']}")
    if "recall" in results:
        recall = results["recall"]
        print(f"\nRecall on {recall['questions']} questions ({recall['korean_questions']} Korean)")
        print(f"{'mode':<8} {'r@1':>6} {'r@5':>6} {'r@10':>6} {'MRR':>6} | Korean: {'r@5':>6} {'MRR':>6}")
        for mode, scores in recall["modes"].items():
            every, korean = scores["all"], scores["korean"]
            print(
                f"{mode:<8} {every['recall@1']:>6.3f} {every['recall@5']:>6.3f} {every['recall@10']:>6.3f} "
                f"{every['mrr']:>6.3f} |         {korean['recall@5']:>6.3f} {korean['mrr']:>6.3f}"
            )
    if "latency" in results:
        latency = results["latency"]
        print(f"\nSearch latency, k={TOP_K}, {latency['chunks']} chunks, query embedding excluded")
        for mode, numbers in latency["modes"].items():
            print(f"{mode:<8} p50 {numbers['p50_ms']:>7.2f} ms  p95 {numbers['p95_ms']:>7.2f} ms  runs p50 {numbers['runs_p50_ms']}")
    if "embed" in results:
        print(f"\nQuery embedding, {results['embed']['queries']} queries")
        for name, numbers in results["embed"]["paths"].items():
            print(
                f"{name:<36} p50 {numbers['p50_ms']:>6.2f} ms  p95 {numbers['p95_ms']:>6.2f} ms  "
                f"p50 / torch {numbers['ratio_to_torch']:.3f}  runs p50 {numbers['runs_p50_ms']}"
            )


def measured_targets(results: dict[str, object]) -> list[tuple[str, float, float, bool]]:
    """Return (measure, value, target, met) for each target that ``results`` measured."""
    values: dict[str, float] = {}
    if "recall" in results:
        modes = results["recall"]["modes"]
        values["hybrid recall@5"] = modes["hybrid"]["all"]["recall@5"]
        values["hybrid - dense recall@5, Korean questions"] = (
            modes["hybrid"]["korean"]["recall@5"] - modes["dense"]["korean"]["recall@5"]
        )
    if "latency" in results:
        values["hybrid retrieval p50 ms at 100k chunks"] = results["latency"]["modes"]["hybrid"]["p50_ms"]
    if "embed" in results:
        values["query embedding p50 ms"] = results["embed"]["p50_ms"]
    return [
        (name, values[name], target, values[name] >= target if higher else values[name] <= target)
        for name, target, higher in TARGETS
        if name in values
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("part", nargs="?", choices=("all", "recall", "latency", "embed"), default="all")
    parser.add_argument("--index", type=Path, help="Sample index to reuse instead of building one.")
    parser.add_argument("--golden", type=Path, default=GOLDEN, help="Golden set (JSON Lines).")
    parser.add_argument("--chunks", type=int, default=100_000, help="Chunks of the scaled index for latency.")
    parser.add_argument(
        "--scaled-index",
        type=Path,
        help="Folder of the scaled index: reused if it contains one, else written there (default: a new temporary folder).",
    )
    parser.add_argument("--runs", type=int, default=5, help="Runs of the latency and embedding measurements.")
    parser.add_argument("--json", type=Path, help="Also write the results to this JSON file.")
    parser.add_argument(
        "--threads",
        type=int,
        help="Threads for torch and FAISS (OpenMP). Default: the libraries' own, one per core.",
    )
    arguments = parser.parse_args(argv)
    if arguments.threads:
        import faiss
        import torch

        torch.set_num_threads(arguments.threads)
        faiss.omp_set_num_threads(arguments.threads)

    results: dict[str, object] = {"machine": machine(), "threads": arguments.threads or "default"}
    reader = open_index(sample_index(arguments.index))
    steps: list[tuple[str, Callable[[], object]]] = [
        ("recall", lambda: bench_recall(reader, arguments.golden)),
        ("embed", lambda: bench_embed(reader, arguments.golden, arguments.runs)),
        (
            "latency",
            lambda: bench_latency(
                served_dir(reader.path),
                arguments.golden,
                arguments.chunks,
                arguments.runs,
                reader.embedding_model,
                arguments.scaled_index,
            ),
        ),
    ]
    for name, step in steps:
        if arguments.part in ("all", name):
            results[name] = step()
    results["machine"]["load_average_end"] = [round(value, 2) for value in os.getloadavg()]  # type: ignore[index]

    results["targets"] = [
        {"measure": name, "value": round(value, 3), "target": target, "met": met}
        for name, value, target, met in measured_targets(results)
    ]
    print_report(results)
    print()
    for target in results["targets"]:
        print(f"{target['measure']}: {target['value']} (target {target['target']}): {'met' if target['met'] else 'MISSED'}")
    if arguments.json:
        arguments.json.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
