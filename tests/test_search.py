"""Ranking logic with exact expectations: max fusion, matched_on, k, thresholds, related, FAISS vs brute force."""

from __future__ import annotations

import numpy as np
import pytest

import indexer.retrieval.search as search_module
from indexer.documents.records import Record
from indexer.errors import QueryError
from indexer.retrieval.embed import TokenStates, normalize
from indexer.retrieval.lexical import LexicalIndex, LexicalMatch
from indexer.retrieval.nomatch import CONFIDENCE_LEVELS, FEATURES, NoMatchModel
from indexer.retrieval.remainder import Remainder, pooled_words
from indexer.retrieval.search import (
    EncodedQuery,
    clean_query,
    mean_dense_score,
    related,
    related_many,
    search_many,
    spread_positions,
)
from indexer.retrieval.search import search as search_index
from indexer.stores.disk import RowTable, StoredIndex
from indexer.stores.vectors import vector_index


def make_index(
    question_vectors: np.ndarray, answer_vectors: list[np.ndarray | None], index_type: str = "flat"
) -> StoredIndex:
    records = [
        Record(
            id=i + 1,
            question=f"q{i + 1}",
            answer="" if a is None else f"a{i + 1}",
            status="missing" if a is None else "ok",
            line=i + 1,
        )
        for i, a in enumerate(answer_vectors)
    ]
    positions = list(range(len(records))) + [i for i, a in enumerate(answer_vectors) if a is not None]
    fields = ["question"] * len(records) + ["answer"] * (len(positions) - len(records))
    vectors = normalize(np.vstack([question_vectors] + [a[None, :] for a in answer_vectors if a is not None]))
    faiss_index = vector_index(vectors, index_type, vectors.shape[1])
    rows = RowTable(np.asarray(positions, dtype=np.int32), fields, [str(i) for i in range(len(fields))])
    return StoredIndex({"record_count": len(records)}, records, rows, vectors, faiss_index, path=None)


NEVER_NO_MATCH = NoMatchModel(weights=(0.0,) * len(FEATURES), bias=-100.0)
ALWAYS_NO_MATCH = NoMatchModel(weights=(0.0,) * len(FEATURES), bias=100.0)


def search(
    index: StoredIndex,
    vector: np.ndarray,
    text: str,
    k: int,
    min_score: float | None = None,
    no_match_model: NoMatchModel = NEVER_NO_MATCH,
):
    """Dense search with no lexical evidence, so expectations are exact cosines."""
    n = len(index.records)
    lexical = LexicalMatch(np.zeros(n, np.float32), [], {}, np.zeros(n, np.float32), 0.0)
    query = EncodedQuery(text, vector[None, :], lexical)
    return search_index(index, query, k, min_score, "dense", no_match_model, remainder=None)


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_score_is_the_best_field_and_matched_on_names_it():
    index = make_index(
        np.vstack([unit(1, 0, 0), unit(0, 1, 0), unit(1, 1, 0)]), [unit(0, 0, 1), unit(1, 0.05, 0), unit(1, 1, 0)]
    )
    result = search(index, unit(1, 0, 0), "q", k=3, min_score=-1)
    by_id = {h.record.id: h for h in result.hits}
    assert by_id[1].matched_on == "question" and by_id[1].score == pytest.approx(1.0)
    assert by_id[2].matched_on == "answer" and by_id[2].score == pytest.approx(float(unit(1, 0.05, 0)[0]))
    assert by_id[3].matched_on == "both" and by_id[3].score == pytest.approx(float(unit(1, 1, 0)[0]))
    assert [h.record.id for h in result.hits] == [1, 2, 3]


def test_entries_with_missing_answers_are_found_by_their_question_and_flagged():
    index = make_index(np.vstack([unit(1, 0), unit(0, 1)]), [None, unit(0.2, 1)])
    hit = search(index, unit(1, 0), "q", k=1).hits[0]
    assert hit.record.id == 1 and hit.record.missing and hit.answer_score is None
    assert hit.to_dict()["missing"] is True and hit.to_dict()["status"] == "missing"


