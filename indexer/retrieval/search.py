"""Encoded query → ranked, scored entries; entry → related entries; the list of missing answers.

Every entry has a question vector and, when its answer has words, an answer vector; its dense score
is the cosine of its best-matching field, max(question cosine, answer cosine), and `matched_on` names
that field, or `both` when the two are within `BOTH_MARGIN` of each other (the field cosines stay
available as `question_score` and `answer_score`). Entries with missing answers compete on their
question and come flagged.

The `score` shown is the value results are sorted by, so the list always reads in order. In the
default mode, `hybrid`, it is `(dense + OTHER_FIELD_WEIGHT × other + LEXICAL_WEIGHT × coverage) /
(1 + OTHER_FIELD_WEIGHT + LEXICAL_WEIGHT)` (`hybrid_scores`), where `other` is the cosine of the entry's
other field (its question again when it has no answer) and coverage is the IDF-weighted share of the
query's words (typos corrected) that the entry contains (lexical.py): at most 1 (both fields and every
word match). In the `dense`, `question` and `answer` modes it is that cosine; in `bm25` and `rrf`
their own values. Whether there is a good match at all, and how
confident the answer is, is decided by `nomatch.py`, not by the order.

Exactness: for the top k entries under max-fusion it is enough to look at the top 2k rows of the
vector index (each entry owns at most two rows), so large indexes are searched through FAISS and only
those candidates are scored in full; small ones are scored exhaustively with one matrix product.
`search_many` scores many queries of a small index together, with the results `search` gives each.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from indexer.defaults import DEFAULT_K, DEFAULT_MIN_SCORE, DEFAULT_MODE, MODES
from indexer.documents.records import Hit, Record, RecordId, field_values
from indexer.documents.selection import section_positions
from indexer.errors import QueryError
from indexer.retrieval.embed import TokenStates
from indexer.retrieval.lexical import LexicalMatch
from indexer.retrieval.nomatch import (
    DEFAULT_NO_MATCH,
    FEATURES,
    Confidence,
    NoMatchModel,
    query_word_feature,
)
from indexer.retrieval.remainder import Remainder, pooled_words
from indexer.stores.base import LoadedIndex

# How much the other field's cosine and lexical coverage add to the best field's cosine in `hybrid`:
# what `eval --suite` chooses on the six documents of eval/suite.json (the best mean MRR@10 over a grid;
# without any one document, five of six choices are these too; docs/quality.md). An entry whose question
# and answer both match is a safer first result than one matched by a single field.
OTHER_FIELD_WEIGHT = 0.2
LEXICAL_WEIGHT = 0.3
_RRF_K = 60
BOTH_MARGIN = 0.05  # two field cosines this close are the same evidence: the card says "question and answer"
MAX_QUERY_CHARS = 2000  # well past the model's 256 tokens; longer queries are cut with a note
_EXHAUSTIVE_ROWS = 20_000
SPREAD_SAMPLE = 500  # entries a query's mean cosine is measured on: stable (±3 %) at a fixed, small cost
# Candidates from the vector index for the top k: each entry owns at most two rows, so 2k rows hold
# them under max-fusion; 10 more leave room for lexical coverage to lift an entry just below.
_CANDIDATE_SLACK = 10
_QUERY_WORD = re.compile(r"[^\W_]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class HybridWeights:
    """What `hybrid` adds to the best field's cosine: the other field's cosine and lexical coverage, each
    times its weight (`hybrid_scores`). Evaluation tries others (analysis/evaluate.py)."""

    other_field: float = OTHER_FIELD_WEIGHT
    lexical: float = LEXICAL_WEIGHT


DEFAULT_WEIGHTS = HybridWeights()


@dataclass(frozen=True)
class SearchResult:
    query: str
    hits: list[Hit]  # entries scoring at least the minimum, best first
    nearest: list[Hit]  # the best k entries whatever their score (shown greyed when nothing passes)
    no_match: bool
    notes: list[str] = field(default_factory=list)
    evidence: tuple[float, ...] = ()  # the no-match features of this result (nomatch.FEATURES)
    below_minimum: bool = False  # the caller's minimum score, not the no-match model, emptied `hits`
    confidence: Confidence = "no good match"  # nomatch.CONFIDENCE_LEVELS; "no good match" exactly when no_match

    def to_dict(self) -> dict:
        """The stable JSON shape of `search --json` (CLI contract)."""
        return {
            "query": self.query,
            "no_match": self.no_match,
            "confidence": self.confidence,
            "results": [h.to_dict() for h in self.hits],
        }


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


@dataclass(frozen=True)
class EncodedQuery:
    """A cleaned query with its vectors (the text as typed and, if typos were corrected, the corrected
    text) and its lexical match against the corpus."""

    text: str
    vectors: np.ndarray  # (m, dimension): an entry's field score is its best cosine over these
    lexical: LexicalMatch
    notes: list[str] = field(default_factory=list)
    states: TokenStates | None = None  # the typed text's token states, when the encoder keeps them (remainder.py)


def field_scores(index: LoadedIndex, query_vectors: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Question and answer cosines of the given record positions (answer is NaN where there is none)."""
    return index.field_cosines(np.atleast_2d(query_vectors), positions)


