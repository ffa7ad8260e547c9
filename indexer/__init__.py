"""Semantic search over question-and-answer documents.

The public API, importable without loading torch, FAISS or Streamlit:

    from indexer import QAIndex
    qa = QAIndex.open()                 # the bundled corpus; builds index/ on first use
    qa.search("why does my model overfit").hits

Modules: records (types), parse + markdown (documents → records), text (markup stripping),
embed (model, vectors), store (index on disk), build (parse → embed → store), search (ranking),
engine (QAIndex), cli (command line). `errors` holds the exception family.
"""
from indexer.engine import DEFAULT_INDEX_DIR, DEFAULT_SOURCE, QAIndex
from indexer.errors import IndexerError
from indexer.documents.records import Hit, Record

__all__ = ["QAIndex", "Record", "Hit", "IndexerError", "DEFAULT_SOURCE", "DEFAULT_INDEX_DIR"]
