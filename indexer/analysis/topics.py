"""Related topics from the stored vectors (never re-embedding): clusters, a 2-D map, near-duplicates,
and hints for missing answers.

- Clusters: spherical k-means (cosine) on each entry's vector (question and answer combined, see
  `LoadedIndex.entry_vectors`); the number of clusters is the k in 2..√(2n) with the best silhouette
  (cosine distance, on at most 2,000 sampled entries). Deterministic: fixed seeds.
- Labels: the three words most particular to a cluster (class-based TF-IDF of question and answer
  words: frequent in the cluster, rare in the other clusters), shown as written in the document.
- Map: the first two principal components of the entry vectors (PCA by SVD): deterministic, instant
  at 10k entries, no extra dependency; a nonlinear map (UMAP) would separate groups better but is
  not installed here and changes with every seed.
- Near-duplicates: pairs whose questions are each other's nearest neighbour, at cosine ≥
  `DUPLICATE_MIN_SCORE`, and that share at least one uncommon word — the last rule drops pairs that
  are merely both short "What is X?" questions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexer.defaults import DUPLICATE_MIN_SCORE
from indexer.documents.records import Record, RecordId
from indexer.documents.text import plain_text
from indexer.retrieval.tokens import stem, words
from indexer.stores.base import LoadedIndex

_SILHOUETTE_SAMPLE = 2000
_UNCOMMON_SHARE = 0.1  # a word in at most this share of questions counts as uncommon


@dataclass(frozen=True)
class Topic:
    number: int
    label: str
    record_ids: list[RecordId]

    def to_dict(self) -> dict:
        return {"topic": self.number, "label": self.label, "size": len(self.record_ids), "ids": self.record_ids}


@dataclass(frozen=True)
class Duplicate:
    first: RecordId
    second: RecordId
    score: float

    def to_dict(self) -> dict:
        return {"ids": [self.first, self.second], "score": round(self.score, 4)}


@dataclass(frozen=True)
class MapPoint:
    id: RecordId
    x: float
    y: float
    topic: int
    status: str
    question: str


def spherical_kmeans(vectors: np.ndarray, k: int, seed: int = 0, iterations: int = 30) -> np.ndarray:
    """Cluster assignment of unit vectors into k groups by cosine (k-means++ start)."""
    rng = np.random.default_rng(seed)
    centres = [vectors[rng.integers(len(vectors))]]
    distance = 1 - vectors @ centres[0]  # to the nearest centre so far
    for _ in range(1, k):
        weights = np.clip(distance, 0, None) ** 2
        total = weights.sum()
        centres.append(
            vectors[rng.choice(len(vectors), p=weights / total) if total > 0 else rng.integers(len(vectors))]
        )
        distance = np.minimum(distance, 1 - vectors @ centres[-1])
    centre_matrix = np.array(centres)
    labels = np.zeros(len(vectors), dtype=np.int64)
    for step in range(iterations):
        new_labels = np.argmax(vectors @ centre_matrix.T, axis=1)
        if step and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        sums = _one_hot(labels, k).T @ vectors
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centre_matrix = np.where(norms > 0, sums / np.maximum(norms, 1e-12), centre_matrix)  # empty: keep
    return labels


def _one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    matrix = np.zeros((len(labels), k), dtype=np.float32)
    matrix[np.arange(len(labels)), labels] = 1.0
    return matrix


def silhouette(vectors: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette with cosine distance (0 when there is a single cluster); vectorised by cluster."""
    groups, labels = np.unique(labels, return_inverse=True)
    if len(groups) < 2:
        return 0.0
    distance = 1 - vectors @ vectors.T
    one_hot = _one_hot(labels, len(groups))
    sizes = one_hot.sum(axis=0)
    totals = distance @ one_hot  # (n, clusters): summed distance to each cluster
    rows = np.arange(len(vectors))
    own_size = sizes[labels]
    inside = np.where(own_size > 1, totals[rows, labels] / np.maximum(own_size - 1, 1), 0.0)  # minus itself (0)
    means = totals / sizes
    means[rows, labels] = np.inf
    outside = means.min(axis=1)
    scores = np.where(own_size > 1, (outside - inside) / np.maximum(np.maximum(inside, outside), 1e-12), 0.0)
    return float(scores.mean())