def candidate_positions(
    index: LoadedIndex, query_vectors: np.ndarray, k: int, lexical: LexicalMatch | None = None
) -> np.ndarray:
    """Record positions that can hold the top k entries (all of them for a small index): the nearest
    rows' records, and with `lexical` the records of best BM25 score."""
    every = _every_position(index)
    if every is not None:
        return every
    found = [index.nearest_positions(np.atleast_2d(query_vectors), min(index.row_count, row_depth(k)))]
    if lexical is not None:
        found.append(lexical.best(row_depth(k)))
    return np.unique(np.concatenate(found))


def _every_position(index: LoadedIndex) -> np.ndarray | None:
    """Every record position when the index is small enough to score exhaustively, else None."""
    return np.arange(len(index.records)) if index.row_count <= _EXHAUSTIVE_ROWS else None


def row_depth(k: int) -> int:
    """Nearest rows that hold the top k entries (each entry owns at most two rows), with a margin."""
    return 2 * k + _CANDIDATE_SLACK


def dense_scores(question: np.ndarray, answer: np.ndarray) -> np.ndarray:
    """Each entry's best field cosine (an entry without an answer has only its question)."""
    return np.fmax(question, np.nan_to_num(answer, nan=-1.0))


def rank_scores(
    mode: str,
    question: np.ndarray,
    answer: np.ndarray,
    lexical: LexicalMatch | None,
    positions: np.ndarray,
    weights: HybridWeights = DEFAULT_WEIGHTS,
) -> np.ndarray:
    """The value each mode orders entries by (higher first); see `MODES`."""
    dense = dense_scores(question, answer)
    if mode == "dense":
        return dense
    if mode == "question":
        return question
    if mode == "answer":
        return np.nan_to_num(answer, nan=-1.0)
    if lexical is None:
        raise QueryError(f"mode {mode!r} needs the lexical index")
    if mode == "bm25":
        return lexical.scores[positions]
    if mode == "rrf":
        return _reciprocal_rank(dense) + _reciprocal_rank(lexical.scores[positions])
    if mode == "hybrid":
        return hybrid_scores(question, answer, lexical.coverage[positions], weights)
    raise QueryError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")


def hybrid_scores(
    question: np.ndarray, answer: np.ndarray, coverage: np.ndarray, weights: HybridWeights = DEFAULT_WEIGHTS
) -> np.ndarray:
    """The `hybrid` order (module docstring): the best field's cosine, plus `weights.other_field` × the
    other field's, plus `weights.lexical` × coverage, scaled so that a perfect match scores 1. A missing
    answer counts as half its question's cosine: less than an answer that fits the query about as well as
    the question does (that entry answers it), more than one that fits it badly."""
    other = np.where(np.isnan(answer), question / 2, np.fmin(question, answer))
    total = dense_scores(question, answer) + weights.other_field * other + weights.lexical * coverage
    return total / (1 + weights.other_field + weights.lexical)