def test_k_larger_than_the_index_returns_every_entry_once():
    index = make_index(np.vstack([unit(1, 0), unit(0, 1)]), [unit(1, 1), None])
    result = search(index, unit(1, 0), "q", k=50, min_score=-1)
    assert sorted(h.record.id for h in result.hits) == [1, 2]


def test_nothing_above_the_minimum_gives_no_match_but_keeps_the_nearest():
    index = make_index(np.vstack([unit(1, 0), unit(0, 1)]), [None, None])
    result = search(index, unit(-1, -0.1), "q", k=2, min_score=0.3)
    assert result.no_match and result.hits == [] and len(result.nearest) == 2
    assert result.to_dict() == {"query": "q", "no_match": True, "confidence": "no good match", "results": []}


def test_the_no_match_model_empties_the_results_but_keeps_the_nearest():
    index = make_index(np.vstack([unit(1, 0), unit(0, 1)]), [None, None])
    result = search(index, unit(1, 0), "q", k=2, min_score=-1, no_match_model=ALWAYS_NO_MATCH)
    assert result.no_match and result.hits == [] and [h.record.id for h in result.nearest] == [1, 2]


def test_results_below_the_minimum_are_dropped():
    index = make_index(np.vstack([unit(1, 0), unit(0, 1)]), [None, None])
    result = search(index, unit(1, 0.2), "q", k=2, min_score=0.5)
    assert [h.record.id for h in result.hits] == [1] and not result.no_match


def dense_oracle(index: StoredIndex, query: np.ndarray, position: int) -> float:
    """An entry's dense score by brute force: the best of its question and answer cosines."""
    rows = [index.question_row[position]] + ([index.answer_row[position]] if index.answer_row[position] >= 0 else [])
    return max(float(index.vectors[row] @ query) for row in rows)


def test_gap_to_mean_is_the_best_dense_score_above_the_querys_mean_over_the_entries():
    index = make_index(np.vstack([unit(1, 0, 0), unit(0, 1, 0), unit(0, 0, 1)]), [unit(1, 1, 0), None, unit(0, 1, 1)])
    query = unit(1, 0.5, 0.2)
    dense = [dense_oracle(index, query, i) for i in range(3)]
    assert mean_dense_score(index, query[None, :]) == pytest.approx(np.mean(dense), abs=1e-6)
    evidence = search(index, query, "q", k=2).evidence
    assert len(evidence) == len(FEATURES)
    assert evidence[FEATURES.index("gap_to_mean")] == pytest.approx(max(dense) - np.mean(dense), abs=1e-6)


def test_the_mean_of_a_large_index_is_measured_on_an_even_bounded_sample(monkeypatch):
    monkeypatch.setattr(search_module, "SPREAD_SAMPLE", 10)
    assert spread_positions(7).tolist() == list(range(7))
    positions = spread_positions(1000)
    assert len(positions) == 10 and positions[0] == 0 and positions[-1] == 999
    assert set(np.diff(positions).tolist()) <= {110, 111, 112}  # evenly spread over the document
    rng = np.random.default_rng(3)
    index = make_index(
        rng.normal(size=(300, 8)).astype(np.float32),
        [rng.normal(size=8).astype(np.float32) if i % 3 else None for i in range(300)],
    )
    scored = []
    monkeypatch.setattr(
        StoredIndex,
        "field_cosines_each",
        lambda self, q, p, real=StoredIndex.field_cosines_each: scored.append(len(p)) or real(self, q, p),
    )
    query = unit(*rng.normal(size=8))
    expected = np.mean([dense_oracle(index, query, i) for i in spread_positions(300).tolist()])
    assert mean_dense_score(index, query[None, :]) == pytest.approx(expected, abs=1e-6)
    assert scored == [10]  # the cost follows the sample, not the index


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_faiss_candidate_path_matches_brute_force(monkeypatch, index_type):
    rng = np.random.default_rng(7)
    n, d = 300, 24
    questions = rng.normal(size=(n, d)).astype(np.float32)
    answers = [rng.normal(size=d).astype(np.float32) if i % 4 else None for i in range(n)]
    index = make_index(questions, answers, index_type)
    monkeypatch.setattr(search_module, "_EXHAUSTIVE_ROWS", 0)  # force the FAISS path
    for _ in range(20):
        query = unit(*rng.normal(size=d))
        oracle = [(dense_oracle(index, query, i), i + 1) for i in range(n)]
        expected = [i for _, i in sorted(oracle, key=lambda t: (-t[0], t[1]))[:10]]
        got = [h.record.id for h in search(index, query, "q", k=10, min_score=-1).hits]
        if index_type == "flat":
            assert got == expected
        else:
            assert len(set(got) & set(expected)) >= 9  # HNSW is approximate


