"""`QAIndex` over many items at once: a batch search and batched hints give what one-by-one calls give."""

from __future__ import annotations

import json
import threading

import pytest
from core_fixtures import DEV_QUERIES

import indexer.retrieval.search as search_module
from indexer.defaults import MODES
from indexer.engine import BATCH_CHUNK
from indexer.errors import QueryError
from indexer.retrieval.nomatch import FEATURES


def outcome(result) -> tuple:
    """What a batch must reproduce: the entries in order and whether there was a match (scores may differ
    in the last float bits: a query embedded beside others is padded differently)."""
    return [hit.record.id for hit in result.hits], [hit.record.id for hit in result.nearest], result.no_match


def test_a_batch_search_gives_what_one_by_one_searches_give_in_order(real_index):
    queries = [json.loads(line)["query"] for line in DEV_QUERIES.read_text().splitlines() if line.strip()]
    queries = (queries * 3)[: 2 * BATCH_CHUNK + 5]  # several chunks, so several workers
    queries[7] = "   "
    results = real_index.search_many(queries, k=5, min_score=0.0)
    assert len(results) == len(queries) and isinstance(results[7], QueryError)
    for query, result in zip(queries, results):
        if query.strip():
            alone = real_index.search(query, k=5, min_score=0.0)
            assert outcome(result) == outcome(alone) and result.query == alone.query
            assert [h.score for h in result.nearest] == pytest.approx([h.score for h in alone.nearest], abs=1e-5)


@pytest.mark.parametrize("path", ["exhaustive", "section", "vector index"])
def test_a_batch_search_in_every_mode_gives_exactly_what_one_by_one_searches_give(
    tmp_path, fake_encoder, monkeypatch, path
):
    """The fake encoder embeds a query alone as in a batch, so everything must be equal (the real model's
    batches are padded, hence the tolerance above)."""
    from core_fixtures import CORPUS

    from indexer.engine import QAIndex
    from indexer.indexing.build import build
    from indexer.stores.disk import FaissStore

    text = CORPUS.read_text(encoding="utf-8")
    source = tmp_path / "corpus.md"  # the bundled corpus in two sections
    source.write_text(text.replace("**1. ", "## Basics\n\n**1. ").replace("**41. ", "## More\n\n**41. "), "utf-8")
    build([source], FaissStore(tmp_path / "index"), lambda: fake_encoder, fake_encoder.model)
    qa = QAIndex.open([source], tmp_path / "index", fake_encoder.model, encoder_factory=lambda model: fake_encoder)
    assert qa.sections() == ["Basics", "More"]
    if path == "vector index":  # as past 20,000 rows: each query's candidates come from FAISS
        monkeypatch.setattr(search_module, "_EXHAUSTIVE_ROWS", 0)
    section = "More" if path == "section" else None
    queries = [json.loads(line)["query"] for line in DEV_QUERIES.read_text().splitlines() if line.strip()]
    queries = (queries * 3)[: 2 * BATCH_CHUNK + 5]  # three chunks, each scored at once
    queries[3] = "overfiting and regularisaton"  # corrected typos: two vectors for one query
    for mode in MODES:
        results = qa.search_many(queries, k=5, min_score=0.3, mode=mode, section=section)
        for query, result in zip(queries, results):
            # to the last bit: ids, order, scores, evidence, confidence, notes
            assert result == qa.search(query, k=5, min_score=0.3, mode=mode, section=section), (mode, query)


def test_a_batch_search_of_nothing_is_empty(real_index):
    assert real_index.search_many([]) == []


def test_hints_of_every_missing_entry_at_once_equal_hints_one_by_one(real_index):
    missing = [record.id for record in real_index.missing()]
    together = real_index.hints_many(missing)
    assert len(together) == len(missing) == 10
    for record_id, hints in zip(missing, together):
        alone = real_index.hints(record_id)
        assert [h.record.id for h in hints] == [h.record.id for h in alone]
        assert [h.score for h in hints] == pytest.approx([h.score for h in alone], abs=1e-6)
        assert all(h.record.has_answer and h.record.id != record_id for h in hints)


