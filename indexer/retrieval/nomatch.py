"""The "no good match" decision: a small logistic model over evidence about the best result.

Features of a query's top-ranked entry (all corpus-independent, so one fitted model serves any
document): its dense cosine, the dense margin over the runner-up, the share of the query's
(IDF-weighted) words it contains, the best such share of any entry, the share of query words the
document never uses at all, and the spread (standard deviation) of the dense score over the
entries: a query on the document's subject is close to some entries and far from others, while an
off-topic one is about equally far from all of them. Fitted by `fit()` on labelled queries (see
`python -m indexer eval --calibrate`); the default parameters below were chosen with cross-validation
on the labelled sets in `eval/` and the dev set, and every index records the parameters it answers
with in its manifest.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

FEATURES = ("top_cosine", "margin", "coverage_top", "coverage_max", "unknown_share", "spread")


@dataclass(frozen=True)
class NoMatchModel:
    weights: tuple[float, ...]
    bias: float
    threshold: float = 0.5  # probability of "no match" above which the result is declared empty

    def probability(self, features: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(np.atleast_2d(features) @ np.asarray(self.weights) + self.bias)))

    def decide(self, features: np.ndarray) -> bool:
        return bool(self.probability(features)[0] >= self.threshold)

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "NoMatchModel":
        if data.get("features") != list(FEATURES):
            return DEFAULT_NO_MATCH
        return cls(tuple(data["weights"]), float(data["bias"]), float(data.get("threshold", 0.5)))


# Fitted on eval/extra_queries.jsonl + the dev set (158 queries, 36 unanswerable) with
# `python -m indexer eval ... --calibrate`; its cross-validated figures are in the README.
DEFAULT_NO_MATCH = NoMatchModel(weights=(-7.0036, -4.7454, -1.2655, -2.4328, 4.2134, -49.1613), bias=7.5331)


def fit(features: np.ndarray, is_no_match: np.ndarray, l2: float = 1.0, balance: float = 1.0) -> NoMatchModel:
    """L2-regularised logistic regression by Newton's method (numpy only).

    Features are standardised for the fit and the scaling folded back into the weights. `balance`
    scales the weight of the no-match class (1.0 = as many as the answerable ones in effect).
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(is_no_match, dtype=np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    positives, negatives = max(y.sum(), 1.0), max(len(y) - y.sum(), 1.0)
    sample_weight = np.where(y == 1, balance * len(y) / (2 * positives), len(y) / (2 * negatives))
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
    bias = beta[-1] - float(weights @ mean)
    return NoMatchModel(tuple(round(float(v), 4) for v in weights), round(float(bias), 4))
