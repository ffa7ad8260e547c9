"""What a million entries cost: build from cached vectors, cold and warm search, recall, peak memory.

    .venv/bin/python bench/million.py                       # 1,000,000 entries (~15 min, ~12 GB free RAM)
    .venv/bin/python bench/million.py --entries 20000       # a quick check of the script itself

The corpus is bench/run.py's synthetic document, in files of 100,000 entries. Embedding a million
entries would take ~2 h on this
machine, so, as run.py does above its embed limit, 2,000 texts are embedded for real once (cached in
bench/out/) and every row is one of those vectors plus small noise. The build runs in a child process
(its peak RSS is its own): parse, lexical index, vectors, inverted file, verified write. Timed: the
build; a cold `python -m indexer search` (median of 3, peak RSS); warm single queries through the core
API (p50/p95 over the labelled queries, ONNX encoder, one thread); recall@10 of the default path's
dense ranking (`--mode dense`: nearest rows from the inverted file, re-scored exactly) against an exact
brute-force ranking of every entry.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import OUT, percentile, queries, run_cli, synthetic_corpus  # noqa: E402 (after the path insert)

SAMPLE = OUT / "sample_vectors.npy"

# The child that builds: no torch, no model; its peak RSS (VmHWM) is the build's.
_BUILD_CHILD = """
import json, re, sys, time
sys.path[:0] = [sys.argv[3], sys.argv[3] + '/bench']
import numpy as np
from pathlib import Path
started = time.perf_counter()
from indexer.indexing.build import IVF_MIN_ROWS, _manifest, embedding_texts
from indexer.documents.parse import parse_corpus, source_files
from indexer.retrieval.embed import model_fingerprint, text_key
from indexer.retrieval.lexical import LexicalIndex
from indexer.retrieval.nomatch import DEFAULT_NO_MATCH
from indexer.stores.disk import FaissStore, RowTable
from run import noisy_copies
source, index_dir = Path(sys.argv[1]), Path(sys.argv[2])
times = {}
files = source_files([source])
records = [record for report in parse_corpus(files) for record in report.records]
times['parse_s'] = time.perf_counter() - started
positions, fields, texts = embedding_texts(records)
fp = model_fingerprint('all-MiniLM-L6-v2')
keys = [text_key(fp, t) for t in texts]
del texts
vectors = noisy_copies(np.load(sys.argv[4]), len(keys))
mark = time.perf_counter()
lexical = LexicalIndex.from_records(records)
times['lexical_s'] = time.perf_counter() - mark
manifest = _manifest(records, files, 'all-MiniLM-L6-v2', fp, vectors.shape[1], fields,
                     'ivf' if len(keys) >= IVF_MIN_ROWS else 'flat', 0.0, 0, DEFAULT_NO_MATCH.to_dict())
mark = time.perf_counter()
store = FaissStore(index_dir)
with store.lock():
    store.write(records, RowTable(np.asarray(positions, dtype=np.int32), fields, keys), vectors, manifest, lexical)
times['write_s'] = time.perf_counter() - mark
times['build_s'] = time.perf_counter() - started
times['rows'] = len(keys)
times['build_rss_mb'] = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) / 1024
print(json.dumps(times))
"""


def sample_vectors():
    """2,000 real embeddings of the synthetic texts, made once."""
    import numpy as np

    if SAMPLE.exists():
        return np.load(SAMPLE)
    from indexer.documents.parse import parse_file
    from indexer.indexing.build import embedding_texts
    from indexer.retrieval.embed import SentenceTransformerEncoder

    corpus = OUT / "sample_corpus.md"
    corpus.write_text(synthetic_corpus(1200), encoding="utf-8")
    texts = embedding_texts(parse_file(corpus).records)[2][:2000]
    vectors = SentenceTransformerEncoder(threads=os.cpu_count()).encode(texts)
    SAMPLE.parent.mkdir(parents=True, exist_ok=True)
    np.save(SAMPLE, vectors)
    return vectors


def write_corpus(folder: Path, entries: int, per_file: int = 100_000) -> None:
    """The synthetic document cut into files of at most `per_file` entries (one file may hold at most
    64 MiB: a million entries are ~490 MiB), each from its own seed; a folder is one corpus."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.md"):
        stale.unlink()
    for number, start in enumerate(range(0, entries, per_file)):
        text = synthetic_corpus(min(per_file, entries - start), seed=7 + number)
        (folder / f"part{number:02d}.md").write_text(text, encoding="utf-8")


