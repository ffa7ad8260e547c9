"""Where a one-entry rebuild goes: the steps of `build()` timed one by one, without a profiler.

    .venv/bin/python bench/rebuild_split.py --size 100000    # after bench/run.py made bench/out/n100000

Edits one answer of the corpus bench/run.py left (the same edit as its one-edit rebuild), rebuilds in this
process with a stand-in encoder (the one text to embed takes ~0.02 s with the real model, and is not what
is measured here), three times, and prints each step's seconds per rebuild. Steps run inside one another
(writing the files is part of writing the generation), so the rows do not add up to the total.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.indexing import build as build_module  # noqa: E402
from indexer.indexing import reuse  # noqa: E402
from indexer.stores import disk  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from run import edit_one_answer  # noqa: E402  (bench/run.py: the same edit as its one-edit rebuild)

STEPS = [  # (module or class, function, what it is)
    (reuse.PreviousBuild, "load", "load and verify the previous generation"),
    (build_module, "parse_corpus_again", "parse (only the edited entry read again)"),
    (build_module, "embedding_rows", "rows and where their vectors come from"),
    (reuse.PreviousBuild, "lexical", "lexical index update"),
    (build_module, "_row_vectors", "vectors taken from the previous generation"),
    (disk, "write_index", "write the generation (below: its parts)"),
    (disk, "table_files", "  record and row tables"),
    (disk, "_inverted_file", "  inverted file updated"),
    (disk, "_write_file", "  files hashed, written, synced (two at a time: summed)"),
    (disk, "_remove_old_generations", "  the oldest generation removed"),
]


class StandIn:
    """A fixed random vector for each text: the rebuild embeds one."""

    dimension = 384

    def encode(self, texts, batch_size=32, progress=None):
        vectors = np.random.default_rng(len(texts)).standard_normal((len(texts), self.dimension)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def timed(owner, name: str, spent: dict[str, float]) -> None:
    function = getattr(owner, name)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - started

    setattr(owner, name, wrapper)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    folder = ROOT / "bench" / "out" / f"n{args.size}"
    source, store = folder / "corpus.md", disk.FaissStore(folder / "index")
    spent: dict[str, float] = defaultdict(float)
    for owner, name, _ in STEPS:
        timed(owner, name, spent)
    records = store.load().records
    totals = []
    for run in range(args.runs):
        edit_one_answer(source, records, 10 + run)
        started = time.perf_counter()
        summary = build_module.build([source], store, StandIn)
        totals.append(time.perf_counter() - started)
        print(f"rebuild {run + 1}: {totals[-1]:.2f} s, {summary.parsed[0]}", file=sys.stderr)
    print(f"| step ({args.size:,} entries, mean of {args.runs}) | s |\n|---|---|")
    for _, name, what in STEPS:
        print(f"| {what} | {spent[name] / args.runs:.3f} |")
    print(f"| **the rebuild** | **{sum(totals) / len(totals):.3f}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