@pytest.mark.parametrize("chosen", [slice(None), slice(5, 30)])  # one product over every row; chosen rows only
def test_many_queries_scored_at_once_get_each_querys_own_field_cosines_to_the_last_bit(monkeypatch, chosen):
    from threadpoolctl import threadpool_limits

    import indexer.stores.vectors as vectors_module

    monkeypatch.setattr(vectors_module, "_SCORE_BLOCK_ROWS", 16)  # several blocks; 17 chosen answers: 16 + 1
    rng = np.random.default_rng(3)
    n, d = 150, 384  # the model's dimension: BLAS kernels round differently than at toy sizes
    answers = [rng.normal(size=d).astype(np.float32) if i % 3 else None for i in range(n)]
    index = make_index(rng.normal(size=(n, d)).astype(np.float32), answers)
    positions = np.arange(n)[chosen]
    query_sets = [normalize(rng.normal(size=(size, d)).astype(np.float32)) for size in (1, 2, 1, 1, 1, 2, 1)]
    with threadpool_limits(1, user_api="blas"):  # as search_many runs (a BLAS thread split rounds apart)
        together = index.field_cosines_each(query_sets, positions)
        alone = [index.field_cosines(queries, positions) for queries in query_sets]
    assert len(together) == len(query_sets)
    for (question, answer), (alone_question, alone_answer) in zip(together, alone):
        np.testing.assert_array_equal(question, alone_question)
        np.testing.assert_array_equal(answer, alone_answer)  # NaN where the entry has no answer
        assert np.isnan(answer).tolist() == [answers[p] is None for p in positions.tolist()]
    assert index.field_cosines_each([], positions) == []


def test_related_excludes_the_entry_itself_and_can_skip_unanswered():
    index = make_index(
        np.vstack([unit(1, 0, 0), unit(1, 0.1, 0), unit(1, 0.3, 0), unit(0, 0, 1)]),
        [unit(1, 0, 0), None, unit(1, 0.2, 0), unit(0, 0, 1)],
    )
    assert [h.record.id for h in related(index, 1, k=2)] == [2, 3]
    assert [h.record.id for h in related(index, 1, k=2, answered_only=True)] == [3, 4]
    with pytest.raises(QueryError, match="no entry"):
        related(index, 99)


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_entries_tied_at_the_last_place_go_to_the_earlier_ones_alone_or_all_at_once(index_type):
    # after 30 other entries, entries 31-36 ask the same question and 37 asks it too, with no answer:
    # every hint of 37 ties
    rng = np.random.default_rng(4)
    others = [unit(0, 0, *rng.normal(size=6)) for _ in range(30)]
    same = unit(1, 0.2, 0, 0, 0, 0, 0, 0)
    index = make_index(np.vstack(others + [same] * 7), others + [unit(0, 1, 0, 0, 0, 0, 0, 0)] * 6 + [None], index_type)
    alone = [h.record.id for h in related(index, 37, k=3, answered_only=True)]
    (together,) = related_many(index, [37], k=3, answered_only=True)
    assert alone == [h.record.id for h in together] == [31, 32, 33]