def cluster(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """Assignments with the number of clusters chosen by the best silhouette (see module docstring)."""
    n = len(vectors)
    if n < 4:
        return np.zeros(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    # k is chosen on a sample (all entries up to 2,000), then the whole set is clustered once with it
    sample = vectors[np.sort(rng.choice(n, size=min(n, _SILHOUETTE_SAMPLE), replace=False))]
    best_k, best_score = 2, -1.0
    low, high = max(2, round(np.sqrt(n / 2))), max(2, round(np.sqrt(2 * n)))
    for k in sorted({int(k) for k in np.geomspace(low, high, 8).round()}):
        score = silhouette(sample, spherical_kmeans(sample, min(k, len(sample)), seed))
        if score > best_score:
            best_k, best_score = k, score
    return spherical_kmeans(vectors, best_k, seed)


def topic_labels(records: Sequence[Record], assignment: np.ndarray, size: int = 3) -> dict[int, str]:
    """Each cluster's most particular words, joined by " / " (class-based TF-IDF)."""
    counts: dict[int, Counter[str]] = {}
    surface: dict[str, Counter[str]] = {}
    for record, group in zip(records, assignment.tolist()):
        text = record.question + " " + (plain_text(record.answer) if record.has_answer else "")
        for word in words(text):
            if len(word) < 3 or not word.isalpha():
                continue
            term = stem(word)
            counts.setdefault(group, Counter())[term] += 1
            surface.setdefault(term, Counter())[word] += 1
    groups = sorted(counts)
    clusters_with = Counter(term for group in groups for term in counts[group])
    labels = {}
    for group in groups:
        total = sum(counts[group].values())
        scored = sorted(
            counts[group], key=lambda t: (-(counts[group][t] / total) * np.log(1 + len(groups) / clusters_with[t]), t)
        )
        labels[group] = " / ".join(surface[t].most_common(1)[0][0] for t in scored[:size])
    return labels


def topics(index: LoadedIndex) -> list[Topic]:
    """Clusters of the index's entries, largest first, each with a readable label."""
    assignment = cluster(index.entry_vectors())
    labels = topic_labels(index.records, assignment)
    groups = sorted(set(assignment.tolist()), key=lambda g: -int((assignment == g).sum()))
    return [
        Topic(number, labels.get(group, ""), [r.id for r, a in zip(index.records, assignment) if a == group])
        for number, group in enumerate(groups, start=1)
    ]


def topic_map(index: LoadedIndex, found: list[Topic]) -> list[MapPoint]:
    """Every entry placed in 2-D by PCA of its vector, with its topic number and status."""
    vectors = index.entry_vectors()
    centred = vectors - vectors.mean(axis=0)
    if len(vectors) >= 2:
        _, _, components = np.linalg.svd(centred, full_matrices=False)
        xy = centred @ components[:2].T
    else:
        xy = np.zeros((len(vectors), 2))
    topic_of = {record_id: t.number for t in found for record_id in t.record_ids}
    return [
        MapPoint(r.id, float(x), float(y), topic_of.get(r.id, 0), r.status, r.question)
        for r, (x, y) in zip(index.records, xy)
    ]


def _nearest_other(vectors: np.ndarray, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Each vector's nearest other vector and their cosine, in blocks so memory stays O(block × n)."""
    nearest = np.zeros(len(vectors), dtype=np.int64)
    best = np.zeros(len(vectors), dtype=np.float32)
    for start in range(0, len(vectors), block):
        similarity = vectors[start : start + block] @ vectors.T
        rows = np.arange(len(similarity))
        similarity[rows, start + rows] = -np.inf  # not itself
        nearest[start : start + block] = similarity.argmax(axis=1)
        best[start : start + block] = similarity[rows, nearest[start : start + block]]
    return nearest, best


def near_duplicates(index: LoadedIndex, min_score: float = DUPLICATE_MIN_SCORE) -> list[Duplicate]:
    """Pairs of entries asking the same thing, best first (see module docstring for the rule)."""
    n = len(index.records)
    if n < 2:
        return []
    questions = np.vstack([index.question_vector(p) for p in range(n)])
    nearest, best = _nearest_other(questions)
    term_sets = [set(stem(w) for w in words(r.question) if len(w) > 2) for r in index.records]
    document_frequency = Counter(t for terms in term_sets for t in terms)
    uncommon = {t for t, df in document_frequency.items() if df <= max(2, _UNCOMMON_SHARE * n)}
    pairs = []
    for i in range(n):
        j = int(nearest[i])
        if i < j and nearest[j] == i and best[i] >= min_score and term_sets[i] & term_sets[j] & uncommon:
            pairs.append(Duplicate(index.records[i].id, index.records[j].id, float(best[i])))
    return sorted(pairs, key=lambda d: -d.score)
