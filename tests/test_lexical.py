"""Lexical evidence: stemming, typo correction, acronyms, BM25 and coverage on small hand-made records."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from indexer.documents.records import Record
from indexer.retrieval.lexical import LexicalIndex
from indexer.retrieval.tokens import acronyms, apply_corrections, damerau_distance, stem


def record(i: int, question: str, answer: str = "") -> Record:
    return Record(id=i, question=question, answer=answer, status="ok" if answer else "missing", line=i)


@pytest.fixture
def lexical() -> LexicalIndex:
    return LexicalIndex.from_records(
        [
            record(1, "What are vanishing gradients?", "Gradients shrink through many layers."),
            record(2, "Explain Generative Adversarial Network.", "Two networks compete."),
            record(3, "How does YOLO work?"),
            record(4, "What is dropout?", "Dropping units at random during training."),
        ]
    )


@pytest.mark.parametrize(
    "word, expected",
    [
        ("gradients", "gradient"),
        ("batches", "batch"),
        ("labelled", "label"),
        ("evaluating", "evaluat"),
        ("evaluate", "evaluat"),
        ("classes", "class"),
    ],
)
def test_stemming_meets_plurals_and_verb_forms(word, expected):
    assert stem(word) == expected


def test_damerau_distance_counts_a_swap_as_one_edit():
    assert damerau_distance("dropuot", "dropout", 2) == 1
    assert damerau_distance("netwrok", "network", 2) == 1
    assert damerau_distance("kitten", "sitting", 1) == 2  # past the limit


def test_typos_are_corrected_to_document_words_but_short_words_are_left_alone(lexical):
    match = lexical.match("vanishng gradents and dropuot")
    assert match.corrected == {"vanishng": "vanishing", "gradents": "gradients", "dropuot": "dropout"}
    assert lexical.correct("bake") is None  # too short to guess
    assert apply_corrections("Vanishng gradents", match.corrected) == "vanishing gradients"


@pytest.fixture
def words_index() -> LexicalIndex:
    return LexicalIndex.from_records(
        [
            record(1, "What is an autoencoder?", "A network that learns to rebuild its input."),
            record(2, "Why use batch norm?", "It keeps activations in range."),
            record(3, "What does the firewall block?", "Incoming connections that matter to attackers."),
            record(4, "How do k nearest neighbors vote?", "By the labels of the closest points."),
            record(5, "Where is the guest network?", "In the app settings."),
        ]
    )


VOCABULARY = frozenset({"master", "password", "guest", "network", "neighbours", "neighbors", "batch", "fire", "wall"})


def test_a_real_word_of_the_model_vocabulary_is_never_corrected(words_index):
    match = words_index.match("master password", VOCABULARY)
    assert "master" not in match.corrected  # not "matter", though one edit away and in the document
    assert words_index.correct("master", VOCABULARY) is None


def test_one_edit_typos_of_document_words_are_found(words_index):
    assert words_index.match("autoencodr", VOCABULARY).corrected == {"autoencodr": "autoencoder"}
    # with the vocabulary to rule out real words, short non-words are corrected too
    assert words_index.match("gest network", VOCABULARY).corrected == {"gest": "guest"}
    assert words_index.correct("gest") is None  # without it, 4 letters are too few to guess


def test_run_together_and_split_words_meet_the_documents_spelling(words_index):
    together = words_index.match("batchnorm", VOCABULARY)
    assert together.corrected == {"batchnorm": "batch norm"} and int(np.argmax(together.coverage)) == 1
    apart = words_index.match("fire wall", VOCABULARY)
    assert apart.corrected == {"fire wall": "firewall"} and int(np.argmax(apart.coverage)) == 2
    assert apart.unknown_share == 0.0  # "fire" and "wall" no longer count as words the document lacks
    assert apply_corrections("the Fire  Wall rules", apart.corrected) == "the firewall rules"


def test_british_and_american_spellings_meet(words_index):
    assert words_index.match("neighbours", VOCABULARY).corrected == {"neighbours": "neighbors"}


def test_acronyms_meet_their_spelled_out_forms_both_ways(lexical):
    assert "gan" in acronyms("Explain Generative Adversarial Network.")
    assert int(np.argmax(lexical.match("GAN").coverage)) == 1
    assert int(np.argmax(lexical.match("you only look once").coverage)) == 2


def test_bm25_prefers_the_entry_with_the_rare_term_and_coverage_is_a_share(lexical):
    match = lexical.match("dropout training")
    assert int(np.argmax(match.scores)) == 3
    assert match.coverage[3] == pytest.approx(1.0) and 0 <= match.coverage.min()
    unknown = lexical.match("kubernetes pod")
    assert unknown.unknown_share == 1.0 and unknown.coverage.max() == 0


def _reference_match(index: LexicalIndex, terms: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """BM25 and coverage of every record computed record by record from the postings, the slow way."""
    unknown_weight = np.log(1 + (index.size + 0.5) / 0.5)
    weights = {t: float(index.idf[index.term_id[t]]) if t in index.term_id else unknown_weight for t in set(terms)}
    bm25, coverage = np.zeros(index.size), np.zeros(index.size)
    for position in range(index.size):
        fields = [0.0, 0.0]
        for term in {t for t in terms if t in index.term_id}:
            term_id = index.term_id[term]
            for n, (postings, lengths, mean) in enumerate(zip(index.fields, index.lengths, index.mean_lengths)):
                ids, counts = postings.of(term_id)
                if position in ids:
                    tf = float(counts[list(ids).index(position)])
                    norm = 1.2 * (1 - 0.75 + 0.75 * lengths[position] / mean)
                    fields[n] += index.idf[term_id] * tf * 2.2 / (tf + norm)
            if index.holds(position, term):
                coverage[position] += weights[term]
        bm25[position] = max(fields)
    return bm25, coverage / sum(weights.values())


@pytest.mark.parametrize("query", ["dropout training", "gradients in many layers", "network training units", "zzz"])
def test_scores_summed_over_the_records_holding_a_term_equal_every_records_scores(lexical, query):
    match = lexical.match(query)
    bm25, coverage = _reference_match(lexical, match.terms)
    np.testing.assert_allclose(match.scores, bm25, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(match.coverage, coverage, rtol=1e-5, atol=1e-6)
    assert match.held is not None and list(match.held) == [p for p in range(lexical.size) if coverage[p] > 0]


def test_best_takes_the_highest_bm25_records_and_never_one_without_a_query_term(lexical):
    match = lexical.match("dropout training gradients")
    assert set(match.best(1).tolist()) == {int(np.argmax(match.scores))}
    assert sorted(match.best(10).tolist()) == [0, 3]  # two records hold a query term: no filler
    assert lexical.match("kubernetes").best(10).size == 0
    derived = dataclasses.replace(match, held=None)  # a match made by hand: the held records from its scores
    assert sorted(derived.best(10).tolist()) == [0, 3] and derived.best(1).tolist() == match.best(1).tolist()


def test_scores_do_not_depend_on_the_hash_seed(tmp_path):
    """Terms are summed in query order, not set order: the same query gives the same bits in any process."""
    script = (
        "import sys, numpy as np\n"
        "from indexer.documents.records import Record\n"
        "from indexer.retrieval.lexical import LexicalIndex\n"
        "words = 'alpha beta gamma delta epsilon zeta eta theta iota kappa'.split()\n"
        "records = [Record(i, ' '.join(words[i % 10 :][:4]), ' '.join(words[: i % 7 + 1]), 'ok', i)\n"
        "           for i in range(40)]\n"
        "m = LexicalIndex.from_records(records).match('alpha gamma epsilon eta iota kappa zzzz qqqq')\n"
        "sys.stdout.write(m.scores.tobytes().hex() + m.coverage.tobytes().hex() + repr(m.unknown_share))\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[1],
        ).stdout
        for seed in ("1", "2", "3", "4", "5", "6")
    }
    assert len(outputs) == 1


def _arrays_equal(a: LexicalIndex, b: LexicalIndex) -> bool:
    left, right = a.to_arrays(), b.to_arrays()
    return left.keys() == right.keys() and all(
        left[k].dtype == right[k].dtype and np.array_equal(left[k], right[k]) for k in left
    )


def test_an_updated_index_equals_one_built_from_scratch_after_random_edits():
    import random

    from indexer.retrieval.tokens import entry_tokens

    rng = random.Random(4)
    vocabulary = (
        "gradient descent Generative Adversarial Network dropout layers batch normalisation "
        "overfitting kernel trick Support Vector Machine recall precision labelled labels".split()
    )

    def text() -> str:
        return " ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 12)))

    texts = [(text(), text()) for _ in range(60)]
    base = LexicalIndex.from_entries([entry_tokens(q, a) for q, a in texts])
    for _ in range(25):
        order = [i for i in rng.sample(range(len(texts)), len(texts)) if rng.random() > 0.1]  # moved, some gone
        edited = [texts[i] for i in order]
        kept = np.array(order, dtype=np.int64)
        for _ in range(rng.randint(0, 6)):  # edited and inserted entries
            j = rng.randrange(len(edited) + 1)
            edited.insert(j, (text(), text() + " brandnew"))
            kept = np.insert(kept, j, -1)
        still = set(kept[kept >= 0].tolist())
        removed = [entry_tokens(*texts[i]) for i in range(len(texts)) if i not in still]
        added = {i: entry_tokens(*edited[i]) for i in np.flatnonzero(kept < 0).tolist()}
        updated = base.updated(kept, added, removed)
        assert updated is not None
        assert _arrays_equal(updated, LexicalIndex.from_entries([entry_tokens(q, a) for q, a in edited]))


def test_an_index_saved_without_word_counts_cannot_be_updated(lexical):
    arrays = lexical.to_arrays()
    del arrays["spelling_counts"]  # what builds before incremental updates saved
    old = LexicalIndex.from_arrays(arrays)
    assert old.updated(np.arange(old.size), {}, []) is None


def test_a_stop_word_is_never_joined_to_its_neighbour_and_a_real_word_is_never_split():
    index = LexicalIndex.from_records(
        [record(1, "What is asymmetric encryption?", "Not able to understand, under stand."), record(2, "Keys")]
    )
    match = index.match("symmetric is a symmetric key", frozenset({"symmetric", "notable", "understand"}))
    assert "asymmetric" not in match.terms and match.terms.count("symmetric") == 2
    assert index.match("notable", frozenset({"notable"})).corrected == {}
    assert index.match("notable").corrected == {"notable": "not able"}  # without a vocabulary it may split


def test_every_word_of_a_query_counts_once_joined_or_not(words_index):
    match = words_index.match("fire wall fire", VOCABULARY)
    assert match.terms.count("firewal") == 1 and match.terms.count("fire") == 1


def test_corrections_are_applied_whatever_case_folding_a_query_uses():
    # re.IGNORECASE lets the long s match "s"; the text is then kept as typed, never a KeyError
    assert apply_corrections("ensmble enſmble", {"ensmble": "ensemble"}) == "ensemble enſmble"


def test_capitalised_stop_words_make_no_acronym():
    assert acronyms("What Is the Cost Function?") == ["cf"]
    assert "gan" in acronyms("Explain Generative Adversarial Network.")


def test_a_one_edit_typo_is_read_before_a_split_into_two_document_words(words_index):
    index = LexicalIndex.from_records(
        [record(1, "What are stateless components?", "They keep no state."), record(2, "Is less more?", "A stat.")]
    )
    assert index.match("statless components", VOCABULARY).corrected == {"statless": "stateless"}  # not "stat less"
    assert words_index.match("batchnorm", VOCABULARY).corrected == {"batchnorm": "batch norm"}  # no typo reading


def test_a_match_keeps_each_word_as_searched_and_the_index_says_which_record_holds_a_term(lexical):
    match = lexical.match("vanishng gradients of a gan")
    assert match.words == (("vanishing", "vanish"), ("gradients", "gradient"), ("gan", "gan"))
    assert lexical.holds(0, "gradient") and lexical.holds(1, "gan")  # in the answer, and as initials
    assert not lexical.holds(1, "gradient") and not lexical.holds(0, "zebra")
