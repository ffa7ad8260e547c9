"""Speed of the PostgreSQL store against the FAISS store, exact and HNSW, on synthetic indexes.

    python bench/pgstore.py                          # 10k and 100k entries, a throwaway pgserver
    python bench/pgstore.py --sizes 2000 --queries 50 --url postgresql://me@localhost/bench

Each entry has a question and an answer row, so N entries are 2N rows of 384-d vectors. Vectors are
synthetic (seeded), not model output, but clustered like sentence embeddings (see `synthetic`), so
HNSW recall means something; build times are store writes only (no embedding, which costs the same
for both stores). Queries are paraphrase-like: stored questions moved to cosine ≈0.9. A query runs the real
dense search path (`candidate_positions` then `score_entries`, k=5): below search.py's exhaustive
threshold (20k rows) that scores every entry, above it the store's nearest rows are the candidates.
`nearest` times the store's nearest-rows call alone (depth 20), where exact and HNSW differ.
`recall@5` compares the top 5 entries with the exact FAISS ranking; the sweep's `recall@20`
compares HNSW's nearest rows with exact ones.

Prints a markdown table per size, then the threshold sweep: PostgreSQL nearest-rows latency, exact
against HNSW, by row count. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexer.documents.records import Record  # noqa: E402
from indexer.retrieval import search  # noqa: E402
from indexer.retrieval.lexical import LexicalIndex  # noqa: E402
from indexer.stores.disk import FaissStore, RowTable  # noqa: E402
from indexer.stores.postgres import PgStore  # noqa: E402

DIMENSION = 384
K = 5


def synthetic(entries: int, seed: int = 0) -> tuple[list[Record], RowTable, np.ndarray, dict]:
    """Clustered unit vectors shaped like sentence embeddings: questions in clusters of ~10 (cosine
    ≈0.6 between mates, ≈0 between clusters), each answer near its question (cosine ≈0.8)."""
    rng = np.random.default_rng(seed)
    centers = unit(rng.standard_normal((max(1, entries // 10), DIMENSION), dtype=np.float32))
    questions = unit(centers[rng.integers(0, len(centers), entries)] + 0.8 * noise(rng, entries))
    answers = unit(questions + 0.7 * noise(rng, entries))
    vectors = np.vstack([questions, answers])
    records = [Record(i + 1, f"question {i}", f"answer {i}", "ok", i + 1) for i in range(entries)]
    positions = np.concatenate([np.arange(entries), np.arange(entries)]).astype(np.int32)
    fields = ["question"] * entries + ["answer"] * entries
    rows = RowTable(positions, fields, [f"k{i}" for i in range(2 * entries)])
    manifest = {
        "model": "random",
        "model_fingerprint": "random",
        "dimension": DIMENSION,
        "record_count": entries,
        "question_vectors": entries,
        "answer_vectors": entries,
    }
    return records, rows, vectors, manifest


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def noise(rng: np.random.Generator, count: int) -> np.ndarray:
    return rng.standard_normal((count, DIMENSION), dtype=np.float32) / np.sqrt(DIMENSION)  # norm ≈ 1


def queries(vectors: np.ndarray, count: int, seed: int = 1) -> np.ndarray:
    """Paraphrase-like queries: a stored question moved to cosine ≈0.9 from where it was."""
    rng = np.random.default_rng(seed)
    picked = vectors[rng.choice(len(vectors) // 2, count, replace=False)]
    return unit(picked + 0.5 * noise(rng, count))


def percentiles(seconds: list[float]) -> tuple[float, float]:
    return float(np.percentile(seconds, 50) * 1000), float(np.percentile(seconds, 95) * 1000)


def top_ids(index, query: np.ndarray, k: int = K) -> list:
    """Ids of the top k entries through the dense search path."""
    q = query[None, :]
    hits = search.score_entries(index, q, search.candidate_positions(index, q, k), mode="dense")
    return [h.record.id for h in hits[:k]]


def measure(store, data, query_vectors: np.ndarray, reference: list[list] | None) -> dict:
    records, rows, vectors, manifest = data
    started = time.perf_counter()
    with store.lock():
        store.write(records, rows, vectors, manifest, LexicalIndex.from_records(records))
    build = time.perf_counter() - started
    started = time.perf_counter()
    index = store.load()
    load = time.perf_counter() - started
    for q in query_vectors[:5]:  # warm up: caches, prepared statements
        top_ids(index, q)
    answers, times, nearest = [], [], []
    for q in query_vectors:
        started = time.perf_counter()
        answers.append(top_ids(index, q))
        times.append(time.perf_counter() - started)
        started = time.perf_counter()
        index.nearest_positions(q[None, :], 2 * K + 10)
        nearest.append(time.perf_counter() - started)
    recall = (
        None if reference is None else float(np.mean([len(set(a) & set(r)) / K for a, r in zip(answers, reference)]))
    )
    if hasattr(index, "close"):
        index.close()
    return {
        "build": build,
        "load": load,
        "query": percentiles(times),
        "nearest": percentiles(nearest),
        "recall": recall,
        "answers": answers,
        "index_type": index.manifest["index_type"],
    }


def table(entries: int, results: dict[str, dict]) -> str:
    lines = [
        f"#### {entries:,} entries ({2 * entries:,} rows)",
        "",
        "| store | index | build s | load s | query p50 ms | query p95 ms | nearest p50 ms | nearest p95 ms "
        "| recall@5 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        recall = "-" if r["recall"] is None else f"{r['recall']:.3f}"
        lines.append(
            f"| {name.split()[0]} | {r['index_type']} | {r['build']:.1f} | {r['load']:.2f} | "
            f"{r['query'][0]:.1f} | {r['query'][1]:.1f} | {r['nearest'][0]:.2f} | {r['nearest'][1]:.2f} | "
            f"{recall} |"
        )
    return "\n".join(lines)


def run_size(url: str, entries: int, query_count: int, work: Path) -> dict[str, dict]:
    data = synthetic(entries)
    query_vectors = queries(data[2], query_count)
    results: dict[str, dict] = {}
    flat_data = (*data[:3], {**data[3], "index_type": "flat"})
    hnsw_data = (*data[:3], {**data[3], "index_type": "hnsw"})
    results["faiss flat"] = measure(FaissStore(work / f"faiss-flat-{entries}"), flat_data, query_vectors, None)
    reference = results["faiss flat"]["answers"]
    results["faiss hnsw"] = measure(FaissStore(work / f"faiss-hnsw-{entries}"), hnsw_data, query_vectors, reference)
    results["postgresql exact"] = measure(
        PgStore(url, f"bench-exact-{entries}", hnsw_min_rows=10**12), flat_data, query_vectors, reference
    )
    results["postgresql hnsw"] = measure(
        PgStore(url, f"bench-hnsw-{entries}", hnsw_min_rows=0), flat_data, query_vectors, reference
    )
    results["faiss flat"]["recall"] = 1.0
    return results


def sweep(url: str, row_counts: list[int], query_count: int) -> str:
    """PostgreSQL nearest-rows latency (depth 20), exact against HNSW, by row count."""
    lines = [
        "| rows | exact p50 ms | exact p95 ms | hnsw p50 ms | hnsw p95 ms | hnsw recall@20 | exact build s "
        "| hnsw build s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    depth = 2 * K + 10
    for rows in row_counts:
        data = synthetic(rows // 2, seed=rows)
        query_vectors = queries(data[2], query_count)
        found, times, builds = {}, {}, {}
        for name, threshold in (("exact", 10**12), ("hnsw", 0)):
            store = PgStore(url, f"sweep-{name}-{rows}", hnsw_min_rows=threshold)
            started = time.perf_counter()
            with store.lock():
                store.write(*data, LexicalIndex.from_records(data[0]))
            builds[name] = time.perf_counter() - started
            index = store.load()
            for q in query_vectors[:5]:
                index.nearest_positions(q[None, :], depth)
            found[name], times[name] = [], []
            for q in query_vectors:
                started = time.perf_counter()
                found[name].append(set(index.nearest_positions(q[None, :], depth).tolist()))
                times[name].append(time.perf_counter() - started)
            index.close()
        recall = np.mean([len(h & e) / len(e) for h, e in zip(found["hnsw"], found["exact"])])
        (e50, e95), (h50, h95) = percentiles(times["exact"]), percentiles(times["hnsw"])
        lines.append(
            f"| {rows:,} | {e50:.2f} | {e95:.2f} | {h50:.2f} | {h95:.2f} | {recall:.3f} | "
            f"{builds['exact']:.1f} | {builds['hnsw']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="entries per index")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--sweep",
        type=int,
        nargs="*",
        default=[2_000, 5_000, 10_000, 20_000, 50_000, 100_000],
        help="row counts for the exact-vs-HNSW sweep (none to skip)",
    )
    parser.add_argument("--url", help="an existing PostgreSQL with pgvector (default: start pgserver in a temp folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = None
        if args.url is None:
            import pgserver

            server = pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        url = args.url or server.get_uri()
        try:
            print(
                f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores, "
                f"{args.queries} queries, k={K}\n"
            )
            for entries in args.sizes:
                print(table(entries, run_size(url, entries, args.queries, Path(tmp))), "\n", flush=True)
            if args.sweep:
                print("#### PostgreSQL nearest rows (depth 20): exact vs HNSW\n")
                print(sweep(url, args.sweep, args.queries), flush=True)
        finally:
            if server is not None:
                server.cleanup()


if __name__ == "__main__":
    main()
