"""The "no good match" decision and the confidence shown with results: a small logistic model over
evidence about the best result that means the same on any document.

Features (`FEATURES`), each chosen because it separated answerable from unanswerable queries on a
document the model was not fitted on (leave-one-document-out over the six documents in
`eval/suite.json`; a feature that only helped inside one corpus was dropped):
- `top_score`: the best result's score (cosine fused with lexical coverage, see search.py);
- `gap_to_mean`: how far the best dense cosine stands above this query's mean cosine over the document
  (a query on the document's subject is close to a few entries and far from the rest; an off-topic or
  near-topic one is about as close to all of them), so the level of a model's cosines does not matter;
- `coverage_top`: the IDF-weighted share of the query's words the best result contains;
- `unknown_share`: the IDF-weighted share of the query's words the document never uses at all;
- `remainder_gap`: the query's words the best entry does not contain, as the model read them: how far
  that entry stands above the document's mean for them (remainder.py). A paraphrase's leftover words
  still point at its entry; a near-topic question's name what the entry does not cover;
- `log_words`: the log of the query's word count: long descriptive queries have lower cosines for
  the same relevance, so a fixed cut would reject them.

`fit()` weighs every document alike and both classes alike, then places the no-match threshold so
that `TARGET_FALSE_REJECTION` of the answerable training queries are rejected, and the "good match"
cut so that, on every training document, `GOOD_PRECISION` of the queries below it have their answer
ranked first. Three levels follow (`confidence`): good match, possibly related (results shown,
flagged), no good match.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from indexer.errors import QueryError

FEATURES = ("top_score", "gap_to_mean", "coverage_top", "unknown_share", "remainder_gap", "log_words")
Confidence = Literal["good match", "possibly related", "no good match"]
CONFIDENCE_LEVELS: tuple[Confidence, ...] = ("good match", "possibly related", "no good match")
# Rejecting 1 answerable query in 20 is what a reader tolerates before they stop trusting "no good
# match"; below that, near-topic questions get answered with unrelated entries far more often.
TARGET_FALSE_REJECTION = 0.05
# A "good match" should be right (its first result answers the query) at least 9 times in 10.
GOOD_PRECISION = 0.9


@dataclass(frozen=True)
class NoMatchModel:
    weights: tuple[float, ...]
    bias: float
    threshold: float = 0.5  # probability of "no match" at or above which the result is declared empty
    good_below: float = 0.25  # probability of "no match" below which a result is a good match

    def probability(self, features: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(np.atleast_2d(features) @ np.asarray(self.weights) + self.bias)))

    def confidence(self, features: np.ndarray) -> Confidence:
        return self.level(float(self.probability(features)[0]))

    def level(self, probability: float) -> Confidence:
        if probability >= self.threshold:
            return "no good match"
        return "good match" if probability < self.good_below else "possibly related"

    def to_dict(self) -> dict:
        """As saved in a manifest (JSON: the weights a list)."""
        return {"features": list(FEATURES), **asdict(self), "weights": list(self.weights)}

    @classmethod
    def from_dict(cls, data: dict) -> NoMatchModel:
        """The saved model, or the shipped one when it was saved for other features (an older index)."""
        if data.get("features") != list(FEATURES):
            return DEFAULT_NO_MATCH
        return cls(
            tuple(data["weights"]),
            float(data["bias"]),
            float(data.get("threshold", 0.5)),
            float(data.get("good_below", min(0.25, float(data.get("threshold", 0.5))))),
        )


def query_word_feature(word_count: int) -> float:
    return math.log(max(word_count, 1))


# Fitted on all six documents of eval/suite.json (their 658 labelled queries) with
# `python -m indexer eval --suite eval/suite.json --calibrate`; the figures for each document come from
# a model fitted without it (docs/quality.md).
DEFAULT_NO_MATCH = NoMatchModel(
    weights=(-6.5961, 2.5129, -4.6672, 2.8185, -15.6195, -1.7141), bias=9.5131, threshold=0.6692, good_below=0.3371
)


def fit(
    features: np.ndarray,
    is_no_match: np.ndarray,
    groups: np.ndarray | None = None,
    first_correct: np.ndarray | None = None,
    l2: float = 1.0,
) -> NoMatchModel:
    """Fit on labelled queries; `groups` names each query's document (every document weighs the same),
    `first_correct` says whether its first result answers it (places the good-match cut)."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(is_no_match, dtype=np.float64)
    if len(np.unique(y)) < 2:
        raise QueryError(
            "fitting the no-match model needs labelled queries of both kinds: some the document "
            'answers and some it does not ("relevant": [])'
        )
    groups = np.zeros(len(y)) if groups is None else np.asarray(groups)
    weight = _balanced_weights(y, groups)
    weights, bias = _logistic(x, y, weight, l2)
    p = 1 / (1 + np.exp(-(x @ weights + bias)))
    threshold = _weighted_quantile(p[y == 0], weight[y == 0], 1 - TARGET_FALSE_REJECTION) if (y == 0).any() else 0.5
    threshold = float(min(max(threshold, 0.05), 0.95))
    good_below = _good_cut(p, y, first_correct, threshold, groups)
    return NoMatchModel(
        tuple(round(float(v), 4) for v in weights),
        round(float(bias), 4),
        round(threshold, 4),
        min(math.ceil(good_below * 1e4) / 1e4, round(threshold, 4)),  # up: the cut keeps the last good query
    )


