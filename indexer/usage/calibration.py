"""Per-document calibration of the no-match model from readers' feedback (the query log).

The shipped model was fitted on six documents; a document's own readers know better. Once the log
holds enough feedback ("this answered my question" → an answerable query with its entry, "none of
these" → a query the document does not answer), the model is refitted on it and kept only when
cross-validation on that same feedback says it decides better than the model in use. The result
says what changed, on the document's own labelled queries.

Deliberately not here: reading the log (querylog.py), the fitting maths (retrieval/nomatch.py),
writing the parameters (build.py keeps them in every later generation's manifest).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeGuard

from indexer.analysis.evaluate import calibrate, cross_validate, report, run_queries
from indexer.analysis.queryfiles import LabelledQuery
from indexer.retrieval.nomatch import FEATURES, NoMatchModel

# Fewer than this and a refit follows a handful of clicks: 5-fold cross-validation needs a few of each
# class in every fold to say anything, and the shipped model was fitted on hundreds.
MIN_OF_EACH = 10
MIN_QUERIES = 40


@dataclass(frozen=True)
class Calibration:
    answerable: int
    unanswerable: int
    enough: bool
    current: dict | None = None  # metrics of the model in use on the labelled queries
    refitted: dict | None = None  # cross-validated metrics of a model refitted on them
    model: NoMatchModel | None = None  # fitted on all of them
    better: bool = False

    def to_dict(self) -> dict:
        return {
            "answerable": self.answerable,
            "unanswerable": self.unanswerable,
            "enough": self.enough,
            "current": self.current,
            "refitted_cross_validated": self.refitted,
            "better": self.better,
            "model": self.model.to_dict() if self.model else None,
        }


def _loss(metrics: dict) -> float:
    """Both no-match errors, equally weighted: wrongly rejected answerable queries, wrongly answered others."""
    return float(metrics["false_rejection"] or 0.0) + 1.0 - float(metrics["no_match_accuracy"] or 0.0)


def calibrate_from_feedback(qa, queries: list[LabelledQuery], mode: str = "hybrid") -> Calibration:
    """Compare the model in use with one refitted on these labelled queries (see the module docstring)."""
    unanswerable = sum(not q.relevant for q in queries)
    answerable = len(queries) - unanswerable
    if min(answerable, unanswerable) < MIN_OF_EACH or len(queries) < MIN_QUERIES:
        return Calibration(answerable, unanswerable, enough=False)
    outcomes, evidence = run_queries(qa, queries, mode)
    current = report(queries, outcomes)["overall"]
    refitted = cross_validate(queries, outcomes, evidence)["overall"]
    model = calibrate(queries, outcomes, evidence)
    return Calibration(answerable, unanswerable, True, current, refitted, model, _loss(refitted) < _loss(current))


def saved_parameters(model: NoMatchModel, queries: int) -> dict:
    """The manifest's `no_match` entry for a model fitted on this index's feedback."""
    return {
        **model.to_dict(),
        "fitted_on": "feedback",
        "feedback_queries": queries,
        "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def feedback_fitted(no_match: dict | None) -> TypeGuard[dict]:
    """Whether these saved parameters were fitted on readers' feedback for the evidence in use (a model
    fitted on older features is not used: `NoMatchModel.from_dict` falls back to the shipped one)."""
    return (
        no_match is not None and no_match.get("fitted_on") == "feedback" and no_match.get("features") == list(FEATURES)
    )


def describe(no_match: dict | None) -> str:
    """One line for `info`: which no-match parameters the index answers with."""
    if feedback_fitted(no_match):
        return f"fitted on {no_match['feedback_queries']} logged queries with feedback ({no_match['fitted_at']})"
    shipped = "shipped (fitted on the six documents of eval/suite.json)"
    if no_match is not None and no_match.get("fitted_on") == "feedback":
        return shipped + "; the calibration from feedback was for older evidence: run calibrate again"
    return shipped
