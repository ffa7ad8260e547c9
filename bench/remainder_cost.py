"""What the remainder evidence (indexer/retrieval/remainder.py) costs a search, as ratios in one run.

    python bench/remainder_cost.py                 # the bundled corpus, its 158 dev + own queries, 5 rounds
    python bench/remainder_cost.py --source bench/out/n1000000/corpus --index-dir bench/out/n1000000/index \
        --rounds 2                 # an index bench/million.py built (never rebuilt here)

Single searches: each query is encoded and searched with and without the remainder, interleaved, so
load on the machine hits both alike; the median per search is printed for each, and their ratio.
Batches: all queries, already encoded, scored by `search_many` with and without (the leftover words are
pooled from each query's token states; those that cannot be are embedded in one call). Not a test:
nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from run import percentile  # noqa: E402

from indexer.defaults import DEFAULT_MODEL  # noqa: E402
from indexer.engine import QAIndex  # noqa: E402
from indexer.errors import QueryError  # noqa: E402
from indexer.retrieval.search import search, search_many  # noqa: E402
from indexer.stores.disk import FaissStore  # noqa: E402


def labelled_queries() -> list[str]:
    return [
        json.loads(line)["query"]
        for name in ("dev_queries.jsonl", "extra_queries.jsonl")
        for line in (ROOT / "eval" / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def open_index(source: Path, index_dir: Path) -> QAIndex:
    """The index of `source`; one already in `index_dir` is used as it is, never rebuilt (rebuilding a
    million synthetic entries with the real model would take hours)."""
    if (index_dir / "current").exists():
        return QAIndex(FaissStore(index_dir).load(), DEFAULT_MODEL)
    return QAIndex.open([source], index_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--index-dir", default=None, help="where to keep the index (default: a temporary folder)")
    parser.add_argument("--source", default=str(ROOT / "data" / "ml_interview_qa.md"), help="document or folder")
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        qa = open_index(Path(args.source), Path(args.index_dir) if args.index_dir else Path(folder) / "index")
        queries = labelled_queries()  # bench/million.py's warm queries too
        model, remainder = qa.no_match_model, qa.remainder
        for query in queries[:10]:  # warm up
            qa.search(query)
        single: dict[str, list[float]] = {"with": [], "without": []}
        for _ in range(args.rounds):
            for query in queries:
                for label, used in (("with", remainder), ("without", None)):
                    started = time.perf_counter()
                    encoded = qa.encode([query])[0]
                    if not isinstance(encoded, QueryError):
                        search(qa.stored, encoded, no_match_model=model, remainder=used)
                    single[label].append(time.perf_counter() - started)
        encoded_all = [e for e in qa.encode(queries) if not isinstance(e, QueryError)]
        batch: dict[str, list[float]] = {"with": [], "without": []}
        for _ in range(args.rounds):
            for label, used in (("with", remainder), ("without", None)):
                started = time.perf_counter()
                search_many(qa.stored, encoded_all, no_match_model=model, remainder=used)
                batch[label].append((time.perf_counter() - started) / len(encoded_all))
    with_ms, without_ms = (statistics.median(single[k]) * 1000 for k in ("with", "without"))
    with_p95, without_p95 = (percentile(single[k], 0.95) * 1000 for k in ("with", "without"))
    print(
        f"single search (encode + search), median of {len(single['with'])}: with the remainder {with_ms:.2f} ms, "
        f"without {without_ms:.2f} ms, ratio {with_ms / without_ms:.2f}; p95 {with_p95:.2f} and {without_p95:.2f} ms"
    )
    with_ms, without_ms = (statistics.median(batch[k]) * 1000 for k in ("with", "without"))
    print(
        f"batch scoring of {len(encoded_all)} encoded queries, per query, median of {args.rounds}: "
        f"with {with_ms:.2f} ms, without {without_ms:.2f} ms, ratio {with_ms / without_ms:.2f}"
    )


if __name__ == "__main__":
    main()
