"""Lexical evidence: stemming, typo correction, acronyms, BM25 and coverage on small hand-made records."""
from __future__ import annotations

import numpy as np
import pytest

from indexer.lexical import LexicalIndex, acronyms, apply_corrections, damerau_distance, stem
from indexer.records import Record


def record(i: int, question: str, answer: str = "") -> Record:
    return Record(id=i, question=question, answer=answer, status="ok" if answer else "missing", line=i)


@pytest.fixture
def lexical() -> LexicalIndex:
    return LexicalIndex.from_records([
        record(1, "What are vanishing gradients?", "Gradients shrink through many layers."),
        record(2, "Explain Generative Adversarial Network.", "Two networks compete."),
        record(3, "How does YOLO work?"),
        record(4, "What is dropout?", "Dropping units at random during training."),
    ])


@pytest.mark.parametrize("word, expected", [("gradients", "gradient"), ("batches", "batch"), ("labelled", "label"),
                                            ("evaluating", "evaluat"), ("evaluate", "evaluat"), ("classes", "class")])
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
