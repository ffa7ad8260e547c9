"""What a build takes over from the previous generation, so that a rebuild costs what changed.

- The parse of each Markdown source, where an edit did not reach: only the entries it touched are read
  again (documents/incremental.py, from the map the previous build kept of each source).
- Vectors, by text key: any question or answer text embedded before with the same model.
- A question line seen before keeps its clean question, and an answer seen before its status: the
  parser does not derive them again (both depend on that text alone).
- Entries whose question line and answer are both exactly as before keep the text keys of their
  rows (their plain texts are not made again) and their lexical tokens (the previous lexical index
  is updated, not rebuilt).
- The rows' origins, so that the store can update the vector index it built over the previous rows
  (an inverted file) instead of building it again.

All of it is a cache. Without a usable previous generation (none, corrupt, another parser or tokenizer
version, another model for the keys) a build derives everything itself and gets the same index;
tests/test_build.py checks that both ways agree.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from indexer.documents.incremental import PreviousFile
from indexer.documents.parse import Known
from indexer.documents.records import Record, field_values
from indexer.documents.text import answer_text
from indexer.errors import IndexerError
from indexer.retrieval.lexical import LEXICAL_VERSION, LexicalIndex
from indexer.retrieval.nomatch import FEATURES
from indexer.retrieval.tokens import entry_tokens
from indexer.stores.base import LoadedIndex, Store, StoredRows

UNKNOWN = -2  # in `kept_positions`' input: an entry whose previous position, if any, is found by its text


@dataclass
class PreviousBuild:
    index: LoadedIndex | None
    model_fp: str
    parser_version: int

    @classmethod
    def load(cls, store: Store, model_fp: str, parser_version: int) -> PreviousBuild:
        try:
            return cls(store.load(), model_fp, parser_version)
        except IndexerError:
            return cls(None, model_fp, parser_version)  # nothing usable: derive everything

    @property
    def _previous(self) -> LoadedIndex:
        """The previous generation, for the methods that run only once `_same_parser` or `_same_model` held."""
        assert self.index is not None
        return self.index

    @functools.cached_property
    def _columns(self) -> dict[str, list]:
        """The previous records' texts and statuses, decoded once for `known` and `kept_positions`."""
        records = self._previous.records
        return {name: field_values(records, name) for name in ("question_raw", "question", "answer", "status")}

    def release(self) -> None:
        """Done reading: close the previous generation (a database reader holds it open)."""
        close = getattr(self.index, "close", None)
        if close is not None:
            close()
        self.index = None

    @property
    def _same_parser(self) -> bool:
        return self.index is not None and self.index.manifest.get("parser_version") == self.parser_version

    @property
    def _same_model(self) -> bool:
        return self.index is not None and self.index.manifest.get("model_fingerprint") == self.model_fp

    def calibrated_no_match(self) -> dict | None:
        """The no-match parameters the previous generation was calibrated with from its readers' feedback,
        if any and if they are for the features and the model in use (a rebuild must not lose them; another
        model's cosines are on another scale, so its parameters do not carry over)."""
        saved = self.index.manifest.get("no_match") if self.index is not None and self._same_model else None
        if saved and saved.get("fitted_on") == "feedback" and saved.get("features") == list(FEATURES):
            return saved
        return None

    def known(self) -> Known | None:
        return Known.from_columns(self._columns) if self._same_parser else None

    def parse_maps(self) -> dict[str, PreviousFile]:
        """The previous build's map of each Markdown source, with its records then: a parse reads again
        only what changed since (documents/incremental.py). Empty from another parser version."""
        parse_map = self.index.parse_map if self.index is not None and self._same_parser else None
        return parse_map.previous(self._previous.records) if parse_map is not None else {}

    def stored_rows(self) -> StoredRows | None:
        """The previous rows and their vectors, when embedded with this model."""
        return self.index.stored_rows(self.model_fp) if self.index is not None else None

    def kept_positions(self, records: Sequence[Record], known: np.ndarray) -> np.ndarray:
        """Per new record, the position of the same entry text in the previous index, or -1.

        `known` holds what the parse found out already: a previous position (the same text), -1 (another
        text), or `UNKNOWN`, for an entry looked up by its text. Each previous entry is claimed once: a
        repeated entry takes it over only the first time.
        """
        if not self._same_parser:
            return np.full(len(records), -1, dtype=np.int64)
        kept = np.where(known == UNKNOWN, -1, known)
        looked_up = np.flatnonzero(known == UNKNOWN).tolist()
        if looked_up:
            claimed = set(known[known >= 0].tolist())
            unclaimed: dict[tuple[str, str], int] = {}
            for position, text in enumerate(zip(self._columns["question_raw"], self._columns["answer"])):
                if position not in claimed:
                    unclaimed.setdefault(text, position)
            for i in looked_up:
                found = unclaimed.pop((records[i].question_raw, records[i].answer), None)
                if found is not None:
                    kept[i] = found
        return kept

    def lexical(self, records: Sequence[Record], kept: np.ndarray, plain_answer: Callable[[int], str]) -> LexicalIndex:
        """The lexical index of `records`: the previous one updated when it can be, else built anew."""
        previous = (
            self._previous.lexical
            if self._same_parser and self._previous.manifest.get("lexical_version") == LEXICAL_VERSION
            else None
        )
        added = {i: entry_tokens(records[i].question, plain_answer(i)) for i in np.flatnonzero(kept < 0).tolist()}
        if previous is not None and previous.size == len(self._previous.records):
            claimed = np.zeros(previous.size, dtype=bool)
            claimed[kept[kept >= 0]] = True
            old = self._previous.records
            removed = [entry_tokens(old[p].question, answer_text(old[p])) for p in np.flatnonzero(~claimed).tolist()]
            try:
                updated = previous.updated(kept, added, removed)
            except (IndexError, ValueError):
                updated = None  # arrays that pass their checksum but do not fit: a cache, so start over
            if updated is not None:
                return updated
        return LexicalIndex.from_entries(
            [added[i] if i in added else entry_tokens(r.question, plain_answer(i)) for i, r in enumerate(records)]
        )
