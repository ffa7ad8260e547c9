"""Lexical evidence: BM25 over each entry's question and answer, with typo-tolerant query terms.

Tokens are lower-cased words with a light English stemmer (plurals, -ing, -ed), so "Gradients",
"gradient" and "gradient's" match. A query word the document never uses is replaced by the document
words closest to it in character trigrams (when close enough), so "vanishng gradents" still finds
"vanishing gradients". Pure numpy/scipy-free Python: nothing heavy is imported.

Acronyms meet their spelled-out forms both ways: an entry saying "Generative Adversarial Network" also
holds the term "gan", and a query saying "you only look once" also asks for "yolo" when the document
uses that word.

Deliberately not here: dense vectors (search.py) and how lexical and dense evidence are fused.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from .records import Record
from .text import plain_text

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
STOPWORDS = frozenset("""
a an and are as at be been being but by can could did do does doing for from had has have how i if in into is it
its it's me my of on or our should so than that the their them then there these they this those to too very was
we were what when where which while who whom why will with would you your yours vs versus about also any some
such between explain describe define tell give name what's whats
""".split())
_K1, _B = 1.2, 0.75
_FUZZY_ONE_EDIT_LENGTH = 6  # shorter words are left alone: "bake" is not a typo of "take"
_FUZZY_TWO_EDITS_LENGTH = 10


def stem(word: str) -> str:
    """A light stemmer: enough to match plurals and simple verb forms, never clever.

    >>> [stem(w) for w in ("gradients", "labelled", "evaluating", "evaluate", "batches")]
    ['gradient', 'label', 'evaluat', 'evaluat', 'batch']
    """
    for suffix, replacement, min_stem in (("ies", "y", 3), ("sses", "ss", 3), ("ing", "", 3), ("ed", "", 3),
                                          ("es", "", 4), ("s", "", 3)):
        if word.endswith(suffix) and len(word) - len(suffix) >= min_stem and not word.endswith("ss"):
            word = word[: len(word) - len(suffix)] + replacement
            break
    if len(word) > 4 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]  # running → run
    elif len(word) > 5 and word.endswith("ll"):
        word = word[:-1]  # labelled → label
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]  # evaluate and evaluating meet at "evaluat"
    return word


def damerau_distance(a: str, b: str, limit: int) -> int:
    """Edit distance counting a swap of two neighbours as one edit; stops early past `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


_CAPITALISED_RUN = re.compile(r"\b[A-Z][a-z]+(?:[ \t-]+[A-Z][a-z]+){1,4}\b")


def acronyms(text: str) -> list[str]:
    """Initials of capitalised word runs: "Generative Adversarial Network" → ["gan"]."""
    found = []
    for run in _CAPITALISED_RUN.findall(text):
        initials = "".join(w[0] for w in re.split(r"[ \t-]+", run)).lower()
        # "Explain Generative Adversarial Network": a leading capitalised verb must not hide "gan"
        found.extend(initials[start:] for start in range(len(initials) - 1))
    return found


def _spelled_out(query_words: list[str], known: dict) -> list[str]:
    """Terms the document uses that are the initials of 2–5 consecutive query words."""
    found = []
    for size in range(2, 6):
        for start in range(len(query_words) - size + 1):
            initials = "".join(w[0] for w in query_words[start:start + size])
            if initials in known:
                found.append(initials)
    return found


def apply_corrections(text: str, corrected: dict[str, str]) -> str:
    """The query with each corrected word replaced, e.g. "vanishng gradents" → "vanishing gradients"."""
    return _WORD.sub(lambda m: corrected.get(m.group(0).lower(), m.group(0)), text)


def words(text: str) -> list[str]:
    """Lower-cased words without stop words, before stemming."""
    return [w for w in (w.lower() for w in _WORD.findall(text)) if w not in STOPWORDS]


def tokens(text: str) -> list[str]:
    return [stem(w) for w in words(text)]


def _trigrams(word: str) -> set[str]:
    padded = f"  {word} "
    return {padded[i:i + 3] for i in range(len(padded) - 2)}


@dataclass
class LexicalMatch:
    scores: np.ndarray  # BM25 per record (question and answer fields, best of the two)
    terms: list[str]  # query terms after typo correction
    corrected: dict[str, str]  # typed word → document word used instead
    coverage: np.ndarray  # per record: IDF-weighted share of the query terms it contains, in [0, 1]
    unknown_share: float  # IDF-weighted share of the query terms no entry contains


class LexicalIndex:
    """BM25 over each record's question and answer as two fields; a record scores its better field.

    Postings (term → record positions and term frequencies, per field) keep a query's cost
    proportional to how often its terms occur, not to the size of the corpus.
    """

    def __init__(self, records: list[Record]) -> None:
        self.size = len(records)
        answers = [plain_text(r.answer) if r.has_answer else "" for r in records]
        fields = [[tokens(r.question) + acronyms(r.question) for r in records],
                  [tokens(text) + acronyms(text) for text in answers]]
        self.postings: list[dict[str, tuple[np.ndarray, np.ndarray]]] = [self._postings(f) for f in fields]
        self.lengths = [np.array([len(toks) for toks in field], dtype=np.float32) for field in fields]
        self.mean_lengths = [max(float(lengths.mean()), 1.0) if self.size else 1.0 for lengths in self.lengths]
        containing: dict[str, set[int]] = {}
        for field in fields:
            for i, toks in enumerate(field):
                for term in set(toks):
                    containing.setdefault(term, set()).add(i)
        self.records_with = {t: np.fromiter(ids, dtype=np.int64) for t, ids in containing.items()}
        self.idf = {t: math.log(1 + (self.size - len(ids) + 0.5) / (len(ids) + 0.5)) for t, ids in containing.items()}
        self._by_trigram: dict[str, set[str]] = {}  # over the words as written, for typo correction
        for record in records:
            for word in set(words(record.question + " " + (plain_text(record.answer) if record.has_answer else ""))):
                for gram in _trigrams(word):
                    self._by_trigram.setdefault(gram, set()).add(word)

    @staticmethod
    def _postings(field: list[list[str]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        collected: dict[str, tuple[list[int], list[int]]] = {}
        for i, toks in enumerate(field):
            for term, count in Counter(toks).items():
                ids, counts = collected.setdefault(term, ([], []))
                ids.append(i)
                counts.append(count)
        return {t: (np.array(ids, dtype=np.int64), np.array(counts, dtype=np.float32))
                for t, (ids, counts) in collected.items()}

    def correct(self, word: str) -> str | None:
        """The document word closest to a query word the document never uses, if one is close enough."""
        if stem(word) in self.idf:
            return word
        if len(word) < _FUZZY_ONE_EDIT_LENGTH or not word.isalpha():
            return None
        limit = 2 if len(word) >= _FUZZY_TWO_EDITS_LENGTH else 1
        candidates: Counter[str] = Counter()
        for gram in _trigrams(word):
            candidates.update(self._by_trigram.get(gram, ()))
        best, best_key = None, (limit + 1, 0.0)
        for candidate, shared in candidates.items():
            if shared < 2 or candidate[0] != word[0]:  # typos rarely hit the first letter
                continue
            # closest first; among equals the more common word, since typos of frequent words are likelier
            key = (damerau_distance(word, candidate, limit), self.idf.get(stem(candidate), 99.0))
            if key < best_key:
                best, best_key = candidate, key
        return best if best_key[0] <= limit else None

    def match(self, query: str) -> LexicalMatch:
        corrected: dict[str, str] = {}
        terms: list[str] = []
        for word in words(query):
            known = self.correct(word)
            if known is not None and known != word:
                corrected[word] = known
            terms.append(stem(known or word))  # an unknown word stays: it counts against coverage
        all_words = [w.lower() for w in _WORD.findall(query)]
        terms.extend(t for t in _spelled_out(all_words, self.idf) if t not in terms)
        coverage, unknown_share = self._coverage(terms)
        return LexicalMatch(self._bm25(terms), terms, corrected, coverage, unknown_share)

    def _bm25(self, terms: list[str]) -> np.ndarray:
        best = np.zeros(self.size, dtype=np.float32)
        for field, postings in enumerate(self.postings):
            scores = np.zeros(self.size, dtype=np.float32)
            for term in set(terms):
                if term not in postings:
                    continue
                ids, tf = postings[term]
                norm = _K1 * (1 - _B + _B * self.lengths[field][ids] / self.mean_lengths[field])
                scores[ids] += self.idf[term] * tf * (_K1 + 1) / (tf + norm)
            best = np.maximum(best, scores)
        return best

    def _coverage(self, terms: list[str]) -> tuple[np.ndarray, float]:
        """Per record, the IDF-weighted share of query terms it contains (unknown terms weigh the most),
        and the share of the weight that no record contains."""
        unique = set(terms)
        unknown_weight = math.log(1 + (self.size + 0.5) / 0.5)
        weights = {t: self.idf.get(t, unknown_weight) for t in unique}
        total = sum(weights.values())
        coverage = np.zeros(self.size, dtype=np.float32)
        if not total:
            return coverage, 1.0
        for term, weight in weights.items():
            if term in self.records_with:
                coverage[self.records_with[term]] += weight
        unknown = sum(w for t, w in weights.items() if t not in self.records_with)
        return coverage / total, unknown / total
