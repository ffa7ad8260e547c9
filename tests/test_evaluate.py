"""Evaluation maths on hand-made cases, the eval command, and the default mode against dense-only."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import numpy as np
import pytest
from core_fixtures import DEV_QUERIES, ROOT

import indexer.analysis.evaluate as evaluate_module
import indexer.retrieval.nomatch as nomatch_module
from indexer.analysis.evaluate import (
    WEIGHT_GRID,
    DocumentRun,
    Outcome,
    RankingCase,
    choose_weights,
    cross_validate,
    decided,
    leave_one_document_out,
    load_suite,
    mean_reciprocal_rank,
    metrics,
    report,
    run_queries,
)
from indexer.analysis.queryfiles import LabelledQuery, load_queries
from indexer.cli import main
from indexer.errors import QueryError
from indexer.retrieval.nomatch import DEFAULT_NO_MATCH, NoMatchModel, fit
from indexer.retrieval.search import DEFAULT_WEIGHTS, HybridWeights

EXTRA_QUERIES = ROOT / "eval" / "extra_queries.jsonl"


def test_metrics_of_known_ranks():
    queries = [
        LabelledQuery("a", [1], "x"),
        LabelledQuery("b", [2, 3], "x"),
        LabelledQuery("c", [4], "y"),
        LabelledQuery("d", [], "none"),
        LabelledQuery("e", [], "none"),
    ]
    outcomes = [
        Outcome([1, 9], False),  # rank 1
        Outcome([9, 8, 3, 2], True),  # first relevant at rank 3, but flagged no-match
        Outcome([9] * 10 + [4], False),  # beyond 10: a miss
        Outcome([5], True),  # correctly no match
        Outcome([5], False),
    ]  # wrongly answered
    m = metrics(queries, outcomes)
    assert m["answerable"] == 3 and m["queries"] == 5
    assert m["hit@1"] == round(1 / 3, 4)
    assert m["hit@3"] == round(2 / 3, 4)
    assert m["strict_hit@3"] == round(1 / 3, 4)
    assert m["mrr@10"] == round((1 + 1 / 3 + 0) / 3, 4)
    ndcg_b = (1 / math.log2(4) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert m["ndcg@10"] == round((1 + ndcg_b + 0) / 3, 4)
    assert m["no_match_accuracy"] == 0.5
    assert m["false_rejection"] == round(1 / 3, 4)
    assert set(report(queries, outcomes)) == {"overall", "x", "y", "none"}


@pytest.mark.parametrize(
    "second_line",
    [
        '{"query": "no relevant"}',
        '{"query": "x", "relevant": [[1]]}',
        '{"query": "x", "relevant": [true]}',
        '{"query": "x", "relevant": [{}]}',
    ],
)
def test_malformed_query_files_raise_a_clear_error(tmp_path, second_line):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"query": "ok", "relevant": [1], "kind": "a"}\n' + second_line + "\n")
    with pytest.raises(QueryError, match="line 2"):
        load_queries(bad)
    code = main(["eval", str(bad)])
    assert code == 2


@pytest.fixture(scope="module")
def dev_queries():
    return load_queries(DEV_QUERIES)


def test_default_mode_beats_dense_only_on_the_dev_set(real_index, dev_queries):
    hybrid = report(dev_queries, run_queries(real_index, dev_queries, "hybrid")[0])["overall"]
    dense = report(dev_queries, run_queries(real_index, dev_queries, "dense")[0])["overall"]
    assert hybrid["mrr@10"] > dense["mrr@10"] and hybrid["hit@1"] > dense["hit@1"]
    assert hybrid["hit@1"] >= 0.95 and hybrid["mrr@10"] >= 0.95


def test_cross_validated_no_match_on_all_labelled_queries(real_index, dev_queries):
    queries = dev_queries + load_queries(EXTRA_QUERIES)
    outcomes, evidence = run_queries(real_index, queries, "hybrid")
    overall = cross_validate(queries, outcomes, evidence)["overall"]
    assert overall["no_match_accuracy"] >= 0.85 and overall["false_rejection"] <= 0.12


def test_eval_command_prints_json_per_kind(real_index, tmp_path, dev_queries, capsys):
    index_dir = real_index.stored.path.parent
    code = main(["eval", str(DEV_QUERIES), "--json", "--index-dir", str(index_dir)])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["mode"] == "hybrid" and data["queries"] == 42
    assert {"overall", "paraphrase", "typo", "no_match"} <= set(data["metrics"])


def _document(name: str, no_match_when_high: bool, seed: int) -> DocumentRun:
    """40 answerable and 40 unanswerable queries whose one feature separates them, one way or the other."""
    rng = np.random.default_rng(seed)
    low, high = rng.uniform(-2, -0.5, size=40), rng.uniform(0.5, 2, size=40)
    unanswerable, answerable = (high, low) if no_match_when_high else (low, high)
    queries = [LabelledQuery(f"{name} a{i}", [i + 1], "x") for i in range(40)]
    queries += [LabelledQuery(f"{name} n{i}", [], "none") for i in range(40)]
    outcomes = [Outcome([i + 1], False) for i in range(40)] + [Outcome([1], False) for _ in range(40)]
    evidence = np.concatenate([answerable, unanswerable])[:, None] * np.ones((1, 1))
    return DocumentRun(name, queries, outcomes, evidence)


def test_leave_one_document_out_scores_each_document_with_a_model_fitted_without_it(monkeypatch):
    runs = [_document("a", True, 1), _document("b", True, 2), _document("odd", False, 3)]
    fitted_on: list[set] = []
    monkeypatch.setattr(
        evaluate_module,
        "fit",
        lambda x, y, groups=None, first_correct=None: (
            fitted_on.append(set(groups.tolist())) or fit(x, y, groups, first_correct)
        ),
    )
    result = leave_one_document_out(runs)
    assert fitted_on == [{"b", "odd"}, {"a", "odd"}, {"a", "b"}]
    # "odd" follows the opposite rule: a model that never saw it gets it wrong, which in-sample fitting would hide
    assert result["odd"]["overall"]["no_match_accuracy"] <= 0.1 and result["odd"]["overall"]["false_rejection"] >= 0.9
    in_sample = fit(runs[2].evidence, np.array([not q.relevant for q in runs[2].queries], dtype=float))
    assert (in_sample.probability(runs[2].evidence)[40:] >= in_sample.threshold).mean() > 0.9


def test_a_suite_names_documents_and_their_query_files_relative_to_itself(tmp_path):
    two = [
        {"name": "one", "document": "docs/one.md", "queries": ["one.jsonl", "more.jsonl"]},
        {"name": "two", "document": "two.md", "queries": ["two.jsonl"]},
    ]
    (tmp_path / "suite.json").write_text(json.dumps({"documents": two}))
    document, _ = load_suite(tmp_path / "suite.json")
    assert document.name == "one" and document.document == tmp_path / "docs/one.md"
    assert document.queries == [tmp_path / "one.jsonl", tmp_path / "more.jsonl"]
    (tmp_path / "bad.json").write_text('{"documents": [{"name": 1}]}')
    with pytest.raises(QueryError, match="not a suite"):
        load_suite(tmp_path / "bad.json")
    for documents in (two[:1], [two[0], {**two[1], "name": "one"}]):  # one document, or two with one name
        (tmp_path / "few.json").write_text(json.dumps({"documents": documents}))
        with pytest.raises(QueryError, match="at least two documents"):
            load_suite(tmp_path / "few.json")
        assert main(["eval", "--suite", str(tmp_path / "few.json")]) == 2


def test_fitting_needs_queries_of_both_kinds():
    with pytest.raises(QueryError, match="both kinds"):
        fit(np.ones((5, 2)), np.ones(5))


def test_the_shipped_suite_has_documents_with_sixty_queries_of_every_kind_each():
    suite = load_suite(ROOT / "eval" / "suite.json")
    assert len(suite) >= 3 and all(d.document.is_file() for d in suite)
    for document in suite:
        queries = [q for path in document.queries for q in load_queries(path)]
        kinds = {q.kind for q in queries}
        assert len(queries) >= 60, document.name
        assert {
            "keyword",
            "long_paraphrase",
            "typo",
            "compound",
            "answer_content",
            "near_topic",
            "off_topic",
        } <= kinds, document.name


def test_every_suite_document_is_answered_well_by_a_model_fitted_without_it(capsys):
    """The cross-document figures docs/quality.md reports, guarded against regressions (real model)."""
    code = main(["eval", "--suite", str(ROOT / "eval" / "suite.json"), "--json", "--calibrate"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and len(data["leave_one_document_out"]) == 6
    for name, table in data["leave_one_document_out"].items():
        overall = table["overall"]
        assert overall["hit@3"] >= 0.92, name
        assert overall["no_match_accuracy"] >= 0.7 and overall["false_rejection"] <= 0.15, name
        assert overall["good_precision"] >= 0.85, name
    # what ships is what the suite chooses on every document: a refit or a new document must update both
    fitted, shipped = data["fitted_no_match"], DEFAULT_NO_MATCH.to_dict()
    assert fitted["features"] == shipped["features"]  # the fit's last digit varies with float summation order
    for key in ("weights", "bias", "threshold", "good_below"):
        assert fitted[key] == pytest.approx(shipped[key], abs=2e-3), key
    assert data["weights_chosen_on_all"] == asdict(DEFAULT_WEIGHTS)


def test_the_good_match_cut_holds_on_every_document_not_only_on_all_of_them_pooled():
    easy = np.linspace(0.05, 0.5, 50)  # 50 queries, every first result right
    hard = np.linspace(0.1, 0.5, 6)  # 6 queries: right, then wrong, right, wrong, ...
    p = np.concatenate([easy, hard])
    groups = np.array(["easy"] * 50 + ["hard"] * 6)
    first_correct = np.concatenate([np.ones(50, bool), np.arange(6) % 2 == 0])
    cut = nomatch_module._good_cut(p, np.zeros(56), first_correct, 0.9, groups)
    # pooled, 53 of 56 are right (0.95): the cut would pass every query; on "hard" only its first is safe
    assert hard[0] < cut < hard[1]  # just under the first wrong answer of "hard"
    assert nomatch_module._good_cut(p, np.zeros(56), first_correct, 0.9, np.zeros(56)) == pytest.approx(0.5 + 1e-6)


def _case(question: list[float], relevant: int, coverage: list[float] | None = None) -> RankingCase:
    """A query over entries without answers: their question cosines, lexical coverage, the right entry."""
    q = np.array(question)
    cov = np.zeros(len(q)) if coverage is None else np.array(coverage)
    return RankingCase(q, np.full(len(q), np.nan), cov, np.array([relevant]))


def test_the_mean_reciprocal_rank_breaks_ties_as_search_does_by_document_order():
    weights = HybridWeights(0.0, 0.0)
    assert mean_reciprocal_rank([_case([0.5, 0.5, 0.4], 1)], weights) == 0.5  # the tied entry before it wins
    assert mean_reciprocal_rank([_case([0.5, 0.5, 0.4], 0)], weights) == 1.0
    assert mean_reciprocal_rank([_case([0.9] * 10 + [0.1], 10)], weights) == 0.0  # beyond 10: a miss


def test_hybrid_weights_are_chosen_without_the_document_they_are_measured_on():
    lexical_helps = [_case([0.6, 0.5], 1, coverage=[0.0, 1.0])]  # only lexical coverage lifts the right entry
    lexical_hurts = [_case([0.6, 0.5], 0, coverage=[0.0, 1.0])]
    cases = {"a": lexical_helps, "b": lexical_helps, "odd": lexical_hurts}
    assert choose_weights(cases, without="odd").lexical >= 0.2  # the others need coverage to weigh
    assert choose_weights(cases, without="a").lexical <= 0.1  # with "odd" in, ties go to the grid's first
    assert all(w in WEIGHT_GRID for w in (choose_weights(cases), DEFAULT_WEIGHTS))


def test_a_result_under_the_minimum_score_counts_as_no_match_whatever_the_model_says():
    model = NoMatchModel(weights=(0.0,), bias=-100.0, threshold=0.5)  # never rejects
    assert decided(Outcome([1], False, below_minimum=True), model, 0.0).no_match
    assert not decided(Outcome([1], False), model, 0.0).no_match
