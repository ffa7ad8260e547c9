"""Retrieval quality on labelled queries: hit@k, MRR, nDCG, and how well "no good match" is decided.

A query file holds JSON lines `{"query": str, "relevant": [ids], "kind": str}`; `relevant: []` marks a
query the document does not answer. Metrics over answerable queries: hit@1, hit@3, strict hit@3 (a
correct result counts only when the query was not flagged no-match), MRR@10, nDCG@10 (binary gains);
over unanswerable ones: no-match accuracy; and the false-rejection rate of answerable queries; and,
for the confidence levels, how often a "good match" has its answer ranked first (`good_precision`).

Results are counted as the CLI returns them: a query whose best score is under the default minimum
score gets no results, as "no good match" would.

Across documents: a suite file (`eval/suite.json`) names documents and their query files. Everything
fitted is measured leave-one-document-out, which is what a user's own, unseen document gets: for each
document, the `hybrid` weights are chosen from `WEIGHT_GRID` by their mean MRR@10 on the other
documents (`choose_weights`), every document is answered with those weights, and the no-match model is
fitted on the other documents' answers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.analysis.queryfiles import LabelledQuery
from indexer.defaults import DEFAULT_MIN_SCORE
from indexer.documents.records import RecordId
from indexer.errors import QueryError
from indexer.retrieval.nomatch import FEATURES, NoMatchModel, fit
from indexer.retrieval.search import DEFAULT_WEIGHTS, HybridWeights, field_scores, hybrid_scores

# The `hybrid` weights evaluation chooses among (other field × lexical coverage); the shipped pair is in it.
WEIGHT_GRID = tuple(
    HybridWeights(other, lexical) for lexical in (0.1, 0.2, 0.3, 0.4, 0.5) for other in (0.0, 0.1, 0.2, 0.3, 0.4, 0.6)
)


@dataclass(frozen=True)
class Outcome:
    """What the system answered for one labelled query: its ranked ids and its no-match decision."""

    ranked: list[RecordId]
    no_match: bool
    confidence: str = ""
    below_minimum: bool = False  # the best score is under the default minimum: the CLI shows nothing


def check_ids(queries: list[LabelledQuery], ids: Iterable[RecordId]) -> None:
    """QueryError for the first query that names an entry the document does not have: it could never
    be found, and would silently count as a miss."""
    known = set(ids)
    for query in queries:
        unknown = [record_id for record_id in query.relevant if record_id not in known]
        if unknown:
            raise QueryError(
                f"{query.where}: no entry with id {unknown[0]!r} in the document "
                f"(ids run like {', '.join(map(repr, list(known)[:3]))}, ...)"
            )


def _first_hit_rank(ranked: list[RecordId], relevant: set) -> int | None:
    return next((i + 1 for i, record_id in enumerate(ranked) if record_id in relevant), None)


def _ndcg(ranked: list[RecordId], relevant: set, k: int = 10) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, record_id in enumerate(ranked[:k]) if record_id in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal if ideal else 0.0


def metrics(queries: list[LabelledQuery], outcomes: list[Outcome]) -> dict[str, float | int | None]:
    """The metrics of one group of queries (see the module docstring)."""
    answerable = [(q, o) for q, o in zip(queries, outcomes) if q.relevant]
    unanswerable = [o for q, o in zip(queries, outcomes) if not q.relevant]
    ranks = [_first_hit_rank(o.ranked, set(q.relevant)) for q, o in answerable]
    n = len(answerable)

    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    return {
        "queries": len(queries),
        "answerable": n,
        "hit@1": mean([float(r == 1) for r in ranks]),
        "hit@3": mean([float(r is not None and r <= 3) for r in ranks]),
        "strict_hit@3": mean(
            [float(r is not None and r <= 3 and not o.no_match) for r, (_, o) in zip(ranks, answerable)]
        ),
        "mrr@10": mean([1 / r if r is not None and r <= 10 else 0.0 for r in ranks]),
        "ndcg@10": mean([_ndcg(o.ranked, set(q.relevant)) for q, o in answerable]),
        "no_match_accuracy": mean([float(o.no_match) for o in unanswerable]),
        "false_rejection": mean([float(o.no_match) for _, o in answerable]),
        "good_precision": mean(
            [float(r == 1) for r, (_, o) in zip(ranks, answerable) if o.confidence == "good match"]
            + [0.0 for o in unanswerable if o.confidence == "good match"]
        ),
    }


def report(queries: list[LabelledQuery], outcomes: list[Outcome]) -> dict[str, dict]:
    """Metrics overall and per query kind."""
    result = {"overall": metrics(queries, outcomes)}
    for kind in sorted({q.kind for q in queries}):
        chosen = [(q, o) for q, o in zip(queries, outcomes) if q.kind == kind]
        result[kind] = metrics([q for q, _ in chosen], [o for _, o in chosen])
    return result


def run_queries(
    qa, queries: list[LabelledQuery], mode: str, weights: HybridWeights = DEFAULT_WEIGHTS
) -> tuple[list[Outcome], np.ndarray]:
    """Answer every labelled query with an open `QAIndex`; return outcomes and no-match evidence."""
    outcomes, evidence = [], []
    for encoded in qa.encode([q.query for q in queries]):
        if isinstance(encoded, QueryError):
            outcomes.append(Outcome([], True))
            evidence.append(np.zeros(len(FEATURES)))
            continue
        result = qa.search_encoded(encoded, k=10, min_score=DEFAULT_MIN_SCORE, mode=mode, weights=weights)
        below = bool(result.nearest) and result.nearest[0].score < DEFAULT_MIN_SCORE
        ranked = [h.record.id for h in result.nearest]
        outcomes.append(Outcome(ranked, result.no_match, result.confidence, below))
        evidence.append(np.asarray(result.evidence))
    return outcomes, np.vstack(evidence)


def decided(outcome: Outcome, model: NoMatchModel, probability: float) -> Outcome:
    """The outcome under another no-match model: no good match when the model says so or when the best
    score is under the minimum (the CLI would show nothing)."""
    rejected = probability >= model.threshold or outcome.below_minimum
    level = "no good match" if outcome.below_minimum else model.level(probability)
    return Outcome(outcome.ranked, rejected, level, outcome.below_minimum)


def cross_validate(
    queries: list[LabelledQuery],
    outcomes: list[Outcome],
    evidence: np.ndarray,
    folds: int = 5,
    repeats: int = 5,
    seed: int = 0,
) -> dict[str, dict]:
    """Metrics when each query's no-match decision comes from a model fitted without it (k-fold,
    repeated with shuffles, averaged), so the no-match figures are not fitted to themselves."""
    labels = np.array([not q.relevant for q in queries], dtype=float)
    rng = np.random.default_rng(seed)
    reports = []
    for _ in range(repeats):
        order = rng.permutation(len(queries))
        refitted = list(outcomes)
        for part in np.array_split(order, folds):
            train = np.setdiff1d(order, part)
            model = fit(evidence[train], labels[train], first_correct=first_correct(queries, outcomes)[train])
            for i, p in zip(part, model.probability(evidence[part])):
                refitted[i] = decided(outcomes[i], model, float(p))
        reports.append(report(queries, refitted))
    return {
        group: {key: _mean_of([r[group][key] for r in reports]) for key in reports[0][group]} for group in reports[0]
    }


def _mean_of(values: list) -> float | int | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(isinstance(v, int) for v in present):
        return present[0]  # counts are the same in every repeat
    return round(sum(present) / len(present), 4)


def calibrate(queries: list[LabelledQuery], outcomes: list[Outcome], evidence: np.ndarray) -> NoMatchModel:
    """The no-match model fitted on all labelled queries of one document (what `cross_validate` estimates)."""
    return calibrate_documents([DocumentRun("", queries, outcomes, evidence)])


def first_correct(queries: list[LabelledQuery], outcomes: list[Outcome]) -> np.ndarray:
    """Per query: is its first result one of its relevant entries?"""
    return np.array([bool(o.ranked) and o.ranked[0] in set(q.relevant) for q, o in zip(queries, outcomes)])


# ---- across documents ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SuiteDocument:
    name: str
    document: Path
    queries: list[Path]


@dataclass(frozen=True)
class DocumentRun:
    """One suite document's labelled queries, as answered, with the no-match evidence of each."""

    name: str
    queries: list[LabelledQuery]
    outcomes: list[Outcome]
    evidence: np.ndarray