def test_hints_of_no_entries_are_none(real_index):
    assert real_index.hints_many([]) == []


def test_a_preloaded_encoder_is_made_once_while_opening_and_then_used(tmp_path, fake_encoder):
    from core_fixtures import CORPUS

    from indexer.engine import QAIndex
    from indexer.indexing.build import build
    from indexer.stores.disk import FaissStore

    build([CORPUS], FaissStore(tmp_path / "index"), lambda: fake_encoder, fake_encoder.model)
    made = []
    started = threading.Event()

    def factory(model: str):
        made.append(model)
        started.set()
        return fake_encoder

    qa = QAIndex.open([CORPUS], tmp_path / "index", fake_encoder.model, encoder_factory=factory, preload_encoder=True)
    assert started.wait(timeout=30)  # made without any search asking for it
    assert qa.search("what is overfitting").nearest and qa.encoder is fake_encoder
    assert made == [fake_encoder.model]


def test_a_search_through_the_engine_weighs_what_its_best_entry_lacks(tmp_path, fake_encoder):
    from core_fixtures import CORPUS

    from indexer.engine import QAIndex
    from indexer.indexing.build import build
    from indexer.retrieval.nomatch import FEATURES
    from indexer.stores.disk import FaissStore

    build([CORPUS], FaissStore(tmp_path / "index"), lambda: fake_encoder, fake_encoder.model)
    qa = QAIndex.open([CORPUS], tmp_path / "index", fake_encoder.model, encoder_factory=lambda model: fake_encoder)
    fake_encoder.encoded.clear()
    query = "what is overfitting in zebras"
    result = qa.search(query)
    top = qa.stored.position_of[result.nearest[0].record.id]
    left = [word for word, term in qa.lexical.match(query).words if not qa.lexical.holds(top, term)]
    assert "zebras" in left and fake_encoder.encoded == [query, " ".join(left)]  # the leftover, on its own
    evidence = dict(zip(FEATURES, result.evidence))
    assert evidence["remainder_gap"] != evidence["gap_to_mean"]


def test_a_search_with_words_left_over_runs_the_real_model_once(real_index, monkeypatch):
    encoder, runs = real_index.encoder, []
    for name in ("encode", "encode_with_states"):
        run = getattr(encoder, name)
        monkeypatch.setattr(
            encoder,
            name,
            lambda texts, *a, _run=run, _name=name, **k: runs.append((_name, texts)) or _run(texts, *a, **k),
        )
    query = "what is overfitting in zebras"
    result = real_index.search(query)
    top = real_index.stored.position_of[result.nearest[0].record.id]
    assert not real_index.lexical.holds(top, "zebra")  # "zebras" is left over...
    assert runs == [("encode_with_states", [query])]  # ...and pooled from the query's run, not embedded again
    evidence = dict(zip(FEATURES, result.evidence))
    assert evidence["remainder_gap"] != evidence["gap_to_mean"]


def test_each_query_keeps_the_token_states_of_the_text_it_typed(real_index):
    typed = ["vanishng gradents", "   ", "Dropout, explained"]  # typos corrected, an empty one, a plain one
    encoded = real_index.encode(typed)
    assert isinstance(encoded[1], QueryError)
    for text, query in zip([typed[0], typed[2]], [encoded[0], encoded[2]]):
        assert query.states is not None and query.states.text.lower() == text.lower()
    assert len(encoded[0].vectors) == 2  # the corrected text was embedded too, but its states are not the ones kept


def test_the_no_match_evidence_does_not_change_with_case(real_index):
    """The model reads "Quantum Entanglement" as "quantum entanglement", so the leftover words' vector must
    too (every word is left over: it once took the query's vector for one and pooled states for the other)."""
    queries = ("quantum entanglement", "Quantum Entanglement", "QUANTUM entanglement")
    evidence = [dict(zip(FEATURES, real_index.search(query).evidence)) for query in queries]
    assert evidence[0]["coverage_top"] == 0.0 and evidence[0] == evidence[1] == evidence[2]
