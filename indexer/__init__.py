"""Semantic search over question-and-answer documents.

The public API, importable without loading torch, FAISS or Streamlit:

    from indexer import QAIndex
    qa = QAIndex.open()                 # the bundled corpus; builds index/ on first use
    qa.search("why does my model overfit").hits

Module map (data flows one way: source file → records → texts → vectors → index → hits → cards):

    engine                  QAIndex: the one object the CLI and the app talk to
    cli, __main__           `python -m indexer`: arguments, printing, exit codes
    errors                  the exception family (one line for the user, exit code 2)
    cores                   how many cores the process may use (threads for batches and builds)
    background              work run on a thread meanwhile (the query encoder, a PostgreSQL lexical index)
    documents/  records     the value types Record and Hit
                record_table  records held as columns: a loaded index's, a rebuild's
                parse       files → records: formats, ids, statuses, limits, several files
                incremental a rebuild's parse: only the entry an edit touched is read again
                markdown    Markdown entries: the document's entry style decides what an entry is
                lines       one line's shape (heading, bold line, Q:/A:, list item, fence)
                places      where every non-blank line went (the parse report's accounting)
                text        plain text for embedding, prose and link-only detection, clean questions
    retrieval/  embed       text → vectors with sentence-transformers (builds); the vector contract
                onnx_encoder  queries → vectors with ONNX Runtime, no torch
                tokens      words, stemming, initials, spelling pairs, edit distance
                lexical     the BM25 index; typos and compounds matched against a document
                search      encoded query → ranked, scored hits; related entries; status filters
                remainder   what a query asks beyond its best entry (no-match evidence)
                nomatch     the no-match model and the three confidence levels
    indexing/   build       parse → embed → write a generation; freshness
                reuse       what a rebuild takes over from the previous generation
    stores/     base        the store interface (Store, LoadedIndex), written down once
                spec        which store a spec names: a folder or a PostgreSQL URL
                disk        the folder store: generations, lock, atomic writes, verified loads
                vectors     the vector-search backends: flat, fp16 scan, IVF, HNSW; batched nearest rows
                            and batched scoring of (query, row) pairs
                tables      a generation's record and row files
                postgres    the PostgreSQL + pgvector store
    usage/      querylog    the query log beside the index, and readers' feedback
                gaps        logged questions the document does not answer, grouped; skeleton exports
                calibration the no-match decision refitted on an index's own feedback
    analysis/   topics      topics, the map, near-duplicates, hints for missing answers
                charts      the topic map as a chart
                evaluate    metrics on labelled queries; leave-one-document-out
                queryfiles  query files, plain and labelled
    display/    wording     status labels and counts in words
                rendering   Markdown and document HTML made safe to show (nh3 allowlist), entry links

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

_EXPORTS = {
    "QAIndex": "indexer.engine",
    "DEFAULT_SOURCE": "indexer.engine",
    "DEFAULT_INDEX_DIR": "indexer.engine",
    "IndexerError": "indexer.errors",
    "Record": "indexer.documents.records",
    "Hit": "indexer.documents.records",
}

__all__ = ["QAIndex", "Record", "Hit", "IndexerError", "DEFAULT_SOURCE", "DEFAULT_INDEX_DIR"]  # = _EXPORTS


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'indexer' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