def load_suite(path: Path) -> list[SuiteDocument]:
    """`{"documents": [{"name", "document", "queries": [...]}]}`, paths relative to the suite file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        entries = [(d["name"], d["document"], d["queries"]) for d in data["documents"]]
        if not all(isinstance(n, str) and isinstance(doc, str) and isinstance(qs, list) for n, doc, qs in entries):
            raise TypeError
    except FileNotFoundError:
        raise QueryError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise QueryError(f'{path}: not a suite ({{"documents": [{{"name", "document", "queries": [...]}}]}})') from None
    names = [name for name, _, _ in entries]
    if len(names) < 2 or len(set(names)) < len(names):
        raise QueryError(
            f"{path}: a suite needs at least two documents with different names "
            "(each is measured with a model fitted on the others)"
        )
    base = Path(path).parent
    return [SuiteDocument(name, base / document, [base / q for q in queries]) for name, document, queries in entries]


def leave_one_document_out(runs: list[DocumentRun]) -> dict[str, dict[str, dict]]:
    """Per document, its metrics when the no-match model was fitted on the other documents only."""
    result = {}
    for held_out in runs:
        model = calibrate_documents([run for run in runs if run is not held_out])
        probabilities = model.probability(held_out.evidence)
        outcomes = [decided(o, model, float(p)) for o, p in zip(held_out.outcomes, probabilities)]
        result[held_out.name] = report(held_out.queries, outcomes)
    return result


# ---- choosing the hybrid weights -------------------------------------------------------------------


@dataclass(frozen=True)
class RankingCase:
    """One answerable query's evidence over every entry of its document: enough to rank it under any
    `hybrid` weights without searching again."""

    question: np.ndarray
    answer: np.ndarray
    coverage: np.ndarray
    relevant: np.ndarray  # positions of the entries that answer it


def ranking_cases(qa, queries: list[LabelledQuery]) -> list[RankingCase]:
    """The answerable queries of one document as `RankingCase`s (every entry scored: suite documents are small)."""
    positions = np.arange(len(qa.records))
    cases = []
    for query, encoded in zip(queries, qa.encode([q.query for q in queries])):
        if not query.relevant or isinstance(encoded, QueryError):
            continue
        question, answer = field_scores(qa.stored, encoded.vectors, positions)
        relevant = np.array([qa.stored.position_of[record_id] for record_id in query.relevant])
        cases.append(RankingCase(question, answer, encoded.lexical.coverage, relevant))
    return cases


def mean_reciprocal_rank(cases: list[RankingCase], weights: HybridWeights) -> float:
    """MRR@10 of `hybrid` with these weights (ties to the entry earlier in the document, as search breaks them)."""
    total = 0.0
    for case in cases:
        scores = hybrid_scores(case.question, case.answer, case.coverage, weights)
        best = scores[case.relevant].max()
        first = int(case.relevant[scores[case.relevant] == best].min())  # the earliest relevant entry at that score
        above = int((scores > best).sum() + (scores[:first] == best).sum())
        total += 1 / (above + 1) if above < 10 else 0.0
    return total / len(cases) if cases else 0.0


def choose_weights(cases: dict[str, list[RankingCase]], without: str | None = None) -> HybridWeights:
    """The `WEIGHT_GRID` pair with the best mean MRR@10 over the documents (each weighing the same), leaving
    out `without`; on a tie, the earlier pair in the grid."""
    chosen = [name for name in cases if name != without]
    return max(WEIGHT_GRID, key=lambda w: float(np.mean([mean_reciprocal_rank(cases[n], w) for n in chosen])))


def calibrate_documents(runs: list[DocumentRun]) -> NoMatchModel:
    """The no-match model fitted on several documents' queries, every document weighing the same."""
    queries = [q for run in runs for q in run.queries]
    outcomes = [o for run in runs for o in run.outcomes]
    groups = np.array([run.name for run in runs for _ in run.queries])
    return fit(
        np.vstack([run.evidence for run in runs]),
        np.array([not q.relevant for q in queries], dtype=float),
        groups=groups,
        first_correct=first_correct(queries, outcomes),
    )


