"""Text helpers: questions cleaned for display, answers reduced to plain words, link detection."""
from __future__ import annotations

import pytest

from indexer.documents.text import clean_question, has_links, plain_text, prose_text

WIKI_LINK = "[BERT](https://en.wikipedia.org/wiki/BERT_(language_model))"


def test_link_url_with_balanced_parentheses_is_dropped_whole_from_the_question():
    assert clean_question(f"**1. What is {WIKI_LINK}?**") == "What is BERT?"


def test_html_tag_inside_a_code_span_is_kept_as_text():
    assert clean_question("**3. What is `<div>` in HTML?**") == "What is <div> in HTML?"


def test_html_outside_code_spans_is_still_stripped_and_unescaped():
    assert clean_question("What does `<b>` do to <i>x</i> &amp; y?") == "What does <b> do to x & y?"
    assert plain_text("<p>Use &lt;div&gt;</p>") == "Use <div>"


def test_answer_plain_text_keeps_link_and_image_text_without_urls():
    answer = f"See {WIKI_LINK} and ![the figure](img/fig_(1).png) for details."
    assert plain_text(answer) == "See BERT and the figure for details."
    assert prose_text(answer) == "See and for details."


def test_answer_of_one_parenthesised_link_has_links_and_no_prose():
    assert has_links(WIKI_LINK)
    assert prose_text(WIKI_LINK) == ""


def test_source_suffix_with_a_parenthesised_url_is_dropped():
    assert clean_question(f"**What is X?** [[src](https://en.wikipedia.org/wiki/X_(y))]") == "What is X?"


@pytest.mark.parametrize("markdown, expected", [
    ("[x](a(b) tail", "x tail"),  # an unclosed "(" in a URL: the link still goes, as before
    ("[x](a(b)c) tail", "x tail"),
    ("a ` stray backtick then <b>bold</b>", "a stray backtick then bold"),
    ("`one line`\n<b>next</b> `", "one line next"),
])
def test_malformed_links_and_unpaired_backticks_degrade_gracefully(markdown, expected):
    assert plain_text(markdown) == expected
