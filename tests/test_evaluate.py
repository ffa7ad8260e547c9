"""Evaluation maths on hand-made cases, the eval command, and the default mode against dense-only."""
from __future__ import annotations

import json
import math

import pytest

from core_fixtures import DEV_QUERIES, ROOT
from indexer.cli import main
from indexer.errors import QueryError
from indexer.analysis.evaluate import LabelledQuery, Outcome, cross_validate, load_queries, metrics, report, run_queries

EXTRA_QUERIES = ROOT / "eval" / "extra_queries.jsonl"


def test_metrics_of_known_ranks():
    queries = [LabelledQuery("a", [1], "x"), LabelledQuery("b", [2, 3], "x"), LabelledQuery("c", [4], "y"),
               LabelledQuery("d", [], "none"), LabelledQuery("e", [], "none")]
    outcomes = [Outcome([1, 9], False),           # rank 1
                Outcome([9, 8, 3, 2], True),      # first relevant at rank 3, but flagged no-match
                Outcome([9] * 10 + [4], False),   # beyond 10: a miss
                Outcome([5], True),               # correctly no match
                Outcome([5], False)]              # wrongly answered
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


@pytest.mark.parametrize("second_line", ['{"query": "no relevant"}', '{"query": "x", "relevant": [[1]]}',
                                         '{"query": "x", "relevant": [true]}', '{"query": "x", "relevant": [{}]}'])
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