def test_hints_crowded_out_by_unanswered_near_duplicates_are_searched_again_alone():
    # 60 unanswered copies of one question fill the nearest rows of each of them; the answered entries are further
    copies = [unit(1, 0.01 * i, 0) for i in range(60)]
    index = make_index(
        np.vstack(copies + [unit(1, 1, 0), unit(1, 2, 0), unit(0, 0, 1)]), [None] * 60 + [unit(1, 1, 0)] * 3
    )
    together = related_many(index, [1, 2], k=2, answered_only=True)
    assert [[h.record.id for h in hits] for hits in together] == [[61, 62], [61, 62]]
    assert [[h.record.id for h in hits] for hits in together] == [
        [h.record.id for h in related(index, record_id, k=2, answered_only=True)] for record_id in (1, 2)
    ]


@pytest.mark.parametrize("query, message", [("", "empty"), ("   \t\n", "empty"), ("?!…", "no letters")])
def test_unusable_queries_raise_a_clear_error(query, message):
    with pytest.raises(QueryError, match=message):
        clean_query(query)


def test_queries_are_cleaned_and_very_long_ones_cut_with_a_note():
    assert clean_query("  what\x00 is\x1b  x? ") == ("what is x?", [])
    text, notes = clean_query("word " * 100_000)
    assert len(text) == search_module.MAX_QUERY_CHARS and "cut" in notes[0]
    assert clean_query("什么是过拟合")[0] == "什么是过拟合"


def test_the_list_is_sorted_by_the_score_it_shows_in_hybrid_mode():
    rng = np.random.default_rng(5)
    index = make_index(
        rng.normal(size=(30, 8)).astype(np.float32),
        [rng.normal(size=8).astype(np.float32) if i % 3 else None for i in range(30)],
    )
    coverage = rng.uniform(0, 1, size=30).astype(np.float32)
    lexical = LexicalMatch(np.zeros(30, np.float32), ["t"], {}, coverage, 0.0)
    result = search_index(
        index,
        EncodedQuery("q", unit(*rng.normal(size=8))[None, :], lexical),
        10,
        -1.0,
        "hybrid",
        NEVER_NO_MATCH,
        remainder=None,
    )
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True) and len(scores) == 10
    other_weight, lexical_weight = search_module.OTHER_FIELD_WEIGHT, search_module.LEXICAL_WEIGHT
    for hit in result.hits:  # the shown score is the fused value; the field cosines stay available
        fields = [hit.question_score] + ([hit.answer_score] if hit.answer_score is not None else [])
        # no answer: half the question's cosine stands in for it
        best, other = max(fields), min(fields) if len(fields) == 2 else hit.question_score / 2
        fused = (best + other_weight * other + lexical_weight * coverage[hit.record.id - 1]) / (
            1 + other_weight + lexical_weight
        )
        assert hit.score == pytest.approx(fused, abs=1e-5)


@pytest.mark.parametrize("bias", [-100.0, -2.0, 0.0, 2.0, 100.0])
def test_confidence_is_one_of_three_levels_and_agrees_with_no_match(bias):
    index = make_index(np.vstack([unit(1, 0), unit(0, 1)]), [None, unit(1, 1)])
    model = NoMatchModel(weights=(0.0,) * len(FEATURES), bias=bias, threshold=0.6, good_below=0.3)
    result = search(index, unit(1, 0.1), "q", k=2, min_score=-1, no_match_model=model)
    assert result.confidence in CONFIDENCE_LEVELS
    assert (result.confidence == "no good match") == result.no_match == (bias >= 0.5)
    assert result.to_dict()["confidence"] == result.confidence
    p = 1 / (1 + np.exp(-bias))
    expected = "no good match" if p >= 0.6 else "good match" if p < 0.3 else "possibly related"
    assert result.confidence == expected


