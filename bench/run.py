"""Speed benchmark: build throughput, warm and cold query latency, memory and disk, against raw floors.

    .venv/bin/python bench/run.py    # sizes 82, 10000, 100000 (~20 min; docs/benchmarks.md used --embed-limit 2000)
    .venv/bin/python bench/run.py --sizes 82,2000      # quicker
    .venv/bin/python bench/run.py --rebuild-only        # only the one-edit rebuild column (minutes, not 20)

Every timing is reported next to a floor measured in the same run on the same texts, and as a
ratio to it, because this machine is noisy (builds and their floor: best of two, run alternately):
- build floor: sentence-transformers `encode` of exactly the texts the build embeds (all cores);
- query floor: torch encode of one query (1 thread) + exact FAISS flat search, per query;
- batch floor: torch encoding the same queries in batches of 64 on every core + one exact FAISS flat
  search of them all, against `search_many` (what `search --batch` runs; best of three, alternately);
- cold search: over a cold `python -c "import sentence_transformers"` (median of 3 each).
Also measured: `missing --json` in a fresh process (median of 3, peak RSS), the recall@3 of the hints it
lists against brute force, and a one-entry edit's rebuild. The tables and their reading are in
docs/benchmarks.md.
Corpora are synthetic, deterministic, in the bundled document's format (bold numbered questions,
`*solution*` markers, answers of realistic lengths, ~10 % empty). Sizes above --embed-limit are not
embedded in full (an hour at 100k): their first --embed-limit entries are, and the rest reuse those
vectors with small noise; build time there is extrapolated from the measured throughput, and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"
TOPICS = (
    "gradient descent",
    "dropout",
    "batch normalization",
    "decision trees",
    "random forests",
    "k-means",
    "overfitting",
    "cross-validation",
    "precision and recall",
    "word embeddings",
    "convolutions",
    "recurrent networks",
    "attention",
    "regularization",
    "feature scaling",
    "PCA",
    "SVMs",
    "boosting",
    "learning rate schedules",
    "data augmentation",
    "transfer learning",
    "autoencoders",
    "GANs",
    "ROC curves",
)
TEMPLATES = (
    "What is {t}?",
    "How does {t} work in practice?",
    "Why would you use {t} for a {d} problem?",
    "Explain the main idea behind {t}.",
    "What are the pitfalls of {t} with {d} data?",
    "Compare {t} and {u}.",
    "When does {t} fail, and what do you do then?",
)
DOMAINS = ("tabular", "image", "text", "time series", "audio", "graph", "small", "imbalanced", "noisy")
SENTENCES = (
    "It changes how the model learns from the training data.",
    "In practice you tune it on a validation set and watch the loss curve.",
    "A common mistake is to apply it before splitting the data, which leaks information.",
    "The idea is to trade a little bias for a large reduction in variance.",
    "With small batches the estimate is noisy, which can help escape sharp minima.",
    "It is cheap to compute and scales linearly with the number of samples.",
    "For images it is usually combined with convolutional layers and pooling.",
    "The result depends strongly on how the features are scaled beforehand.",
    "You can see its effect by plotting training and validation error against epochs.",
)


def synthetic_corpus(size: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    parts = ["Synthetic interview questions\n=============================\n"]
    for n in range(1, size + 1):
        topic, other = rng.sample(TOPICS, 2)
        question = rng.choice(TEMPLATES).format(t=topic, u=other, d=rng.choice(DOMAINS))
        marker = rng.choice(["*solution*", "*Solution:*", "*Solution*"])
        if rng.random() < 0.1:
            answer = ""
        else:  # 1–12 sentences: ~60 to ~900 characters, like the bundled document
            answer = " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(1, 12)))
            answer = f"{topic.capitalize()} ({n}): {answer}"
        parts.append(f"**{n}. {question}**\n\n{marker}\n\n{answer}\n\n")
    return "".join(parts)


def noisy_copies(sample, rows: int, noise: float = 0.02, chunk: int = 100_000):
    """`rows` unit float32 vectors: the sample's vectors in turn, each with Gaussian noise, made by chunks
    (a million entries' float64 noise at once would take 6 GB)."""
    rng = np.random.default_rng(0)
    vectors = np.empty((rows, sample.shape[1]), dtype=np.float32)
    for start in range(0, rows, chunk):
        part = sample[np.arange(start, min(rows, start + chunk)) % len(sample)]
        part = part + rng.standard_normal(part.shape, dtype=np.float32) * noise
        vectors[start : start + len(part)] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return vectors


def synthetic_index(source: Path, index_dir: Path, build_encoder, sample: int = 2000) -> dict:
    """Writes the index of `source` without embedding it all (an hour at 100k): its first `sample` texts
    are embedded (timed against the raw encode, for the extrapolated build figures) and every other
    row reuses one of those vectors with small noise. Returns the build figures."""
    from indexer.documents.incremental import ParseMap, parse_corpus_again
    from indexer.indexing.build import IVF_MIN_ROWS, _manifest, embedding_texts
    from indexer.retrieval.embed import model_fingerprint, text_key
    from indexer.retrieval.lexical import LexicalIndex
    from indexer.retrieval.nomatch import DEFAULT_NO_MATCH
    from indexer.stores.disk import FaissStore, RowTable

    (parsed,) = parse_corpus_again([source], lambda: None, {})  # the records, and the map a build keeps
    records = list(parsed.report.records)
    positions, fields, texts = embedding_texts(records)
    sample = min(len(texts), sample)
    (measured, sample_vectors), (floor, _) = best_of_alternating(
        lambda: build_encoder.encode(texts[:sample]),
        lambda: build_encoder._model.encode(
            texts[:sample], batch_size=32, normalize_embeddings=True, show_progress_bar=False
        ),
    )
    scale = len(texts) / sample
    vectors = noisy_copies(sample_vectors, len(texts))
    fp = model_fingerprint("all-MiniLM-L6-v2")
    index_type = "ivf" if len(texts) >= IVF_MIN_ROWS else "flat"
    manifest = _manifest(
        records, [source], "all-MiniLM-L6-v2", fp, 384, fields, index_type, 0.0, len(texts), DEFAULT_NO_MATCH.to_dict()
    )
    store = FaissStore(index_dir)
    with store.lock():
        store.write(
            records,
            RowTable(np.asarray(positions, dtype=np.int32), fields, [text_key(fp, t) for t in texts]),
            vectors,
            manifest,
            LexicalIndex.from_records(records),
            parse_map=ParseMap([parsed.map], [0]) if parsed.map is not None else None,
        )
    return dict(
        texts=len(texts),
        build_s=measured * scale,
        floor_build_s=floor * scale,
        build_rss_mb=float("nan"),
        note=f"build extrapolated from {sample} texts; vectors = real ones + noise",
    )


# Runs `python -m indexer ARGS` and reports the process's own peak RSS (KiB) on its last stderr line.
# VmHWM, not ru_maxrss: the latter counts the pages a forked child shared with this (big) process.
_RSS_WRAPPER = (
    "import re, runpy, sys\nsys.argv = ['indexer'] + sys.argv[1:]\ntry:\n"
    "    runpy.run_module('indexer', run_name='__main__')\nexcept SystemExit:\n    pass\n"
    "print('RSS', re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1), "
    "file=sys.stderr)"
)


def run_cli(*args: str) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MiB, stdout of one CLI run."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _RSS_WRAPPER, *args], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    rss = int(proc.stderr.strip().rsplit("RSS ", 1)[1]) / 1024
    return seconds, rss, proc.stdout


def best_of_alternating(first, second, rounds: int = 2) -> tuple[tuple[float, object], tuple[float, object]]:
    """(best seconds, result) of each of two callables, run in turn `rounds` times: alternating keeps a
    noisy spell of this machine from landing on one side only."""
    best: list[tuple[float, object]] = [(float("inf"), None), (float("inf"), None)]
    for _ in range(rounds):
        for side, work in enumerate((first, second)):
            started = time.perf_counter()
            result = work()
            seconds = time.perf_counter() - started
            if seconds < best[side][0]:
                best[side] = (seconds, result)
    return best[0], best[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def queries() -> list[str]:
    dev = ROOT / "eval" / "dev_queries.jsonl"
    extra = ROOT / "eval" / "extra_queries.jsonl"
    texts = [
        json.loads(line)["query"]
        for path in (dev, extra)
        if path.exists()
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    return (texts * 2)[:200]


def corpus_folder(size: int) -> tuple[Path, Path]:
    """(source, index folder) of a size: the synthetic corpus written afresh (an earlier run's edits undone)."""
    folder = OUT / f"n{size}"
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "corpus.md"
    source.write_text(synthetic_corpus(size), encoding="utf-8")
    return source, folder / "index"


def measure_rebuild(size: int, rows: list[dict]) -> None:
    """Only the one-edit rebuild (`--rebuild-only`): the index written as for sizes above --embed-limit
    (2,000 real embeddings, noisy copies for the rest), then three edits rebuilt in fresh processes."""
    import shutil

    from indexer.documents.parse import parse_file
    from indexer.retrieval.embed import SentenceTransformerEncoder

    source, index_dir = corpus_folder(size)
    shutil.rmtree(index_dir, ignore_errors=True)
    synthetic_index(source, index_dir, SentenceTransformerEncoder(threads=os.cpu_count()))
    row = {"entries": size, **edit_rebuild(source, index_dir, parse_file(source).records)}
    rows.append(row)
    print(json.dumps(row), file=sys.stderr)


def measure_size(size: int, embed_limit: int, rows: list[dict]) -> None:
    import faiss

    from indexer.documents.parse import parse_file
    from indexer.engine import QAIndex
    from indexer.indexing.build import build, embedding_texts
    from indexer.retrieval.embed import SentenceTransformerEncoder
    from indexer.stores.disk import FaissStore

    source, index_dir = corpus_folder(size)
    build_encoder = SentenceTransformerEncoder(threads=os.cpu_count())
    row = {"entries": size}
    if size <= embed_limit:
        store = FaissStore(index_dir)
        if index_dir.exists():
            import shutil

            shutil.rmtree(index_dir)
        row["cli_build_s"], row["build_rss_mb"], _ = run_cli(
            "build", "--json", "--source", str(source), "--index-dir", str(index_dir / "cli")
        )
        texts = embedding_texts(parse_file(source).records)[2]
        row["texts"] = len(texts)

        def build_from_scratch():
            import shutil

            shutil.rmtree(index_dir, ignore_errors=True)  # else the second build reuses every vector
            return build([source], store, lambda: build_encoder)

        (row["build_s"], summary), (row["floor_build_s"], _) = best_of_alternating(
            build_from_scratch,
            lambda: build_encoder._model.encode(
                texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False
            ),
        )
        row["note"] = (
            f"build embedded {summary.embedded} texts in-process; the CLI build took "
            f"{row['cli_build_s']:.1f} s wall with imports and model load"
        )
    else:
        row.update(synthetic_index(source, index_dir, build_encoder))
    row["texts_per_s"] = row["texts"] / row["build_s"]
    row["build_ratio"] = row["build_s"] / row["floor_build_s"]
    row["disk_mb"] = sum(p.stat().st_size for p in (index_dir / "current").resolve().iterdir()) / 2**20

    # warm single queries through the core API (the query encoder the CLI and app use)
    qa = QAIndex.open([source], index_dir)
    faiss.omp_set_num_threads(1)
    qs = queries()
    qa.search(qs[0])
    api = []
    for q in qs:
        started = time.perf_counter()
        qa.search(q)
        api.append(time.perf_counter() - started)
    # the floor: torch encode of one query on one thread + exact flat search
    torch_encoder = SentenceTransformerEncoder(threads=1)
    flat = faiss.IndexFlatIP(384)
    flat.add(qa.stored.vectors)
    floor = []
    for q in qs:
        started = time.perf_counter()
        vector = torch_encoder.encode([q])
        flat.search(vector, 10)
        floor.append(time.perf_counter() - started)
    row.update(
        api_p50_ms=1000 * percentile(api, 0.5),
        api_p95_ms=1000 * percentile(api, 0.95),
        floor_p50_ms=1000 * percentile(floor, 0.5),
        floor_p95_ms=1000 * percentile(floor, 0.95),
        query_encoder=type(qa.encoder).__name__,
    )
    row["api_ratio"] = row["api_p50_ms"] / row["floor_p50_ms"]
    row["index_type"] = qa.manifest["index_type"]

    row.update(batch_against_floor(qa, qs, build_encoder))
    row["hint_recall"] = hint_recall(qa)

    # the CLI batch path, cold search and missing, as subprocesses (their peak RSS is the children's)
    batch = source.parent / "queries.txt"
    batch.write_text("\n".join(qs) + "\n")
    cli = ["search", "--source", str(source), "--index-dir", str(index_dir)]
    batch_total, row["batch_rss_mb"], _ = run_cli(*cli, "--batch", str(batch), "--json")
    cold = [run_cli(*cli, "overfitting on the training set") for _ in range(3)]
    missing = [run_cli("missing", "--json", "--source", str(source), "--index-dir", str(index_dir)) for _ in range(3)]
    row.update(
        batch_total_s=batch_total,
        cold_search_s=statistics.median(c[0] for c in cold),
        search_rss_mb=max(c[1] for c in cold),
        missing_json_s=statistics.median(m[0] for m in missing),
        missing_rss_mb=max(m[1] for m in missing),
    )
    row["cold_search_vs_import_st"] = row["cold_search_s"] / cold_import_sentence_transformers()
    row.update(edit_rebuild(source, index_dir, qa.records))
    rows.append(row)
    print(json.dumps(row), file=sys.stderr)


def batch_against_floor(qa, texts: list[str], torch_encoder, rounds: int = 3) -> dict:
    """`search --batch`'s core (`search_many`) per query, against its floor: torch encoding the same queries
    in batches of 64 on every core plus one exact FAISS flat search of them all (every core). Alternating,
    best of `rounds` each."""
    import faiss
    import torch

    flat = faiss.IndexFlatIP(qa.stored.vectors.shape[1])
    flat.add(np.ascontiguousarray(qa.stored.vectors))

    def floor():
        torch.set_num_threads(os.cpu_count())
        faiss.omp_set_num_threads(os.cpu_count())
        vectors = torch_encoder._model.encode(
            texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        flat.search(vectors, 10)

    def ours():
        faiss.omp_set_num_threads(1)  # as a query process runs
        qa.search_many(texts)

    (ours_s, _), (floor_s, _) = best_of_alternating(ours, floor, rounds)
    return {
        "batch_ms": 1000 * ours_s / len(texts),
        "batch_floor_ms": 1000 * floor_s / len(texts),
        "batch_ratio": ours_s / floor_s,
    }


def hint_recall(qa, sample: int = 200) -> float:
    """Share of the exact hints (the 3 answered entries of best dense score, over every entry) that
    `hints_many` finds, on an even sample of the missing entries."""
    stored = qa.stored
    missing = [record.id for record in qa.missing()]
    chosen = missing[:: max(1, len(missing) // sample)][:sample]
    if not chosen:
        return float("nan")
    answered = stored.answer_row >= 0
    found = qa.hints_many(chosen)
    recalls = []
    for record_id, hints in zip(chosen, found):
        position = stored.position_of[record_id]
        row_scores = stored.vectors @ stored.question_vector(position)
        entry = row_scores[stored.question_row]
        entry[answered] = np.maximum(entry[answered], row_scores[stored.answer_row[answered]])
        entry[~answered] = -np.inf
        entry[position] = -np.inf
        exact = {stored.records[int(p)].id for p in np.argpartition(-entry, 2)[:3]}
        recalls.append(len(exact & {hint.record.id for hint in hints}) / 3)
    return float(np.mean(recalls))


def cold_import_sentence_transformers(runs: int = 3) -> float:
    """Median wall time of a fresh `python -c "import sentence_transformers"`: the cold-search yardstick."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import sentence_transformers"], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# One rebuild in a fresh process, as `python -m indexer build` would run it after an edit, with the
# model loaded first and timed apart: the target is "< 1 s plus model load".
_REBUILD_CHILD = """
import json, sys, time
started = time.perf_counter()
from pathlib import Path
from indexer.indexing.build import build
from indexer.retrieval.embed import SentenceTransformerEncoder
from indexer.stores.disk import FaissStore
encoder = SentenceTransformerEncoder()
encoder.encode(["load the weights"])
loaded = time.perf_counter()
summary = build([Path(sys.argv[1])], FaissStore(Path(sys.argv[2])), lambda: encoder)
print(json.dumps({"model_load_s": loaded - started, "rebuild_s": time.perf_counter() - loaded,
                  "embedded": summary.embedded, "changed": summary.changed}))
"""


def edit_one_answer(source: Path, records: list, nth: int) -> None:
    """Add a sentence to the answer of the `nth` answered entry of the corpus's second half."""
    edited = [r for r in records[len(records) // 2 :] if r.status == "ok"][nth]
    text = source.read_text(encoding="utf-8")
    source.write_text(text.replace(edited.answer, edited.answer + " One more sentence.", 1), encoding="utf-8")


def edit_rebuild(source: Path, index_dir: Path, records: list) -> dict:
    """Edit one answer in the middle of the corpus and rebuild, three times (different entries): the
    incremental path. Median of the rebuild times, each in a fresh process, excluding model load."""
    runs = []
    for offset in range(3):
        edit_one_answer(source, records, offset)
        proc = subprocess.run(
            [sys.executable, "-c", _REBUILD_CHILD, str(source), str(index_dir)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        if proc.returncode:
            raise RuntimeError(proc.stderr[-2000:])
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    middle = sorted(runs, key=lambda run: run["rebuild_s"])[1]
    return {
        "edit_rebuild_s": middle["rebuild_s"],
        "edit_embedded": middle["embedded"],
        "edit_changed": middle["changed"],
        "edit_model_load_s": middle["model_load_s"],
    }


def cold_commands() -> dict[str, float]:
    timings = {}
    for name, args in (("--help", ["--help"]), ("info", ["info"])):
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "indexer", *args], cwd=ROOT, capture_output=True)
            runs.append(time.perf_counter() - started)
        timings[name] = statistics.median(runs)
    return timings


def print_table(rows: list[dict], cold: dict[str, float]) -> None:
    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
        f"cold `--help` {cold['--help']:.2f} s, cold `info` {cold['info']:.2f} s (median of 3)\n"
    )
    print(
        "| entries | texts | build s | texts/s | torch floor s | build/floor | query p50 / p95 ms | floor p50 / p95 ms "
        "| p50/floor | index | disk MB | peak RSS MB build / search |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['entries']:,} | {r['texts']:,} | {r['build_s']:.1f} | {r['texts_per_s']:.0f} | "
            f"{r['floor_build_s']:.1f} | {r['build_ratio']:.2f} | {r['api_p50_ms']:.1f} / {r['api_p95_ms']:.1f} | "
            f"{r['floor_p50_ms']:.1f} / {r['floor_p95_ms']:.1f} | {r['api_ratio']:.2f} | {r['index_type']} | "
            f"{r['disk_mb']:.1f} | {r['build_rss_mb']:.0f} / {r['search_rss_mb']:.0f} |"
        )
    print()
    print(
        "| entries | batch ms/query (floor ms, ratio) | batch CLI: 200 queries s | cold search s "
        "(/ cold import sentence_transformers) | missing --json s (peak RSS MB) | hint recall@3 "
        "| one-edit rebuild s + model load s (texts embedded) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['entries']:,} | {r['batch_ms']:.2f} ({r['batch_floor_ms']:.2f}, {r['batch_ratio']:.2f}) | "
            f"{r['batch_total_s']:.2f} | {r['cold_search_s']:.2f} ({r['cold_search_vs_import_st']:.2f}) | "
            f"{r['missing_json_s']:.2f} ({r['missing_rss_mb']:.0f}) | {r['hint_recall']:.3f} | "
            f"{r['edit_rebuild_s']:.2f} + {r['edit_model_load_s']:.1f} ({r['edit_embedded']}) |"
        )
    for r in rows:
        print(f"- {r['entries']:,}: {r['note']}; query encoder {r['query_encoder']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="82,10000,100000")
    parser.add_argument("--embed-limit", type=int, default=10000)
    parser.add_argument(
        "--rebuild-only",
        action="store_true",
        help="measure only the one-edit rebuild (indexes made as for sizes above --embed-limit)",
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows: list[dict] = []
    for size in [int(s) for s in args.sizes.split(",")]:
        if args.rebuild_only:
            measure_rebuild(size, rows)
        else:
            measure_size(size, args.embed_limit, rows)
    if args.rebuild_only:
        print("| entries | one-edit rebuild s + model load s (texts embedded, entries changed) |\n|---|---|")
        for r in rows:
            print(
                f"| {r['entries']:,} | {r['edit_rebuild_s']:.2f} + {r['edit_model_load_s']:.1f} "
                f"({r['edit_embedded']}, {r['edit_changed']}) |"
            )
        return 0
    print_table(rows, cold_commands())
    return 0


if __name__ == "__main__":
    sys.exit(main())
