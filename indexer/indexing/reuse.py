"""What a build takes over from the previous generation, so that a rebuild costs what changed.

- Vectors, by text key: any question or answer text embedded before with the same model.
- A question line seen before keeps its clean question, and an answer seen before its status: the
  parser does not derive them again (both depend on that text alone).
- Entries whose question line and answer are both exactly as before keep the text keys of their
  rows (their plain texts are not made again) and their lexical tokens (the previous lexical index
  is updated, not rebuilt).

All of it is a cache. Without a usable previous generation (none, corrupt, another parser or tokenizer
version, another model for the keys) a build derives everything itself and gets the same index;
tests/test_build.py checks that both ways agree.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from indexer.documents.parse import Known
from indexer.documents.records import Record, field_values
from indexer.documents.text import answer_text
from indexer.errors import IndexerError
from indexer.retrieval.lexical import LEXICAL_VERSION, LexicalIndex
from indexer.retrieval.nomatch import FEATURES
from indexer.retrieval.tokens import entry_tokens
from indexer.stores.base import LoadedIndex, Store

EntryKeys = tuple[str, str | None]  # text keys of an entry's question row and answer row (None: no answer row)


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

    def vectors(self) -> dict[str, np.ndarray]:
        return self.index.cached_vectors(self.model_fp) if self.index is not None else {}

    def kept_positions(self, records: list[Record]) -> np.ndarray:
        """Per new record, the position of the same entry text in the previous index, or -1.

        Each previous entry is claimed once: a repeated entry takes it over only the first time.
        """
        kept = np.full(len(records), -1, dtype=np.int64)
        if not self._same_parser:
            return kept
        unclaimed: dict[tuple[str, str], int] = {}
        for position, text in enumerate(zip(self._columns["question_raw"], self._columns["answer"])):
            unclaimed.setdefault(text, position)
        for i, record in enumerate(records):
            claimed = unclaimed.pop((record.question_raw, record.answer), None)
            if claimed is not None:
                kept[i] = claimed
        return kept

    def entry_keys(self, kept: np.ndarray) -> dict[int, EntryKeys]:
        """New record position → its rows' text keys, for the kept entries (keys embed the model)."""
        if not self._same_model or not (kept >= 0).any():
            return {}
        previous = self._previous.entry_keys()
        return {i: previous[p] for i, p in enumerate(kept.tolist()) if p >= 0}

    def lexical(self, records: list[Record], kept: np.ndarray, plain_answer: Callable[[int], str]) -> LexicalIndex:
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