@dataclass(frozen=True)
class SuiteEvaluation:
    """A suite evaluated leave-one-document-out (module docstring)."""

    weights: dict[str, HybridWeights]  # per document: the hybrid weights chosen without it
    metrics: dict[str, dict[str, dict]]  # per document: its report, with those weights and a model fitted without it
    shipped: dict[str, dict[str, dict]]  # per document: its report with the shipped weights and no-match model
    all_weights: HybridWeights  # the weights every document chooses together (what should ship)
    all_runs: list[DocumentRun]  # every document answered with `all_weights` (what the shipped model is fitted on)


def evaluate_suite(answered: Mapping[str, tuple[object, list[LabelledQuery]]], mode: str) -> SuiteEvaluation:
    """`answered`: per document name, its open `QAIndex` and labelled queries."""
    if mode == "hybrid":
        cases = {name: ranking_cases(qa, queries) for name, (qa, queries) in answered.items()}
        weights = {name: choose_weights(cases, without=name) for name in answered}
        all_weights = choose_weights(cases)
    else:  # the weights only change hybrid's order
        weights, all_weights = dict.fromkeys(answered, DEFAULT_WEIGHTS), DEFAULT_WEIGHTS
    runs: dict[HybridWeights, list[DocumentRun]] = {}
    for chosen in dict.fromkeys([DEFAULT_WEIGHTS, all_weights, *weights.values()]):
        runs[chosen] = [
            DocumentRun(name, queries, *run_queries(qa, queries, mode, chosen))
            for name, (qa, queries) in answered.items()
        ]
    held_out = {chosen: leave_one_document_out(chosen_runs) for chosen, chosen_runs in runs.items()}
    return SuiteEvaluation(
        weights,
        {name: held_out[weights[name]][name] for name in answered},
        {run.name: report(run.queries, run.outcomes) for run in runs[DEFAULT_WEIGHTS]},
        all_weights,
        runs[all_weights],
    )
