"""Query vector → scored entries; entry → related entries; the list of missing answers.

Scoring (dense): every entry has a question vector and, when its answer has words, an answer vector.
An entry's `score` is the cosine of its best-matching field: max(question cosine, answer cosine).
`matched_on` names that field, or `both` when the two are within `BOTH_MARGIN` of each other.
Entries with missing answers compete on their question alone and are returned flagged.

Exactness: for the top k entries under max-fusion it is enough to look at the top 2k rows of the
vector index (each entry owns at most two rows), so large indexes are searched through FAISS and only
those candidates are scored in full; small ones are scored exhaustively with one matrix product.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np

from .errors import QueryError
from .records import Hit, Record, RecordId
from .store import StoredIndex

DEFAULT_K = 5
DEFAULT_MIN_SCORE = 0.35
BOTH_MARGIN = 0.05
MAX_QUERY_CHARS = 2000  # well past the model's 256 tokens; longer queries are cut with a note
_EXHAUSTIVE_ROWS = 20_000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class SearchResult:
    query: str
    hits: list[Hit]  # entries scoring at least the minimum, best first
    nearest: list[Hit]  # the best k entries whatever their score (shown greyed when nothing passes)
    no_match: bool
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The stable JSON shape of `search --json` (CLI contract)."""
        return {"query": self.query, "no_match": self.no_match, "results": [h.to_dict() for h in self.hits]}


def clean_query(query: str) -> tuple[str, list[str]]:
    """Normalise a typed query; refuse one with nothing to search for, cut one that is far too long."""
    text = unicodedata.normalize("NFC", _CONTROL.sub(" ", query))
    text = " ".join(text.split())
    if not text:
        raise QueryError("the query is empty: type a question or a few keywords")
    if not any(ch.isalnum() for ch in text):
        raise QueryError("the query has no letters or digits to search for")
    notes = []
    if len(text) > MAX_QUERY_CHARS:
        text = text[:MAX_QUERY_CHARS]
        notes.append(f"query cut to its first {MAX_QUERY_CHARS} characters (the model reads at most 256 tokens)")
    return text, notes


def field_scores(index: StoredIndex, query_vector: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Question and answer cosines of the given record positions (answer is NaN where there is none)."""
    question = index.vectors[index.question_row[positions]] @ query_vector
    answer_rows = index.answer_row[positions]
    answer = np.full(len(positions), np.nan, dtype=np.float32)
    has_answer = answer_rows >= 0
    answer[has_answer] = index.vectors[answer_rows[has_answer]] @ query_vector
    return question, answer


def candidate_positions(index: StoredIndex, query_vector: np.ndarray, k: int) -> np.ndarray:
    """Record positions that can hold the top k entries (all of them for a small index)."""
    total = len(index.rows.fields)
    if total <= _EXHAUSTIVE_ROWS:
        return np.arange(len(index.records))
    _, rows = index.faiss_index.search(query_vector.reshape(1, -1).astype(np.float32), min(total, 2 * k + 10))
    rows = rows[0][rows[0] >= 0]  # FAISS pads with -1 when it finds fewer
    return np.unique(index.rows.positions[rows])


def score_entries(index: StoredIndex, query_vector: np.ndarray, positions: np.ndarray,
                  exclude: RecordId | None = None) -> list[Hit]:
    """Hits for the given positions, best first (ties by document order)."""
    question, answer = field_scores(index, query_vector, positions)
    hits = [_hit(index.records[p], float(q), None if np.isnan(a) else float(a))
            for p, q, a in zip(positions.tolist(), question, answer)]
    hits = [h for h in hits if h.record.id != exclude]
    return sorted(hits, key=lambda h: -h.rank_score)


def _hit(record: Record, question_score: float, answer_score: float | None) -> Hit:
    if answer_score is None or question_score - answer_score > BOTH_MARGIN:
        matched_on, score = "question", question_score
    elif answer_score - question_score > BOTH_MARGIN:
        matched_on, score = "answer", answer_score
    else:
        matched_on, score = "both", max(question_score, answer_score)
    return Hit(record, score, matched_on, question_score, answer_score, rank_score=score)


def search(index: StoredIndex, query_vector: np.ndarray, query: str, k: int = DEFAULT_K,
           min_score: float | None = None, notes: list[str] | None = None) -> SearchResult:
    """The k best entries for an encoded query; `no_match` when none reaches `min_score`."""
    if k < 1:
        raise QueryError("k must be at least 1")
    threshold = DEFAULT_MIN_SCORE if min_score is None else min_score
    nearest = score_entries(index, query_vector, candidate_positions(index, query_vector, k))[:k]
    hits = [h for h in nearest if h.score >= threshold]
    return SearchResult(query, hits, nearest, no_match=not hits, notes=list(notes or []))


def related(index: StoredIndex, record_id: RecordId, k: int = DEFAULT_K, answered_only: bool = False) -> list[Hit]:
    """The entries closest to entry `record_id`'s question, excluding itself (no re-embedding)."""
    position = index.position_of.get(record_id)
    if position is None:
        raise QueryError(f"no entry with id {record_id!r}")
    query_vector = index.vectors[index.question_row[position]]
    hits = score_entries(index, query_vector, candidate_positions(index, query_vector, 2 * k + 2),
                         exclude=record_id)
    if answered_only:
        hits = [h for h in hits if h.record.has_answer]
    return hits[:k]


def missing_answers(records: list[Record]) -> list[Record]:
    return [r for r in records if r.status == "missing"]


def link_only_answers(records: list[Record]) -> list[Record]:
    return [r for r in records if r.status == "link_only"]


def parse_record_id(text: str, records: list[Record]) -> RecordId:
    """An id typed by a user: an int for single-file corpora, 'file.md#12' otherwise."""
    ids = {str(r.id): r.id for r in records}
    if text in ids:
        return ids[text]
    raise QueryError(f"no entry with id {text!r} (ids run like {', '.join(list(ids)[:3])}, ...)")