def _balanced_weights(y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each (document, class) cell carries the same total weight, so no document or class dominates."""
    weight = np.zeros(len(y))
    cells = {(g, c) for g, c in zip(groups.tolist(), y.tolist())}
    for group, label in cells:
        members = (groups == group) & (y == label)
        weight[members] = 1.0 / members.sum()
    return weight * len(y) / weight.sum()


def _logistic(x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by Newton's method (numpy only), on standardised features
    with the scaling folded back into the weights."""
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    penalty = np.diag([l2] * x.shape[1] + [0.0])
    beta = np.zeros(z.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-(z @ beta)))
        gradient = z.T @ (sample_weight * (p - y)) + penalty @ beta
        hessian = (z * (sample_weight * p * (1 - p))[:, None]).T @ z + penalty
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = beta[:-1] / std
    return weights, float(beta[-1] - weights @ mean)


def _weighted_quantile(values: np.ndarray, weight: np.ndarray, q: float) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weight[order]) / weight.sum()
    return float(values[order][min(int(np.searchsorted(cumulative, q)), len(values) - 1)])


def _good_cut(
    p: np.ndarray, y: np.ndarray, first_correct: np.ndarray | None, threshold: float, groups: np.ndarray
) -> float:
    """The largest probability cut under which, on every document (`groups`) alike, at least
    `GOOD_PRECISION` of the queries are answerable with their first result right (without
    `first_correct`: half the threshold). Pooling the documents instead let the easy queries of one carry
    another's misses: the cut then sat just under the threshold, "possibly related" almost never showed,
    and "good match" was right only 0.84-0.89 of the time on three held-out documents of six."""
    if first_correct is None:
        return threshold / 2
    right = (y == 0) & np.asarray(first_correct, dtype=bool)
    cuts = np.unique(p[p < threshold])
    holds = np.ones(len(cuts), dtype=bool)
    for group in np.unique(groups):
        order = np.argsort(p[groups == group])
        ranked, hits = p[groups == group][order], np.cumsum(right[groups == group][order])
        below = np.searchsorted(ranked, cuts, side="right")  # this document's queries at or under each cut
        precision = np.where(below > 0, hits[np.maximum(below - 1, 0)] / np.maximum(below, 1), 1.0)
        holds &= precision >= GOOD_PRECISION
    if not holds.any():
        return 0.0
    return float(min(cuts[np.nonzero(holds)[0][-1]] + 1e-6, threshold))
