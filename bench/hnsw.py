"""When does approximate search pay? Exact flat search vs a half-precision scan (fp16), an inverted
file over half-precision copies (IVF, as store.py builds it) and HNSW: single-query latency and
recall@10 against exact.

    .venv/bin/python bench/hnsw.py            # ~3 min: embeds 20,000 synthetic questions once

Vectors: 20,000 real all-MiniLM-L6-v2 embeddings of distinct synthetic questions (bench/run.py's
generator); larger sizes add copies of them with small Gaussian noise (stated in the output). Queries:
the labelled queries, embedded with the same model. One thread, as the query path runs.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import queries, synthetic_corpus  # noqa: E402


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import faiss

    from indexer.retrieval.embed import SentenceTransformerEncoder
    from indexer.stores.vectors import vector_index

    encoder = SentenceTransformerEncoder(threads=os.cpu_count())
    cache = ROOT / "bench" / "out" / "hnsw_vectors.npy"
    if cache.exists():
        real = np.load(cache)
    else:
        texts = [
            line[2:].split("**")[0].split(". ", 1)[1]
            for line in synthetic_corpus(20000, seed=11).split("\n")
            if line.startswith("**")
        ]
        texts = [f"{t} (case {i})" for i, t in enumerate(texts)]  # distinct texts
        real = encoder.encode(texts)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, real)
    query_vectors = encoder.encode(queries())
    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    print(
        "| vectors | data | flat p50 ms | fp16 p50 ms | fp16 recall@10 | IVF p50 ms | IVF recall@10 | HNSW p50 ms "
        "| HNSW recall@10 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for size in (20_000, 50_000, 100_000, 200_000):
        vectors = real[np.arange(size) % len(real)] + (np.arange(size) >= len(real))[:, None] * rng.normal(
            0, 0.03, (size, real.shape[1])
        )
        vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
        flat = faiss.IndexFlatIP(vectors.shape[1])
        flat.add(vectors)
        hnsw = vector_index(vectors, "hnsw", vectors.shape[1])
        fp16 = vector_index(vectors, "fp16", vectors.shape[1])
        ivf = vector_index(vectors, "ivf", vectors.shape[1])
        timings = {}
        results = {}
        for name, index in (("flat", flat), ("fp16", fp16), ("ivf", ivf), ("hnsw", hnsw)):
            runs = []
            found = []
            for q in query_vectors:
                started = time.perf_counter()
                _, ids = index.search(q[None, :], 10)
                runs.append(time.perf_counter() - started)
                found.append(set(ids[0].tolist()))
            timings[name] = 1000 * float(np.median(runs))
            results[name] = found
        recall = {
            name: np.mean([len(h & f) / 10 for h, f in zip(results[name], results["flat"])])
            for name in ("fp16", "ivf", "hnsw")
        }
        data = "real" if size <= len(real) else f"{len(real):,} real + noisy copies"
        print(
            f"| {size:,} | {data} | {timings['flat']:.2f} | {timings['fp16']:.2f} | {recall['fp16']:.3f} | "
            f"{timings['ivf']:.2f} | {recall['ivf']:.3f} | {timings['hnsw']:.3f} | {recall['hnsw']:.3f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
