"""Per-index calibration from readers' feedback: enough feedback or none, the refit judged by
cross-validation, the parameters kept across rebuilds and shown by `info`."""

from __future__ import annotations

import json

import pytest
from core_fixtures import CORPUS, DEV_QUERIES, ROOT

from indexer.analysis.queryfiles import load_queries
from indexer.cli import main
from indexer.engine import QAIndex
from indexer.indexing.build import build
from indexer.retrieval.nomatch import DEFAULT_NO_MATCH, NoMatchModel
from indexer.stores.disk import FaissStore
from indexer.usage.calibration import MIN_OF_EACH, saved_parameters


def give_feedback(qa: QAIndex, queries) -> None:
    """Each labelled query searched and marked as a reader would: its entry answered it, or none did."""
    for query in queries:
        row = qa.log_search(qa.search(query.query))
        if query.relevant:
            qa.query_log.feedback(row, answered=query.relevant[0])
        else:
            qa.query_log.feedback(row, none_of_these=True)


@pytest.fixture
def logged_index(tmp_path, monkeypatch):
    monkeypatch.delenv("INDEXER_QUERY_LOG", raising=False)
    index_dir = tmp_path / "index"
    return QAIndex.open([CORPUS], index_dir), index_dir


def test_without_enough_feedback_the_parameters_in_use_stay(logged_index, capsys):
    qa, index_dir = logged_index
    give_feedback(qa, load_queries(DEV_QUERIES)[: MIN_OF_EACH - 1])
    code = main(["calibrate", "--from-log", "--save", "--index-dir", str(index_dir), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["enough"] is False and data["saved"] is False
    assert FaissStore(index_dir).read_manifest()["no_match"] == DEFAULT_NO_MATCH.to_dict()


def test_with_enough_feedback_the_refit_is_judged_and_saved_only_when_better(logged_index, capsys):
    qa, index_dir = logged_index
    give_feedback(qa, load_queries(DEV_QUERIES) + load_queries(ROOT / "eval" / "extra_queries.jsonl"))
    code = main(["calibrate", "--from-log", "--save", "--index-dir", str(index_dir), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert (
        code == 0 and data["enough"] is True and data["answerable"] + data["unanswerable"] >= 150
    )  # repeats count once
    current, refitted = data["current"], data["refitted_cross_validated"]
    loss = lambda m: m["false_rejection"] + 1 - m["no_match_accuracy"]  # noqa: E731
    assert data["better"] == (loss(refitted) < loss(current)) and data["saved"] == data["better"]
    saved = FaissStore(index_dir).read_manifest()["no_match"]
    assert (saved.get("fitted_on") == "feedback") == data["saved"]


def test_calibrated_parameters_survive_a_rebuild_and_info_shows_them(tmp_path, fake_encoder, capsys):
    store = FaissStore(tmp_path / "index")
    document = tmp_path / "doc.md"
    document.write_text(CORPUS.read_text())
    calibrated = saved_parameters(NoMatchModel((1.0, -2.0, 0.5, 3.0, -1.0), 0.3, 0.6, 0.4), queries=57)
    build([document], store, lambda: fake_encoder, "fake-model", no_match=calibrated)
    document.write_text(document.read_text() + "\n**999. What is a brand new question?**\n\nIts answer.\n")
    build([document], store, lambda: fake_encoder, "fake-model")  # an edit: a rebuild keeps what was calibrated
    manifest = store.read_manifest()
    assert manifest["no_match"] == calibrated and manifest["record_count"] == 83
    assert NoMatchModel.from_dict(manifest["no_match"]).weights == (1.0, -2.0, 0.5, 3.0, -1.0)
    main(["info", "--index-dir", str(tmp_path / "index"), "--source", str(document), "--model", "fake-model"])
    assert "fitted on 57 logged queries with feedback" in capsys.readouterr().out


def test_info_says_when_a_calibration_from_feedback_was_for_older_evidence():
    from indexer.usage.calibration import describe

    current = saved_parameters(DEFAULT_NO_MATCH, 120)
    assert describe(current).startswith("fitted on 120 logged queries")
    older = {**current, "features": current["features"][:-1]}  # saved before a feature was added
    assert NoMatchModel.from_dict(older) == DEFAULT_NO_MATCH  # not used...
    assert describe(older).startswith("shipped") and "run calibrate again" in describe(older)  # ...and said so
