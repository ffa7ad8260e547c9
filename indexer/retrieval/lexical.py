"""Lexical evidence: BM25 over each entry's question and answer tokens (tokens.py), with typo-tolerant
query terms, and the index's arrays for saving and loading.

A query word the document never uses is joined with its neighbour or split in two when that gives
document words ("fire wall" → "firewall", "batchnorm" → "batch norm"), else replaced by the document
word closest to it in character trigrams and edit distance (when close enough, and never when the
model knows it as a real word), so "vanishng gradents" still finds "vanishing gradients". Pure
numpy: nothing heavy is imported.

Acronyms meet their spelled-out forms both ways: an entry saying "Generative Adversarial Network" also
holds the term "gan", and a query saying "you only look once" also asks for "yolo" when the document
uses that word.

Deliberately not here: dense vectors (search.py) and how lexical and dense evidence are fused.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexer.documents.records import Record
from indexer.documents.text import answer_texts
from indexer.retrieval.tokens import (
    STOPWORDS,
    WORD,
    EntryTokens,
    damerau_distance,
    entry_tokens,
    spelled_out,
    spelling_variants,
    stem,
    trigrams,
)

_K1, _B = 1.2, 0.75
# Without the model's vocabulary, only long words are corrected: "bake" is not a typo of "take".
_FUZZY_ONE_EDIT_LENGTH = 6
_FUZZY_TWO_EDITS_LENGTH = 10
# With it, real words are never corrected, so a non-word can be corrected from 4 letters ("gest" → "guest",
# "stroy" → "story") and by two edits from 8 ("normalisaton"); shorter non-words are acronyms or codes.
_VOCAB_ONE_EDIT_LENGTH = 4
_VOCAB_TWO_EDITS_LENGTH = 8
_COMPOUND_PART = 3  # the shortest part of a run-together word ("setupguide" → "setup guide", not "se tupguide")
LEXICAL_VERSION = 3  # bump when tokens change (tokens.py, or text.py's plain text): saved indexes are then rebuilt


class LexicalVersionError(ValueError):
    """Saved arrays come from another tokenizer version: build the index from the records instead."""


@dataclass
class LexicalMatch:
    scores: np.ndarray  # BM25 per record (question and answer fields, best of the two)
    terms: list[str]  # query terms after typo correction
    corrected: dict[str, str]  # typed word → document word used instead
    coverage: np.ndarray  # per record: IDF-weighted share of the query terms it contains, in [0, 1]
    unknown_share: float  # IDF-weighted share of the query terms no entry contains
    words: tuple[tuple[str, str], ...] = ()  # each query word as searched (typos corrected) with its term
    held: np.ndarray | None = None  # ascending positions of the records holding a query term (None: derived)

    def best(self, depth: int) -> np.ndarray:
        """Positions of up to `depth` records of highest BM25 score, among the records holding a query term
        (at a million entries, partitioning every record's score cost 4 ms a query). A record holds a term
        exactly when its BM25 is above 0 (every IDF is), so a match made without `held` derives it."""
        held = self.held if self.held is not None else np.flatnonzero(self.scores > 0)
        if len(held) <= depth:
            return held
        return held[np.argpartition(-self.scores[held], depth - 1)[:depth]]


@dataclass(frozen=True)
class Postings:
    """Term id → (record positions, counts) as compressed rows: term t owns `ids[starts[t]:starts[t + 1]]`."""

    starts: np.ndarray  # int64, one more than there are terms
    ids: np.ndarray  # int32 record positions, ascending within a term
    counts: np.ndarray  # float32 occurrences of the term in that record's field

    def of(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.starts[term], self.starts[term + 1]
        return self.ids[start:end], self.counts[start:end]


def _strings(blob: np.ndarray) -> list[str]:
    text = blob.tobytes().decode("utf-8")
    return text.split("\n") if text else []


def _blob(strings: list[str]) -> np.ndarray:
    return np.frombuffer("\n".join(strings).encode("utf-8"), dtype=np.uint8)


class LexicalIndex:
    """BM25 over each record's question and answer as two fields; a record scores its better field.

    Postings keep a query's cost proportional to how often its terms occur, not to the size of the
    corpus. The whole index is a handful of flat arrays (`to_arrays`), so a build stores it beside the
    vectors and a query process loads it instead of re-reading every text.
    """

    def __init__(
        self,
        size: int,
        terms: list[str],
        fields: list[Postings],
        lengths: list[np.ndarray],
        spellings: list[str],
        by_trigram: dict[str, np.ndarray],
        containing: np.ndarray,
        spelling_counts: np.ndarray | None = None,
    ) -> None:
        self.size = size
        self.terms = terms
        self.term_id = {term: i for i, term in enumerate(terms)}
        self.fields = fields
        self.lengths = lengths
        self.mean_lengths = [max(float(lengths.mean()), 1.0) if size else 1.0 for lengths in lengths]
        self.spellings = spellings  # the corpus's words as written, for typo correction
        self.spelling_counts = spelling_counts  # entries using each spelling: lets `updated` drop words
        self._by_trigram = by_trigram  # trigram → ids into `spellings`
        self.containing = containing
        self.idf = np.log(1 + (size - containing + 0.5) / (containing + 0.5))  # per term id

    @classmethod
    def from_records(cls, records: Sequence[Record], answers: list[str] | None = None) -> LexicalIndex:
        """`answers`: each record's answer as plain text ("" when missing), when the caller has them already."""
        if answers is None:
            answers = answer_texts(records)
        return cls.from_entries([entry_tokens(r.question, a) for r, a in zip(records, answers)])

    @classmethod
    def from_entries(cls, entries: list[EntryTokens]) -> LexicalIndex:
        return _assemble(
            len(entries),
            _Triples.of_entries(entries, range(len(entries))),
            Counter(itertools.chain.from_iterable(e.words for e in entries)),
        )

    def updated(
        self, kept: np.ndarray, added: dict[int, EntryTokens], removed: list[EntryTokens]
    ) -> LexicalIndex | None:
        """The index of a new corpus that reuses entries of this one, without re-reading them.

        `kept[i]` is the position in this index of new entry i when its text is unchanged, else -1 and
        `added[i]` holds its tokens; `removed` holds the tokens of this index's entries that are gone
        (kept nowhere). The result equals `from_entries` over the new corpus; None when this index was
        saved without the word counts that make it possible (the caller then builds from scratch).
        """
        if self.spelling_counts is None:
            return None
        words = Counter(dict(zip(self.spellings, self.spelling_counts.tolist())))
        words.subtract(itertools.chain.from_iterable(e.words for e in removed))
        words.update(itertools.chain.from_iterable(e.words for e in added.values()))
        triples = _Triples.of_postings(self, kept).merged(_Triples.of_entries(list(added.values()), list(added)))
        return _assemble(len(kept), triples, +words)

    def to_arrays(self) -> dict[str, np.ndarray]:
        grams = sorted(self._by_trigram)
        arrays = {
            "version": np.array([LEXICAL_VERSION]),
            "size": np.array([self.size]),
            "terms": _blob(self.terms),
            "spellings": _blob(self.spellings),
            "grams": _blob(grams),
            "gram_words": np.concatenate([self._by_trigram[g] for g in grams] or [np.zeros(0, np.int32)]),
            "gram_counts": np.array([len(self._by_trigram[g]) for g in grams], dtype=np.int64),
            "containing": self.containing,
        }
        if self.spelling_counts is not None:
            arrays["spelling_counts"] = self.spelling_counts
        for n, (postings, lengths) in enumerate(zip(self.fields, self.lengths)):
            arrays.update(
                {
                    f"starts{n}": postings.starts,
                    f"ids{n}": postings.ids,
                    f"counts{n}": postings.counts,
                    f"lengths{n}": lengths,
                }
            )
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> LexicalIndex:
        """The index `to_arrays` saved; LexicalVersionError when another tokenizer version saved it."""
        if int(arrays["version"][0]) != LEXICAL_VERSION:
            raise LexicalVersionError(f"lexical index version {int(arrays['version'][0])}, not {LEXICAL_VERSION}")
        grams, words_of_grams, spellings = (
            _strings(arrays["grams"]),
            arrays["gram_words"],
            _strings(arrays["spellings"]),
        )
        ends = np.cumsum(arrays["gram_counts"])
        if (
            len(ends) != len(grams)
            or (len(ends) and ends[-1] != len(words_of_grams))
            or (len(words_of_grams) and not (0 <= words_of_grams.min() <= words_of_grams.max() < len(spellings)))
        ):
            raise ValueError("lexical trigrams do not fit the spellings")
        by_trigram = {
            gram: words_of_grams[end - count : end]
            for gram, end, count in zip(grams, ends.tolist(), arrays["gram_counts"].tolist())
        }
        fields = [Postings(arrays[f"starts{n}"], arrays[f"ids{n}"], arrays[f"counts{n}"]) for n in range(2)]
        index = cls(
            int(arrays["size"][0]),
            _strings(arrays["terms"]),
            fields,
            [arrays[f"lengths{n}"] for n in range(2)],
            spellings,
            by_trigram,
            arrays["containing"],
            arrays.get("spelling_counts"),
        )
        index._check()
        return index

    def _check(self) -> None:
        """ValueError unless the arrays fit together: a query would otherwise index past their ends."""
        terms, spellings = len(self.terms), len(self.spellings)
        for postings, lengths in zip(self.fields, self.lengths):
            starts, ids = postings.starts, postings.ids
            if (
                len(starts) != terms + 1
                or starts[0] != 0
                or starts[-1] != len(ids)
                or len(postings.counts) != len(ids)
                or (np.diff(starts) < 0).any()
                or (len(ids) and not 0 <= ids.min() <= ids.max() < self.size)
                or len(lengths) != self.size
            ):
                raise ValueError("lexical postings do not fit the index")
        if len(self.containing) != terms or (
            self.spelling_counts is not None and len(self.spelling_counts) != spellings
        ):
            raise ValueError("lexical counts do not fit the index")

    def holds(self, position: int, term: str) -> bool:
        """Whether the record at `position` contains the term in either field (ids ascend: a bisection)."""
        term_id = self.term_id.get(term)
        if term_id is None:
            return False
        for postings in self.fields:
            ids = postings.of(term_id)[0]
            at = int(np.searchsorted(ids, position))
            if at < len(ids) and ids[at] == position:
                return True
        return False

    def _idf(self, term: str, unknown: float) -> float:
        i = self.term_id.get(term)
        return unknown if i is None else float(self.idf[i])

    def correct(self, word: str, vocabulary: frozenset[str] = frozenset()) -> str | None:
        """The document word closest to a query word the document never uses, if one is close enough.

        `vocabulary`: the embedding model's whole words. A word in it is a real word the document
        happens not to use ("master" is never "corrected" into "matter"); knowing that, shorter
        non-words can be corrected than without it."""
        if stem(word) in self.term_id:
            return word
        variant = next((v for v in spelling_variants(word) if stem(v) in self.term_id), None)
        if variant:
            return variant  # "neighbours" meets "neighbors" though both are real words
        if word in vocabulary or not word.isalpha():
            return None
        one_edit, two_edits = (
            (_VOCAB_ONE_EDIT_LENGTH, _VOCAB_TWO_EDITS_LENGTH)
            if vocabulary
            else (_FUZZY_ONE_EDIT_LENGTH, _FUZZY_TWO_EDITS_LENGTH)
        )
        if len(word) < one_edit:
            return None
        limit = 2 if len(word) >= two_edits else 1
        candidates: Counter[int] = Counter()
        for gram in trigrams(word):
            candidates.update(self._by_trigram.get(gram, np.zeros(0, np.int32)).tolist())
        best, best_key = None, (limit + 1, False, 0.0)
        for candidate_id, shared in candidates.items():
            candidate = self.spellings[candidate_id]
            # typos rarely hit the first letter; a short word shares few trigrams with its typo ("zreo": none
            # but the first with "zero"), so there the first letter is enough to be a candidate
            if shared < (1 if len(word) < _FUZZY_ONE_EDIT_LENGTH else 2) or candidate[0] != word[0]:
                continue
            # closest first; among equals a longer word (typing drops letters more often than it adds
            # them: "gest" is "guest" before "get"), then the more common word, whose typos are likelier
            key = (
                damerau_distance(word, candidate, limit),
                len(candidate) < len(word),
                self._idf(stem(candidate), 99.0),
            )
            if key < best_key:
                best, best_key = candidate, key
        return best if best_key[0] <= limit else None

    def match(self, query: str, vocabulary: frozenset[str] = frozenset()) -> LexicalMatch:
        """BM25 and coverage of a query; words the document never uses are first joined with their
        neighbour, split in two, or corrected (`correct`), when that gives document words."""
        all_words = WORD.findall(query.lower())
        corrected: dict[str, str] = {}
        position = 0
        words: list[tuple[str, str]] = []
        while position < len(all_words):
            joined = self._joined(all_words[position : position + 2])
            if joined:
                corrected[" ".join(all_words[position : position + 2])] = joined
                words.append((joined, stem(joined)))
                position += 2
                continue
            word = all_words[position]
            position += 1
            if word in STOPWORDS:
                continue
            known = self._known_form(word, vocabulary)
            if known is not None and known != word:
                corrected[word] = known
            # an unknown word stays: it counts against coverage
            words.extend((w, stem(w)) for w in (known or word).split())
        terms = [term for _, term in words]
        terms.extend(t for t in spelled_out(all_words, self.term_id) if t not in terms)
        term_ids = [self.term_id[t] for t in dict.fromkeys(terms) if t in self.term_id]  # first-seen: see _Held
        held = _Held.of(self, term_ids)
        coverage, unknown_share = self._coverage(terms, held)
        scores = self._bm25(term_ids, held)
        return LexicalMatch(scores, terms, corrected, coverage, unknown_share, tuple(words), held.positions)

    def _known_form(self, word: str, vocabulary: frozenset[str]) -> str | None:
        """The document word(s) a query word stands for: a one-edit typo before a split ("statless" is
        "stateless", not "stat less"), a split before a two-edit typo ("batchnorm" → "batch norm")."""
        fixed = self.correct(word, vocabulary)
        if fixed is not None and damerau_distance(word, fixed, 1) <= 1:
            return fixed
        return self._split(word, vocabulary) or fixed

    def _joined(self, pair: list[str]) -> str | None:
        """Two query words as the one word the document writes: "fire wall" → "firewall". Not when the
        document uses both words anyway, and never with a stop word ("a symmetric" is not "asymmetric")."""
        if len(pair) < 2 or not all(w.isalpha() and w not in STOPWORDS for w in pair):
            return None
        first, second = pair
        if stem(first + second) not in self.term_id or (stem(first) in self.term_id and stem(second) in self.term_id):
            return None
        return first + second

    def _split(self, word: str, vocabulary: frozenset[str]) -> str | None:
        """A run-together query word as the two document words it holds, the most even split first:
        "batchnorm" → "batch norm". Not a word the document uses, nor a real word ("notable")."""
        if stem(word) in self.term_id or word in vocabulary or not word.isalpha() or len(word) < 2 * _COMPOUND_PART:
            return None
        cuts = sorted(range(_COMPOUND_PART, len(word) - _COMPOUND_PART + 1), key=lambda i: abs(len(word) / 2 - i))
        for cut in cuts:
            if stem(word[:cut]) in self.term_id and stem(word[cut:]) in self.term_id:
                return f"{word[:cut]} {word[cut:]}"
        return None

    def _bm25(self, term_ids: list[int], held: _Held) -> np.ndarray:
        """BM25 per record, the better of its two fields, for the query's `term_ids`."""
        best = np.zeros(len(held.positions), dtype=np.float32)
        for postings, lengths, mean_length in zip(self.fields, self.lengths, self.mean_lengths):
            scores = np.zeros(len(held.positions), dtype=np.float32)
            for term in term_ids:
                ids, tf = postings.of(term)
                norm = _K1 * (1 - _B + _B * lengths[ids] / mean_length)
                scores[held.slot[ids]] += self.idf[term] * tf * (_K1 + 1) / (tf + norm)
            best = np.maximum(best, scores)
        return held.spread(best, self.size)

    def _coverage(self, terms: list[str], held: _Held) -> tuple[np.ndarray, float]:
        """Per record, the IDF-weighted share of query terms it contains (unknown terms weigh the most),
        and the share of the weight that no record contains."""
        unknown_weight = math.log(1 + (self.size + 0.5) / 0.5)
        weights = {t: self._idf(t, unknown_weight) for t in dict.fromkeys(terms)}
        total = sum(weights.values())
        if not total:
            return np.zeros(self.size, dtype=np.float32), 1.0
        coverage = np.zeros(len(held.positions), dtype=np.float32)
        for term, weight in weights.items():
            if term in self.term_id:
                coverage[held.holding(self, self.term_id[term])] += weight
        unknown = sum(w for t, w in weights.items() if t not in self.term_id)
        return held.spread(coverage / total, self.size), unknown / total


@dataclass(frozen=True)
class _Held:
    """The records holding any of a query's terms, so its scores are summed over those alone and spread
    into a per-record array once: at a million entries, adding each term's score into a full-length
    array cost ~12 ms a query. `slot[position]` is a held record's place in `positions`. The terms are
    added in the order the query first names them, so a score's float sum never depends on the hash seed."""

    positions: np.ndarray  # ascending int64
    slot: np.ndarray  # int32 per record; meaningful only at held positions

    @classmethod
    def of(cls, index: LexicalIndex, term_ids: list[int]) -> _Held:
        mask = np.zeros(index.size, dtype=bool)
        for term in term_ids:
            for postings in index.fields:
                mask[postings.of(term)[0]] = True
        positions = np.flatnonzero(mask)
        slot = np.empty(index.size, dtype=np.int32)
        slot[positions] = np.arange(len(positions), dtype=np.int32)
        return cls(positions, slot)

    def holding(self, index: LexicalIndex, term: int) -> np.ndarray:
        """Which held records hold term id `term` in either field (a mask: cheaper than a union of ids)."""
        mask = np.zeros(len(self.positions), dtype=bool)
        for postings in index.fields:
            mask[self.slot[postings.of(term)[0]]] = True
        return mask

    def spread(self, values: np.ndarray, size: int) -> np.ndarray:
        """`values` of the held records as a per-record array (0 elsewhere)."""
        full = np.zeros(size, dtype=np.float32)
        full[self.positions] = values
        return full


@dataclass(frozen=True)
class _Triples:
    """Postings in the making: per field, parallel arrays (entry, term id, count) over `terms`, one row
    per entry and term it holds."""

    terms: list[str]
    fields: list[tuple[np.ndarray, np.ndarray, np.ndarray]]

    @classmethod
    def of_entries(cls, entries: list[EntryTokens], positions: Sequence[int]) -> _Triples:
        term_id: dict[str, int] = {}
        fields = []
        for tokens_of in (lambda e: e.question, lambda e: e.answer):
            ids = [[term_id.setdefault(t, len(term_id)) for t in tokens_of(e)] for e in entries]
            sizes = np.fromiter(map(len, ids), np.int64, len(ids))
            owner = np.repeat(np.asarray(positions, dtype=np.int64), sizes)
            fields.append((owner, np.fromiter(itertools.chain.from_iterable(ids), np.int64, int(sizes.sum()))))
        width = len(term_id) or 1
        counted = []
        for owner, term in fields:
            pairs, counts = np.unique(owner * width + term, return_counts=True)
            counted.append((pairs // width, pairs % width, counts.astype(np.float32)))
        return cls(list(term_id), counted)

    @classmethod
    def of_postings(cls, index: LexicalIndex, kept: np.ndarray) -> _Triples:
        """The rows of `index` for the entries `kept` reuses, at their new positions."""
        new_position = np.full(index.size, -1, dtype=np.int64)
        reused = np.flatnonzero(kept >= 0)
        new_position[kept[reused]] = reused
        fields = []
        for postings in index.fields:
            term = np.repeat(np.arange(len(postings.starts) - 1, dtype=np.int64), np.diff(postings.starts))
            owner = new_position[postings.ids]
            keep = owner >= 0
            fields.append((owner[keep], term[keep], postings.counts[keep]))
        return cls(index.terms, fields)

    def merged(self, other: _Triples) -> _Triples:
        """Both sets of rows over one term list (the entries of the two must differ)."""
        known = {term: i for i, term in enumerate(self.terms)}
        terms = self.terms + [t for t in other.terms if t not in known]
        other_id = np.array([known.get(t, -1) for t in other.terms] or [0], dtype=np.int64)
        fresh = other_id < 0
        other_id[fresh] = len(self.terms) + np.arange(int(fresh.sum()))
        fields = [
            (np.concatenate([a[0], b[0]]), np.concatenate([a[1], other_id[b[1]]]), np.concatenate([a[2], b[2]]))
            for a, b in zip(self.fields, other.fields)
        ]
        return _Triples(terms, fields)


def _assemble(size: int, triples: _Triples, word_counts: Counter[str]) -> LexicalIndex:
    """The index over `size` entries from their rows and the number of entries using each word."""
    used = np.flatnonzero(
        np.bincount(np.concatenate([field[1] for field in triples.fields]), minlength=len(triples.terms))
    )
    names = [triples.terms[i] for i in used.tolist()]
    terms = sorted(names)
    order = {term: i for i, term in enumerate(terms)}
    renumber = np.zeros(len(triples.terms), dtype=np.int64)
    renumber[used] = [order[name] for name in names]
    width = max(size, 1)
    fields, lengths, holders = [], [], []
    for owner, term, counts in triples.fields:
        keys = renumber[term] * width + owner
        by_term = np.argsort(keys, kind="stable")
        starts = np.zeros(len(terms) + 1, dtype=np.int64)
        np.cumsum(np.bincount(renumber[term], minlength=len(terms)), out=starts[1:])
        fields.append(Postings(starts, owner[by_term].astype(np.int32), counts[by_term]))
        lengths.append(np.bincount(owner, weights=counts, minlength=size).astype(np.float32))
        holders.append(keys[by_term])  # ascending, and unique within a field
    # entries holding each term in either field: the two fields' counts less the pairs both hold
    question, answer = holders
    at = np.minimum(np.searchsorted(answer, question), max(len(answer) - 1, 0))
    both = question[answer[at] == question] if len(answer) else question[:0]
    containing = (
        np.bincount(question // width, minlength=len(terms))
        + np.bincount(answer // width, minlength=len(terms))
        - np.bincount(both // width, minlength=len(terms))
    ).astype(np.int32)
    spellings = sorted(word_counts)
    grams: dict[str, list[int]] = {}
    for i, word in enumerate(spellings):
        for gram in trigrams(word):
            grams.setdefault(gram, []).append(i)
    by_trigram = {gram: np.array(ids, dtype=np.int32) for gram, ids in grams.items()}
    return LexicalIndex(
        size,
        terms,
        fields,
        lengths,
        spellings,
        by_trigram,
        containing,
        np.array([word_counts[w] for w in spellings], dtype=np.int32),
    )