def _reciprocal_rank(scores: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(scores))
    ranks[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    return 1 / (_RRF_K + ranks)


def score_entries(
    index: LoadedIndex,
    query_vectors: np.ndarray,
    positions: np.ndarray,
    mode: str = "dense",
    lexical: LexicalMatch | None = None,
    limit: int | None = None,
    fields: tuple[np.ndarray, np.ndarray] | None = None,
    weights: HybridWeights = DEFAULT_WEIGHTS,
) -> list[Hit]:
    """The best `limit` hits among the given positions (all when None), best first by the mode's order;
    ties go to the entry earlier in the document. Only the chosen few become `Hit` objects. `fields`:
    the positions' `field_scores`, when the caller has them already."""
    question, answer = fields if fields is not None else field_scores(index, query_vectors, positions)
    order = rank_scores(mode, question, answer, lexical, positions, weights)
    chosen = np.arange(len(order))
    if limit is not None and limit < len(order):
        # every entry tied with the limit-th best stays in the running: the earlier entries win the ties
        bar = order[np.argpartition(-order, limit - 1)[limit - 1]]
        chosen = np.flatnonzero(order >= bar)
    chosen = chosen[np.lexsort((positions[chosen], -order[chosen]))][:limit]
    return [
        _hit(
            index.records[positions[i]],
            float(question[i]),
            _or_none(answer[i]),
            float(order[i]),
        )
        for i in chosen.tolist()
    ]


def _hit(record: Record, question_score: float, answer_score: float | None, rank_score: float) -> Hit:
    matched_on: Literal["question", "answer", "both"]
    if answer_score is None or question_score - answer_score > BOTH_MARGIN:
        matched_on = "question"
    elif answer_score - question_score > BOTH_MARGIN:
        matched_on = "answer"
    else:
        matched_on = "both"
    return Hit(record, rank_score, matched_on, question_score, answer_score, rank_score=rank_score)


def spread_positions(record_count: int) -> np.ndarray:
    """An even sample of at most `SPREAD_SAMPLE` record positions, the same for every query."""
    return np.unique(np.linspace(0, record_count - 1, min(record_count, SPREAD_SAMPLE)).astype(np.int64))


def mean_dense_score(index: LoadedIndex, query_vectors: np.ndarray) -> float:
    """The query's mean dense score (max of question and answer cosine) over the entries, measured on
    `spread_positions`, so a large index costs no more than 500 entries' worth."""
    return mean_dense_scores(index, [np.atleast_2d(query_vectors)])[0]


def mean_dense_scores(index: LoadedIndex, query_vector_sets: Sequence[np.ndarray]) -> list[float]:
    """`mean_dense_score` of each query, the sample's rows scored for all of them at once."""
    if not index.records:
        return [0.0] * len(query_vector_sets)
    fields = index.field_cosines_each(query_vector_sets, spread_positions(len(index.records)))
    return [float(dense_scores(question, answer).mean()) for question, answer in fields]


def no_match_features(
    query: EncodedQuery, top: Hit | None, index: LoadedIndex, gap_to_mean: float, remainder_gap: float
) -> np.ndarray:
    """The evidence `nomatch.py` weighs, about the top-ranked hit (see `nomatch.FEATURES`); `gap_to_mean`
    is the best dense score minus the query's mean over the document, `remainder_gap` see `remainder_gaps`."""
    if top is None:
        return np.zeros(len(FEATURES))
    return np.array(
        [
            top.score,
            gap_to_mean,
            float(query.lexical.coverage[index.position_of[top.record.id]]),
            query.lexical.unknown_share,
            remainder_gap,
            query_word_feature(len(_QUERY_WORD.findall(query.text))),
        ]
    )


@dataclass(frozen=True)
class _Ranked:
    """A query's best entries, before the no-match decision."""

    query: EncodedQuery
    ranked: list[Hit]  # the best max(k, 2), best first
    gap: float  # the best dense score over the candidates minus the query's mean over the document


def remainder_gaps(index: LoadedIndex, rankeds: Sequence[_Ranked], remainder: Remainder | None) -> list[float]:
    """Per ranked query, how far its best entry stands above the document's mean for the query's words
    that entry does not contain (remainder.py). When the entry contains them all, or without a
    `remainder` (no encoder at hand), the whole query's gap stands in: nothing is left that the entry
    fails to explain. (Here rather than in remainder.py, which search.py's scoring would otherwise have
    to import back.)"""
    gaps = [ranked.gap for ranked in rankeds]
    tops = [index.position_of[r.ranked[0].record.id] if r.ranked else -1 for r in rankeds]
    words = [
        remainder.words(ranked.query.lexical, top) if remainder is not None and top >= 0 else []
        for ranked, top in zip(rankeds, tops)
    ]
    wanted = [(i, left) for i, left in enumerate(words) if left]
    if remainder is None or not wanted:
        return gaps
    vectors = _remainder_vectors(remainder, [(rankeds[i].query, left) for i, left in wanted])
    means = mean_dense_scores(index, [vectors[j : j + 1] for j in range(len(wanted))])
    for j, (i, _) in enumerate(wanted):
        question, answer = field_scores(index, vectors[j : j + 1], np.array([tops[i]]))
        gaps[i] = float(dense_scores(question, answer)[0]) - means[j]
    return gaps


def _remainder_vectors(remainder: Remainder, leftovers: Sequence[tuple[EncodedQuery, list[str]]]) -> np.ndarray:
    """The vector of each query's leftover words: pooled from the query's token states (`pooled_words`),
    whatever the query's case and punctuation; else (no states kept, or a word the query did not type)
    embedded, all such texts in one call, or the query's own vector where those words are the query
    word for word (the same text the model would embed)."""
    pooled = [pooled_words(query.states, words) for query, words in leftovers]
    texts = [" ".join(words) for _, words in leftovers]
    fresh = [
        text for (query, _), text, vector in zip(leftovers, texts, pooled) if vector is None and text != query.text
    ]
    encoded = iter(np.atleast_2d(remainder.encode(fresh)) if fresh else ())
    return np.vstack(
        [
            vector if vector is not None else query.vectors[0] if text == query.text else next(encoded)
            for (query, _), text, vector in zip(leftovers, texts, pooled)
        ]
    )


def search(
    index: LoadedIndex,
    query: EncodedQuery,
    k: int = DEFAULT_K,
    min_score: float | None = None,
    mode: str = DEFAULT_MODE,
    no_match_model: NoMatchModel = DEFAULT_NO_MATCH,
    section: str | None = None,
    *,
    remainder: Remainder | None,
    weights: HybridWeights = DEFAULT_WEIGHTS,
) -> SearchResult:
    """The k best entries for an encoded query, and whether any of them is a good match.

    With `section`, only entries under that heading compete (scored exhaustively). `remainder` embeds
    what the query asks beyond its best entry, for the no-match evidence (`remainder_gaps`); it must be
    given (None only where no encoder is at hand), so that no caller decides with less evidence unawares."""
    _check_request(k, mode)
    ranked = _rank_alone(index, query, max(k, 2), mode, section, weights)
    (gap,) = remainder_gaps(index, [ranked], remainder)
    return _decide(index, ranked, gap, k, min_score, no_match_model)


def search_many(
    index: LoadedIndex,
    queries: Sequence[EncodedQuery],
    k: int = DEFAULT_K,
    min_score: float | None = None,
    mode: str = DEFAULT_MODE,
    no_match_model: NoMatchModel = DEFAULT_NO_MATCH,
    section: str | None = None,
    *,
    remainder: Remainder | None,
    weights: HybridWeights = DEFAULT_WEIGHTS,
) -> list[SearchResult]:
    """`search` of each query, in order, with the same results. Where every query scores the same positions
    (a small index, or a section), the store scores them all together (`field_cosines_each`, which reads
    the vectors once rather than once per query); each query then ranks its own scores as `search` does.
    Leftover words that cannot be pooled from a query's token states are embedded in one call."""
    _check_request(k, mode)
    depth = max(k, 2)
    shared = section_positions(index.records, section) if section else _every_position(index)
    if shared is None:  # a large index: each query has its own candidates from the vector index
        rankeds = [_rank_alone(index, query, depth, mode, None, weights) for query in queries]
    else:
        vector_sets = [np.atleast_2d(query.vectors) for query in queries]
        fields = index.field_cosines_each(vector_sets, shared)
        means = mean_dense_scores(index, vector_sets)
        rankeds = [
            _rank(index, query, shared, query_fields, mean, depth, mode, weights)
            for query, query_fields, mean in zip(queries, fields, means)
        ]
    gaps = remainder_gaps(index, rankeds, remainder)
    return [_decide(index, ranked, gap, k, min_score, no_match_model) for ranked, gap in zip(rankeds, gaps)]


def _check_request(k: int, mode: str) -> None:
    if k < 1:
        raise QueryError("k must be at least 1")
    if mode not in MODES:
        raise QueryError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")


def _rank_alone(
    index: LoadedIndex, query: EncodedQuery, depth: int, mode: str, section: str | None, weights: HybridWeights
) -> _Ranked:
    """`_rank` of one query over its own candidates (a section's entries, or what the vector index finds)."""
    positions = (
        section_positions(index.records, section)
        if section
        else candidate_positions(index, query.vectors, depth, query.lexical)
    )
    fields = field_scores(index, query.vectors, positions)
    return _rank(index, query, positions, fields, mean_dense_score(index, query.vectors), depth, mode, weights)


def _rank(
    index: LoadedIndex,
    query: EncodedQuery,
    positions: np.ndarray,
    fields: tuple[np.ndarray, np.ndarray],
    mean_dense: float,
    depth: int,
    mode: str,
    weights: HybridWeights,
) -> _Ranked:
    """The best `depth` of the candidate `positions`, whose field cosines are `fields`; `mean_dense` is the
    query's `mean_dense_score`."""
    ranked = score_entries(index, query.vectors, positions, mode, query.lexical, depth, fields, weights)
    # The best dense score over every candidate, so the evidence is the same whatever k is (and the
    # candidates always hold the entry owning the nearest row).
    return _Ranked(query, ranked, float(dense_scores(*fields).max(initial=-1.0)) - mean_dense)


def _decide(
    index: LoadedIndex,
    ranked: _Ranked,
    remainder_gap: float,
    k: int,
    min_score: float | None,
    no_match_model: NoMatchModel,
) -> SearchResult:
    """The result of a ranked query: whether any entry is a good match, and which hits to show."""
    query, threshold, nearest = ranked.query, DEFAULT_MIN_SCORE if min_score is None else min_score, ranked.ranked[:k]
    evidence = no_match_features(query, ranked.ranked[0] if ranked.ranked else None, index, ranked.gap, remainder_gap)
    confidence = no_match_model.confidence(evidence)
    no_match = confidence == "no good match"
    hits = [] if no_match else [h for h in nearest if h.score >= threshold]
    notes = list(query.notes)
    if query.lexical.corrected:
        notes.append("also searched for: " + ", ".join(f"{a} → {b}" for a, b in query.lexical.corrected.items()))
    below_minimum = not no_match and not hits and bool(nearest)
    if below_minimum:
        notes.append(
            f"no result reaches the minimum score {threshold:.2f} (the best scores {max(h.score for h in nearest):.2f})"
        )
    return SearchResult(
        query.text,
        hits,
        nearest,
        no_match=not hits,
        notes=notes,
        evidence=tuple(float(v) for v in evidence),
        below_minimum=below_minimum,
        confidence=confidence if hits else "no good match",
    )


def related(index: LoadedIndex, record_id: RecordId, k: int = DEFAULT_K, answered_only: bool = False) -> list[Hit]:
    """The entries closest to entry `record_id`'s question, excluding itself (no re-embedding)."""
    position = _position(index, record_id)
    query_vector = index.question_vector(position)[None, :]
    return _related_hits(
        index,
        position,
        query_vector,
        candidate_positions(index, query_vector, 4 * k + 10),
        k,
        _answered(index) if answered_only else None,
    )


def related_many(
    index: LoadedIndex, record_ids: Sequence[RecordId], k: int = DEFAULT_K, answered_only: bool = False
) -> list[list[Hit]]:
    """`related` for many entries at once (a hint for every missing entry): the candidates of all of them
    come from one batched search of the nearest rows and are scored together (`field_cosines_paired`),
    each entry's ranked as `related` ranks them (dense score, ties to the earlier entry)."""
    positions = np.asarray([_position(index, record_id) for record_id in record_ids], dtype=np.int64)
    if not len(positions):
        return []
    query_vectors = np.vstack([index.question_vector(position) for position in positions])
    candidates = _padded_unique(index.nearest_positions_each(query_vectors, row_depth(4 * k + 10)))
    keep = (candidates >= 0) & (candidates != positions[:, None])
    allowed = _answered(index) if answered_only else np.ones(len(index.records), dtype=bool)
    keep &= allowed[np.maximum(candidates, 0)]
    candidates = np.where(keep, candidates, -1)
    question, answer = index.field_cosines_paired(query_vectors, candidates)
    order = np.where(keep, dense_scores(question, answer), -np.inf)
    # best first, ties to the earlier entry; what is not kept (-inf) sorts last and is dropped
    ranked = np.lexsort((candidates, -order), axis=1)[:, :k]
    found = [
        [
            _hit(index.records[candidates[i, j]], float(question[i, j]), _or_none(answer[i, j]), float(order[i, j]))
            for j in row
            if keep[i, j]
        ]
        for i, row in enumerate(ranked.tolist())
    ]
    # Nearest rows crowded out by entries left out (unanswered near-duplicates) leave too few: those
    # entries are searched again alone, as `related` does (on a small index, over every entry).
    others = int(allowed.sum()) - allowed[positions]  # the entries each one's hits may come from
    return [
        hits if len(hits) >= min(k, int(n)) else related(index, record_id, k, answered_only)
        for record_id, hits, n in zip(record_ids, found, others)
    ]


def _padded_unique(position_lists: Sequence[np.ndarray]) -> np.ndarray:
    """(len(lists), longest) the distinct positions of each list, ascending, padded with -1 (at the end)."""
    lengths = np.fromiter((len(found) for found in position_lists), dtype=np.int64, count=len(position_lists))
    padded = np.full((len(position_lists), max(int(lengths.max(initial=0)), 1)), np.iinfo(np.int64).max)
    padded[np.arange(padded.shape[1]) < lengths[:, None]] = np.concatenate([*position_lists, np.zeros(0, np.int64)])
    padded.sort(axis=1)
    repeated = np.zeros(padded.shape, dtype=bool)
    repeated[:, 1:] = padded[:, 1:] == padded[:, :-1]
    padded[repeated] = np.iinfo(np.int64).max
    padded.sort(axis=1)
    return np.where(padded == np.iinfo(np.int64).max, -1, padded)


def _or_none(value: np.floating) -> float | None:
    return None if np.isnan(value) else float(value)


def _position(index: LoadedIndex, record_id: RecordId) -> int:
    position = index.position_of.get(record_id)
    if position is None:
        raise QueryError(f"no entry with id {record_id!r}")
    return position


def _answered(index: LoadedIndex) -> np.ndarray:
    """Per record position, whether it has an answer (`Record.has_answer`), without making the records."""
    return np.asarray(field_values(index.records, "status")) != "missing"


def _related_hits(
    index: LoadedIndex,
    position: int,
    query_vector: np.ndarray,
    positions: np.ndarray,
    k: int,
    answered: np.ndarray | None,
) -> list[Hit]:
    """The best k of `positions` for this entry's question vector, leaving out the entry itself and, given
    `answered`, the entries without an answer."""
    keep = positions != position
    if answered is not None:
        keep &= answered[positions]
    return score_entries(index, query_vector, positions[keep], limit=k)
