"""The store interface, written down once: what the core (build, search, topics, the engine) may use of
a store and of the index it loads. Two implementations stand behind it: `disk.FaissStore` (an index
folder, FAISS) and `postgres.PgStore` (PostgreSQL + pgvector); `tests/test_pgstore.py` runs one
battery of store tests against both.

Vector contract, for every implementation: vectors are L2-normalised float32, so an inner product is
a cosine in [-1, 1], higher is more similar. A record's *position* is its index in `records`; each
record owns one question row and, when its answer has words, one answer row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from indexer.documents.records import Record, RecordId

if TYPE_CHECKING:
    from pathlib import Path

    from indexer.documents.incremental import ParseMap
    from indexer.retrieval.lexical import LexicalIndex
    from indexer.stores.tables import RowTable


@dataclass(frozen=True)
class StoredRows:
    """A generation's rows with their vectors, and per record its question row and answer row (-1 for
    none): what the next build takes over from it."""

    rows: RowTable
    vectors: np.ndarray  # (rows, dimension), the caller's own: a build may change rows in place
    question_row: np.ndarray
    answer_row: np.ndarray


@dataclass(frozen=True)
class RowOrigins:
    """Where a new generation's rows come from: row i has the vector of row `origin[i]` of `generation`
    (the same text embedded by the same model), or is new where -1. A store may use it to update what it
    built over `generation` instead of building it again."""

    generation: LoadedIndex
    origin: np.ndarray


class LoadedIndex(Protocol):
    """A loaded, verified generation of an index."""

    # Read-only (properties), so an implementation may hold a list, a column table or a cached value.
    @property
    def manifest(self) -> dict:
        """Format version, model, dimension, counts, sources, the no-match parameters."""

    @property
    def records(self) -> Sequence[Record]:
        """In document order: position i is records[i]."""

    @property
    def path(self) -> Path | str:
        """Where the loaded generation lives: its folder, or the database location with its generation."""

    @property
    def lexical(self) -> LexicalIndex | None:
        """The saved lexical index; None for a generation written before they were saved (format 1)."""

    @property
    def position_of(self) -> Mapping[RecordId, int]: ...

    @property
    def row_count(self) -> int:
        """Question rows plus answer rows."""

    def is_current(self) -> bool:
        """Still the store's current generation: cheap enough to ask on every app rerun."""

    def field_cosines(self, query_vectors: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best question and answer cosines over the query vectors (m, d) for these record positions;
        the answer cosine is NaN where a record has no answer row."""

    def field_cosines_each(
        self, query_vector_sets: Sequence[np.ndarray], positions: np.ndarray
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """`field_cosines` of each set of query vectors (many queries scored on the same positions at once)."""

    def field_cosines_paired(self, query_vectors: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, c) question and answer cosines of query vector i (n, d) with each of its own record
        `positions[i]` (n, c), for many one-vector queries that each have their own few candidates;
        a position of -1 is padding, NaN in both. Equal to `field_cosines` to float32 rounding (~1e-7)."""

    def nearest_positions(self, query_vectors: np.ndarray, depth: int) -> np.ndarray:
        """Record positions owning the `depth` nearest rows of any query vector (approximate for large
        indexes; callers score the candidates exactly with `field_cosines`)."""

    def nearest_positions_each(self, query_vectors: np.ndarray, depth: int) -> list[np.ndarray]:
        """Per query vector, the record positions owning its `depth` nearest rows (for many queries at once)."""

    def question_vector(self, position: int) -> np.ndarray: ...

    def entry_vectors(self) -> np.ndarray:
        """One normalised vector per record (question and answer combined), for topics and duplicates."""

    def stored_rows(self, model_fp: str) -> StoredRows | None:
        """The rows and their vectors when they were embedded with this model, else None."""

    @property
    def parse_map(self) -> ParseMap | None:
        """How the records were parsed (documents/incremental.py), when the store keeps it."""


class Store(Protocol):
    """Where generations of one index live: read, write atomically, serialise builds."""

    location: str  # for messages: a folder or a database URL with its index name
    format_version: int  # the format it writes: a generation of an older one is rebuilt (stale_reason)

    def read_manifest(self) -> dict | None:
        """The current generation's manifest, None when there is no index yet."""

    def load(self) -> LoadedIndex:
        """The current generation, verified; IndexerError subclasses when missing, stale or corrupt."""

    def verify(self) -> None:
        """Check the current generation byte for byte, beyond what `load` checks (slow: reads it all);
        IndexCorruptError when damaged, IndexMissingError when there is none."""

    def lock(self) -> AbstractContextManager[None]:
        """Held by a build, so two builds of one index never interleave."""

    def write(
        self,
        records: Sequence[Record],
        rows: RowTable,
        vectors: np.ndarray,
        manifest: dict,
        lexical: LexicalIndex,
        *,
        parse_map: ParseMap | None = None,
        origins: RowOrigins | None = None,
    ) -> None:
        """A new generation, made current in one atomic step; readers see the old or the new one. A store
        may keep `parse_map` for the next build, and use `origins` to update its vector index."""
