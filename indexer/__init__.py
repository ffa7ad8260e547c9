"""Semantic search over question-and-answer documents.

The public API, importable without loading torch, FAISS or Streamlit:

    from indexer import QAIndex
    qa = QAIndex.open()                 # the bundled corpus; builds index/ on first use
    qa.search("why does my model overfit").hits

Modules: records (types), parse + markdown (documents → records), text (markup stripping),
embed (model, vectors), store (index on disk), build (parse → embed → store), search (ranking),
engine (QAIndex), cli (command line). `errors` holds the exception family.

The names below are resolved on first use (PEP 562): `python -m indexer --help` imports this package
first, and loading the engine here would import numpy and every core module for nothing.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from indexer.documents.records import Hit, Record
    from indexer.engine import DEFAULT_INDEX_DIR, DEFAULT_SOURCE, QAIndex
    from indexer.errors import IndexerError

_EXPORTS = {"QAIndex": "indexer.engine", "DEFAULT_SOURCE": "indexer.engine", "DEFAULT_INDEX_DIR": "indexer.engine",
            "IndexerError": "indexer.errors", "Record": "indexer.documents.records",
            "Hit": "indexer.documents.records"}

__all__ = ["QAIndex", "Record", "Hit", "IndexerError", "DEFAULT_SOURCE", "DEFAULT_INDEX_DIR"]  # = _EXPORTS


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'indexer' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