def test_the_no_match_evidence_does_not_depend_on_k():
    rng = np.random.default_rng(11)
    index = make_index(rng.normal(size=(40, 8)).astype(np.float32), [rng.normal(size=8).astype(np.float32)] * 40)
    query = unit(*rng.normal(size=8))
    evidence = {k: search(index, query, "q", k=k, min_score=-1).evidence for k in (1, 5, 10, 20)}
    assert evidence[1] == evidence[5] == evidence[10] == evidence[20]


def test_the_remainder_gap_scores_the_words_the_best_entry_lacks_embedded_on_their_own():
    index = make_index(np.vstack([unit(1, 0, 0), unit(0, 1, 0), unit(0, 0, 1)]), [unit(1, 1, 0), None, None])
    lexical = LexicalIndex.from_records(index.records)  # entry 1 holds "q1" and "a1", entry 2 "q2"
    calls: list[list[str]] = []
    leftover = unit(0.2, 1, 0.4)
    remainder = Remainder(lexical, lambda texts: calls.append(texts) or np.vstack([leftover] * len(texts)))

    def evidence(text: str, with_remainder: Remainder | None = remainder) -> dict[str, float]:
        query = EncodedQuery(text, unit(1, 0, 0)[None, :], lexical.match(text))  # entry 1 is first
        found = search_index(index, query, 2, -1.0, "dense", NEVER_NO_MATCH, remainder=with_remainder)
        return dict(zip(FEATURES, found.evidence))

    dense = [dense_oracle(index, leftover, i) for i in range(3)]
    assert evidence("q1 zebra a1 q2")["remainder_gap"] == pytest.approx(dense[0] - np.mean(dense), abs=1e-6)
    assert calls == [["zebra q2"]]  # what entry 1 lacks, in query order
    # nothing left over, or no encoder at hand: the whole query's gap stands in, and nothing is embedded
    for whole in (evidence("a1 q1"), evidence("q1 zebra", None)):
        assert whole["remainder_gap"] == whole["gap_to_mean"] and len(calls) == 1


def test_leftover_words_are_pooled_from_the_query_s_own_token_states_instead_of_embedded_again():
    index = make_index(np.vstack([unit(1, 0, 0), unit(0, 1, 0), unit(0, 0, 1)]), [unit(1, 1, 0), None, None])
    lexical = LexicalIndex.from_records(index.records)  # entry 1 holds "q1" and "a1", entry 2 "q2"
    calls: list[list[str]] = []
    remainder = Remainder(lexical, lambda texts: calls.append(texts) or np.vstack([unit(1, 1, 1)] * len(texts)))
    text = "q1 Zebra a1 q2"  # a fake model run: tokens "q", "##1", "zebra", "a1", "q2"
    spans = np.array([[0, 1], [1, 2], [3, 8], [9, 11], [12, 14]])
    states = np.array([[9, 0, 0], [9, 0, 0], [0, 2, 0], [9, 9, 9], [0, 0, 6]], dtype=np.float32)

    def evidence(kept: TokenStates) -> dict[str, float]:
        query = EncodedQuery(text, unit(1, 0, 0)[None, :], lexical.match(text), states=kept)  # entry 1 is first
        found = search_index(index, query, 2, -1.0, "dense", NEVER_NO_MATCH, remainder=remainder)
        return dict(zip(FEATURES, found.evidence))

    pooled = unit(0, 1, 3)  # the mean of the states of "zebra" and "q2", what entry 1 lacks
    dense = [dense_oracle(index, pooled, i) for i in range(3)]
    assert evidence(TokenStates(text, states, spans))["remainder_gap"] == pytest.approx(dense[0] - np.mean(dense))
    assert calls == []  # no second model run
    # states of a text without those words (a typo corrected since): the words are embedded on their own
    evidence(TokenStates("q1 zebar a1 q2", states, spans))
    assert calls == [["zebra q2"]]


