"""`QAIndex`: the one object the CLI and the app talk to — an open index plus a lazily loaded encoder.

    qa = QAIndex.open([Path("data/ml_interview_qa.md")])      # builds the index first if needed
    result = qa.search("why does my model overfit", k=5)
    qa.related(17), qa.missing()

Opening verifies the index (freshness; checksums of files changed since the build) and costs no model
load; the query encoder is loaded on the first search, so `missing` and `related` never load a model.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from indexer.background import started
from indexer.cores import usable_cores
from indexer.defaults import DEFAULT_K, DEFAULT_MODE
from indexer.documents.records import Hit, Record, RecordId, field_values
from indexer.documents.selection import link_only_answers, missing_answers
from indexer.errors import IndexerError, QueryError, SourceError
from indexer.indexing.build import BuildSummary, Notify, ProgressFactory, ensure_index
from indexer.retrieval.embed import (
    DEFAULT_MODEL,
    Encoder,
    SentenceTransformerEncoder,
    StatesEncoder,
    TokenStates,
    vocabulary,
)
from indexer.retrieval.lexical import LexicalIndex, LexicalMatch
from indexer.retrieval.nomatch import NoMatchModel
from indexer.retrieval.remainder import Remainder
from indexer.retrieval.search import (
    DEFAULT_WEIGHTS,
    EncodedQuery,
    HybridWeights,
    SearchResult,
    clean_query,
    related,
    related_many,
    search,
    search_many,
)
from indexer.retrieval.tokens import apply_corrections
from indexer.stores.base import LoadedIndex, Store
from indexer.stores.disk import FaissStore, StoredIndex
from indexer.stores.spec import open_store, store_spec

if TYPE_CHECKING:
    from indexer.analysis.topics import Duplicate, Topic
    from indexer.usage.querylog import QueryLog

# Queries per task of a batch search: the encoder's batch size, and enough tasks to keep every core busy.
BATCH_CHUNK = 32

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = PROJECT_ROOT / "data" / "ml_interview_qa.md"
DEFAULT_INDEX_DIR = PROJECT_ROOT / "index"


def resolve_sources(sources: list[Path] | None, store) -> list[Path]:
    """The sources given; else those the index in `store` was built from; else the bundled document.

    Without this, a command run on an index built from another document (`--index-dir` without
    `--source`) would rebuild it from the bundled one, and that index would be lost."""
    if sources:
        return sources
    try:
        manifest = store.read_manifest()
    except IndexerError:
        manifest = None  # a damaged index is reported or rebuilt by whoever opens it
    manifest = manifest or {}
    # indexes built before `source_args` was recorded name their files (not folders) under `sources`
    given = manifest.get("source_args") or [source.get("path") for source in manifest.get("sources", [])]
    built_from = [Path(path) for path in given if isinstance(path, str)]
    gone = [path for path in built_from if not path.exists()]
    if not built_from:
        return [DEFAULT_SOURCE]
    if not gone:
        return built_from
    if all(path.name == DEFAULT_SOURCE.name for path in gone):
        return [DEFAULT_SOURCE]  # the bundled document, from where the project used to be
    raise SourceError(
        f"the index at {store.location} was built from {', '.join(map(str, gone))}, "
        "which is no longer there; say which document to search with --source"
    )


def build_encoder(model: str, device: str = "auto") -> Encoder:
    """The encoder for builds: a GPU when torch sees one (`device` auto), else all cores."""
    return SentenceTransformerEncoder(model, threads=usable_cores(), device=device)


def query_encoder(model: str) -> Encoder:
    """The encoder for single queries: one thread keeps latency flat when cores are busy.

    ONNX Runtime when it can serve the model (no torch import, several times faster per query), else
    torch. INDEXER_QUERY_BACKEND=auto (default) | onnx (fail instead of falling back) | torch.
    """
    from indexer.errors import ModelError
    from indexer.retrieval.onnx_encoder import OnnxUnavailable, load_onnx_encoder

    backend = os.environ.get("INDEXER_QUERY_BACKEND", "").strip().lower() or "auto"
    if backend not in ("auto", "onnx", "torch"):
        raise ModelError(f"INDEXER_QUERY_BACKEND must be auto, onnx or torch, not {backend!r}")
    if backend != "torch":
        try:
            return load_onnx_encoder(model, threads=1)
        except OnnxUnavailable:
            if backend == "onnx":
                raise
    return SentenceTransformerEncoder(model, threads=1)


def preloaded_encoder(encoder_factory: Callable[[str], Encoder], model: str) -> Callable[[str], Encoder]:
    """`encoder_factory(model)` already running in a thread, as a factory that waits for its result."""
    future = started(encoder_factory, model)
    return lambda _model: future.result()


class QAIndex:
    def __init__(
        self, stored: LoadedIndex, model: str, encoder_factory: Callable[[str], Encoder] = query_encoder
    ) -> None:
        self.stored = stored
        self.model = model
        self._encoder_factory = encoder_factory
        self._encoder: Encoder | None = None
        self._lexical: LexicalIndex | None = None
        self._topics: list | None = None
        self._duplicates: dict[float, list] = {}
        self.build_summary: BuildSummary | None = None
        self.store: Store | None = None  # where `open` found the index; its query log lives there
        self._query_log: QueryLog | None = None

    @classmethod
    def open(
        cls,
        sources: list[Path] | None = None,
        index_dir: str | Path | None = None,
        model: str = DEFAULT_MODEL,
        notify: Notify = lambda message: None,
        progress: ProgressFactory | None = None,
        encoder_factory: Callable[[str], Encoder] = query_encoder,
        preload_encoder: bool = False,
    ) -> QAIndex:
        """Open the index for `sources`, building or rebuilding it first when it is missing, stale or corrupt.

        `build_summary` tells what a build found (warnings, lines not taken), or is None when the index
        was fresh. `encoder_factory` lets several indexes share one query encoder. `preload_encoder`
        (for a process that will search) loads the encoder while the index is verified and loaded: at
        100,000 entries a cold search took 0.56 s instead of 0.65 s; an error loading it still comes
        with the first search.
        """
        summaries: list[BuildSummary] = []
        store = open_store(store_spec(index_dir, DEFAULT_INDEX_DIR))  # index_dir: a folder or a PostgreSQL URL
        if preload_encoder:
            encoder_factory = preloaded_encoder(encoder_factory, model)
        stored = ensure_index(
            resolve_sources(sources, store),
            store,
            lambda: build_encoder(model),
            model,
            notify,
            progress,
            on_built=summaries.append,
        )
        qa = cls(stored, model, encoder_factory)
        qa.build_summary = summaries[-1] if summaries else None
        qa.store = store
        return qa

    def is_current(self) -> bool:
        """False once the store's current index is another generation or its files changed since
        loading: open it again (which verifies it, and rebuilds a corrupt one). Cheap: stat calls."""
        return self.stored.is_current()

    @property
    def records(self) -> Sequence[Record]:
        return self.stored.records

    @property
    def manifest(self) -> dict:
        return self.stored.manifest

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = self._encoder_factory(self.model)
        return self._encoder

    @property
    def lexical(self) -> LexicalIndex:
        if self._lexical is None:  # stored with the index since format 2; built here for older ones
            stored = self.stored.lexical
            self._lexical = stored if stored is not None else LexicalIndex.from_records(self.records)
        return self._lexical

    @property
    def no_match_model(self) -> NoMatchModel:
        return NoMatchModel.from_dict(self.manifest.get("no_match", {}))

    @property
    def remainder(self) -> Remainder:
        """What queries ask beyond their best entries (remainder.py); the query encoder embeds the leftover
        words that cannot be pooled from a query's token states."""
        return Remainder(self.lexical, self.encode_queries)

    def encode_queries(self, queries: list[str]) -> np.ndarray:
        return self.encoder.encode(queries, batch_size=32)

    def encode_queries_with_states(self, queries: list[str]) -> tuple[np.ndarray, list[TokenStates | None]]:
        """`encode_queries`, with each query's token states when the encoder keeps them (remainder.py)."""
        encoder = self.encoder
        if isinstance(encoder, StatesEncoder):
            return encoder.encode_with_states(queries, batch_size=32)
        return self.encode_queries(queries), [None] * len(queries)

    def encode(self, queries: list[str]) -> list[EncodedQuery | QueryError]:
        """Clean, match lexically and embed many queries with one model call; bad ones become errors."""
        prepared: list[tuple[str, list[str], LexicalMatch, list[str]] | QueryError] = []
        texts: list[str] = []
        for query in queries:
            try:
                text, notes = clean_query(query)
            except QueryError as exc:
                prepared.append(exc)
                continue
            lexical = self.lexical.match(text, vocabulary(self.model))
            variants = [text] + ([apply_corrections(text, lexical.corrected)] if lexical.corrected else [])
            prepared.append((text, notes, lexical, variants))
            texts.extend(variants)
        vectors, states = self.encode_queries_with_states(texts) if texts else (np.zeros((0, 0)), [])
        encoded: list[EncodedQuery | QueryError] = []
        row = 0
        for item in prepared:
            if isinstance(item, QueryError):
                encoded.append(item)
                continue
            text, notes, lexical, variants = item
            rows = slice(row, row + len(variants))
            encoded.append(EncodedQuery(text, vectors[rows], lexical, notes, states[row]))
            row += len(variants)
        return encoded

    def search_encoded(
        self,
        query: EncodedQuery,
        k: int = DEFAULT_K,
        min_score: float | None = None,
        mode: str = DEFAULT_MODE,
        section: str | None = None,
        weights: HybridWeights = DEFAULT_WEIGHTS,
    ) -> SearchResult:
        """`search` of an encoded query; `weights` other than the shipped ones are for evaluation."""
        return search(
            self.stored,
            query,
            k,
            min_score,
            mode,
            self.no_match_model,
            section,
            remainder=self.remainder,
            weights=weights,
        )

    def search(
        self,
        query: str,
        k: int = DEFAULT_K,
        min_score: float | None = None,
        mode: str = DEFAULT_MODE,
        section: str | None = None,
    ) -> SearchResult:
        encoded = self.encode([query])[0]
        if isinstance(encoded, QueryError):
            raise encoded
        return self.search_encoded(encoded, k, min_score, mode, section)

    @property
    def generation(self) -> str:
        """The loaded generation's name: its folder, or its id in PostgreSQL."""
        return str(getattr(self.stored, "generation", None) or Path(self.stored.path).name)

    @property
    def query_log(self) -> QueryLog | None:
        """The index's query log (querylog.py), opened on first use; None when INDEXER_QUERY_LOG=off."""
        from indexer.usage.querylog import QueryLogError, open_query_log

        if self._query_log is None:
            folder = self.stored.path.parent if isinstance(self.stored, StoredIndex) else None
            store = self.store or (FaissStore(folder) if folder else None)
            if store is None:  # a PostgreSQL index made without `open`: its database is not known here
                raise QueryLogError("this index has no known store for a query log; open it with QAIndex.open")
            self._query_log = open_query_log(store)
        return self._query_log

    def log_search(self, result: SearchResult, notify: Callable[[str], None] | None = None) -> int | None:
        """Record a search in the query log; its row id for `query_log.feedback(row, ...)`, or None when
        logging is off or fails (`notify` gets one line, default: the `indexer` logger; never raises)."""
        from indexer.usage.querylog import record_search, warn

        confidence = (
            float(1 - self.no_match_model.probability(np.asarray(result.evidence))[0]) if result.evidence else None
        )
        return record_search(lambda: self.query_log, result, self.generation, confidence, notify or warn)

    def search_many(
        self,
        queries: list[str],
        k: int = DEFAULT_K,
        min_score: float | None = None,
        mode: str = DEFAULT_MODE,
        section: str | None = None,
    ) -> list[SearchResult | QueryError]:
        """One result per query, in order (a query with nothing to search for gives its error), on every core.

        Queries are sorted by length (less padding) and cut into chunks, each cleaned, embedded and searched
        by one worker (`search.search_many`: a small index scores a chunk's queries together, reading its
        vectors once): onnxruntime, numpy and FAISS let go of the GIL, so workers run side by side on one
        shared, one-thread encoder. The results are those `search` gives one by one.
        """
        if not queries:
            return []
        from threadpoolctl import threadpool_limits  # here: a single query never needs it

        _ = self.encoder, self.lexical, self.stored.position_of  # made once, before the workers share them
        remainder = self.remainder
        order = sorted(range(len(queries)), key=lambda i: len(queries[i]))
        chunks = [order[start : start + BATCH_CHUNK] for start in range(0, len(order), BATCH_CHUNK)]

        def run(chunk: list[int]) -> list[SearchResult | QueryError]:
            encoded = self.encode([queries[i] for i in chunk])
            valid = [item for item in encoded if not isinstance(item, QueryError)]
            found = iter(
                search_many(self.stored, valid, k, min_score, mode, self.no_match_model, section, remainder=remainder)
            )
            return [item if isinstance(item, QueryError) else next(found) for item in encoded]

        # BLAS on one thread per worker: two workers each asking OpenBLAS for every core ran the batch at half
        # speed (10,000 entries: 3.4-3.8 ms a query against 6.8-7.0 ms).
        with (
            threadpool_limits(1, user_api="blas"),
            ThreadPoolExecutor(max_workers=min(usable_cores(), len(chunks))) as pool,
        ):
            found = dict(
                zip(itertools.chain.from_iterable(chunks), itertools.chain.from_iterable(pool.map(run, chunks)))
            )
        return [found[i] for i in range(len(queries))]

    def topics(self) -> list[Topic]:
        from indexer.analysis.topics import topics

        if self._topics is None:
            self._topics = topics(self.stored)
        return self._topics

    def duplicates(self, min_score: float | None = None) -> list[Duplicate]:
        from indexer.analysis.topics import DUPLICATE_MIN_SCORE, near_duplicates

        threshold = DUPLICATE_MIN_SCORE if min_score is None else min_score
        if threshold not in self._duplicates:
            self._duplicates[threshold] = near_duplicates(self.stored, threshold)
        return self._duplicates[threshold]

    def hints(self, record_id: RecordId, k: int = 3) -> list[Hit]:
        """Answered entries that best cover an entry, e.g. for whoever writes its missing answer."""
        return self.related(record_id, k=k, answered_only=True)

    def hints_many(self, record_ids: Sequence[RecordId], k: int = 3) -> list[list[Hit]]:
        """`hints` of many entries (every missing one) with one batched search and one batched scoring: at
        100,000 entries `missing --json` takes 2.3 s with the 10,064 missing entries' hints, where it took
        13 s with one search each (docs/benchmarks.md)."""
        return related_many(self.stored, record_ids, k, answered_only=True)

    def sections(self) -> list[str]:
        """Section names in document order (entries outside any section are not listed)."""
        return list(dict.fromkeys(name for name in field_values(self.records, "section") if name))

    def related(self, record_id: RecordId, k: int = DEFAULT_K, answered_only: bool = False) -> list[Hit]:
        return related(self.stored, record_id, k, answered_only)

    def missing(self) -> list[Record]:
        return missing_answers(self.records)

    def link_only(self) -> list[Record]:
        return link_only_answers(self.records)

    def record(self, record_id: RecordId) -> Record:
        return self.records[self.stored.position_of[record_id]]

    def find(self, shown_id: str) -> Record | None:
        """The entry whose id reads `shown_id` as the app and CLI show it ("17", or "faq.md#12" when the
        index spans several files), or None: a link from a URL may name any id."""
        text = shown_id.strip()
        keys = (int(text), text) if text.isascii() and text.isdigit() else (text,)
        position = next((self.stored.position_of[key] for key in keys if key in self.stored.position_of), None)
        return None if position is None else self.records[position]