def build(source: Path, index_dir: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _BUILD_CHILD, str(source), str(index_dir), str(ROOT), str(SAMPLE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def warm_queries(qa, texts: list[str]) -> dict:
    import faiss

    faiss.omp_set_num_threads(1)
    qa.search(texts[0])
    times = []
    for text in texts:
        started = time.perf_counter()
        qa.search(text)
        times.append(time.perf_counter() - started)
    return {"warm_p50_ms": 1000 * percentile(times, 0.5), "warm_p95_ms": 1000 * percentile(times, 0.95)}


def dense_recall(qa, texts: list[str], k: int = 10) -> float:
    """Mean share of the exact top-k entries (best of question and answer cosine, over every entry) that
    the search returns in `dense` mode."""
    import numpy as np

    stored = qa.stored
    has_answer = stored.answer_row >= 0
    recalls = []
    for encoded in qa.encode(texts):
        hits = {hit.record.id for hit in qa.search_encoded(encoded, k=k, min_score=-1.0, mode="dense").nearest}
        row_scores = (stored.vectors @ encoded.vectors.T).max(axis=1)  # a typo-corrected variant counts too
        entry = row_scores[stored.question_row]
        entry[has_answer] = np.maximum(entry[has_answer], row_scores[stored.answer_row[has_answer]])
        exact = {stored.records[int(p)].id for p in np.argpartition(-entry, k - 1)[:k]}
        recalls.append(len(exact & hits) / k)
    return float(np.mean(recalls))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--recall-queries", type=int, default=100)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    folder = OUT / f"n{args.entries}"
    source, index_dir = folder / "corpus", folder / "index"
    write_corpus(source, args.entries)
    sample_vectors()
    row = {"entries": args.entries, **build(source, index_dir)}
    row["disk_mb"] = sum(p.stat().st_size for p in (index_dir / "current").resolve().iterdir()) / 2**20
    cli = ["search", "--source", str(source), "--index-dir", str(index_dir), "overfitting on the training set"]
    cold = [run_cli(*cli) for _ in range(3)]
    row.update(cold_search_s=statistics.median(c[0] for c in cold), search_rss_mb=max(c[1] for c in cold))
    import_runs = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import sentence_transformers"], check=True)
        import_runs.append(time.perf_counter() - started)
    row["cold_import_sentence_transformers_s"] = statistics.median(import_runs)
    from indexer.engine import QAIndex

    qa = QAIndex.open([source], index_dir)
    texts = queries()
    row.update(warm_queries(qa, texts))
    row["recall_at_10"] = dense_recall(qa, texts[: args.recall_queries])
    row["index_type"] = qa.manifest["index_type"]
    print(json.dumps(row))
    print(
        f"| {row['entries']:,} | {row['rows']:,} | {row['build_s']:.0f} (parse {row['parse_s']:.0f}, lexical "
        f"{row['lexical_s']:.0f}, write {row['write_s']:.0f}) | {row['build_rss_mb']:,.0f} | {row['disk_mb']:,.0f} | "
        f"{row['cold_search_s']:.2f} | {row['search_rss_mb']:,.0f} | "
        f"{row['warm_p50_ms']:.1f} / {row['warm_p95_ms']:.1f} "
        f"| {row['recall_at_10']:.3f} | {row['index_type']} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