def test_pooled_words_take_every_token_of_every_occurrence_of_the_words_and_nothing_else():
    text = "Overfitting zebra zebras, zebra"  # tokens "over", "##fitting", "zebra", "zebra", "##s", ",", "zebra"
    spans = np.array([[0, 4], [4, 11], [12, 17], [18, 23], [23, 24], [24, 25], [26, 31]])
    states = np.eye(7, dtype=np.float32)
    kept = TokenStates(text, states, spans)
    for words, tokens in ((["overfitting"], [0, 1]), (["zebra"], [2, 6]), (["zebra", "overfitting"], [0, 1, 2, 6])):
        expected = normalize(states[tokens].mean(axis=0, keepdims=True))[0]
        assert np.allclose(pooled_words(kept, words), expected), words
    assert pooled_words(kept, ["zebra", "lion"]) is None  # a word the query never typed
    assert pooled_words(None, ["zebra"]) is None  # an encoder that keeps no states
    cut = TokenStates(text, states[:2], spans[:2])  # the model's run stopped after "overfitting"
    assert pooled_words(cut, ["overfitting", "zebra"]) is None  # not the vector of "overfitting" alone
    assert pooled_words(TokenStates("İzebra", states[:1], np.array([[1, 6]])), ["zebra"]) is None  # lower() moves it


def test_a_batch_embeds_the_leftover_words_of_all_its_queries_in_one_call():
    index = make_index(np.vstack([unit(1, 0), unit(0, 1)]), [None, None])
    lexical = LexicalIndex.from_records(index.records)
    calls: list[list[str]] = []
    remainder = Remainder(lexical, lambda texts: calls.append(texts) or np.vstack([unit(1, 1)] * len(texts)))
    texts, vectors = ["q1 zebra", "q2 lion", "q1"], [unit(1, 0), unit(0, 1), unit(1, 0)]  # each to its entry
    queries = [EncodedQuery(t, v[None, :], lexical.match(t)) for t, v in zip(texts, vectors)]
    together = search_many(index, queries, 2, -1.0, "dense", NEVER_NO_MATCH, remainder=remainder)
    assert calls == [["zebra", "lion"]]
    alone = [search_index(index, q, 2, -1.0, "dense", NEVER_NO_MATCH, remainder=remainder) for q in queries]
    assert together == alone


def test_a_leftover_that_is_the_whole_query_takes_the_query_vector_instead_of_embedding_it_again():
    index = make_index(np.vstack([unit(1, 0), unit(0, 1)]), [None, None])
    lexical = LexicalIndex.from_records(index.records)
    calls: list[list[str]] = []
    remainder = Remainder(lexical, lambda texts: calls.append(texts) or np.vstack([unit(0, 1)] * len(texts)))
    # "zebra lion" shares no word with its best entry: its leftovers are the query itself, as embedded
    queries = [EncodedQuery(t, unit(1, 0.1)[None, :], lexical.match(t)) for t in ("zebra lion", "q1 zebra")]
    found = search_many(index, queries, 2, -1.0, "dense", NEVER_NO_MATCH, remainder=remainder)
    assert calls == [["zebra"]]
    whole = dict(zip(FEATURES, found[0].evidence))
    assert whole["remainder_gap"] == whole["gap_to_mean"]  # the query's own vector, the query's own gap


def test_search_weighs_the_remainder_of_its_best_entry():
    index = make_index(np.vstack([unit(1, 0), unit(0, 1)]), [None, None])
    lexical = LexicalIndex.from_records(index.records)
    remainder = Remainder(lexical, lambda texts: unit(0, 1)[None, :])  # the leftover words point at entry 2
    query = EncodedQuery("q1 zebra", unit(1, 0.1)[None, :], lexical.match("q1 zebra"))
    evidence = search_index(index, query, 2, -1.0, "dense", NEVER_NO_MATCH, remainder=remainder).evidence
    # entry 1 is first; for "zebra" it stands 0.5 below the mean of the two (cosines 0 and 1)
    assert evidence[FEATURES.index("remainder_gap")] == pytest.approx(-0.5, abs=1e-6)
