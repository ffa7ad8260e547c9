"""Subprocess drivers for the crash and concurrency tests (fake encoder, so runs take seconds).

python tests/drivers.py build SOURCE INDEX_DIR        one build
python tests/drivers.py rebuild A B INDEX_DIR N       N builds alternating sources A and B
python tests/drivers.py query INDEX_DIR STOP_FILE     load and search until STOP_FILE exists; a JSON line each
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from core_fixtures import FakeEncoder  # noqa: E402

from indexer.errors import IndexerError  # noqa: E402
from indexer.indexing.build import build  # noqa: E402
from indexer.stores.disk import FaissStore, load_index  # noqa: E402

PROBE = "gradient descent batch training"


def answer(index_dir: Path) -> dict:
    """What a reader sees: which source the index holds, and its top ids for a fixed query vector."""
    from indexer.retrieval.lexical import LexicalIndex
    from indexer.retrieval.search import EncodedQuery, search

    stored = load_index(index_dir)
    query = EncodedQuery(PROBE, FakeEncoder().encode([PROBE]), LexicalIndex.from_records(stored.records).match(PROBE))
    result = search(stored, query, k=5, min_score=-1.0, mode="dense", remainder=None)
    return {
        "sha": stored.manifest["sources"][0]["sha256"],
        "records": len(stored.records),
        "top": [h.record.id for h in result.nearest],
    }


def main(argv: list[str]) -> int:
    command = argv[0]
    if command == "build":
        build([Path(argv[1])], FaissStore(Path(argv[2])), FakeEncoder, "fake-model")
    elif command == "rebuild":
        sources, store = [Path(argv[1]), Path(argv[2])], FaissStore(Path(argv[3]))
        for i in range(int(argv[4])):
            build([sources[i % 2]], store, FakeEncoder, "fake-model")
            print(json.dumps({"built": i}), flush=True)
    elif command == "query":
        stop, deadline = Path(argv[2]), time.monotonic() + 900
        while not stop.exists() and time.monotonic() < deadline:
            try:
                print(json.dumps(answer(Path(argv[1]))), flush=True)
            except (IndexerError, OSError) as exc:
                print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
