"""Text helpers: questions cleaned for display, answers reduced to plain words, link detection."""

from __future__ import annotations

import pytest

from indexer.documents.text import (
    clean_question,
    has_links,
    is_nav_line,
    only_link_words,
    plain_text,
    prose_text,
    strip_boilerplate,
)

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
    assert clean_question("**What is X?** [[src](https://en.wikipedia.org/wiki/X_(y))]") == "What is X?"


@pytest.mark.parametrize(
    "markdown, expected",
    [
        ("[x](a(b) tail", "x tail"),  # an unclosed "(" in a URL: the link still goes, as before
        ("[x](a(b)c) tail", "x tail"),
        ("a ` stray backtick then <b>bold</b>", "a stray backtick then bold"),
        ("`one line`\n<b>next</b> `", "one line next"),
    ],
)
def test_malformed_links_and_unpaired_backticks_degrade_gracefully(markdown, expected):
    assert plain_text(markdown) == expected


def test_code_spans_keep_their_underscores_and_stars():
    assert plain_text("Define `__init__` and use `a*b`, not __bold__.") == "Define __init__ and use a*b, not bold."
    assert clean_question("**What does `__init__` do?**") == "What does __init__ do?"


def test_fenced_code_keeps_its_tags_and_symbols():
    assert (
        plain_text('Markup:\n\n```html\n<div class="a_b">*x*</div>\n```\n\n<b>after</b>')
        == 'Markup: <div class="a_b">*x*</div> after'
    )


def test_a_one_line_triple_backtick_span_is_code_not_a_fence():
    assert plain_text("```print(1)``` then <b>more</b>") == "print(1) then more"


def test_link_text_with_brackets_is_one_link():
    assert prose_text("[[Answer]](https://x.org/a)") == ""
    assert plain_text("[[↑] Back to top](#top)") == "[↑] Back to top"


def test_boilerplate_is_left_out_of_the_embedded_answer():
    answer = (
        "A key.\n\n###### Source\n\n* https://github.com/x/y\n\n[[↑] Back to top](#SQL)\n\n"
        "- [What is X?](#what-is-x)\n- [What is Y?](#what-is-y)"
    )
    assert strip_boilerplate(answer).strip() == "A key."
    assert plain_text(strip_boilerplate(answer)) == "A key."


def test_a_source_word_in_prose_and_code_is_not_boilerplate():
    answer = "Sources of error are many.\n\n```\n# Source\nx = 1\n```"
    assert strip_boilerplate(answer) == answer


@pytest.mark.parametrize(
    "prose, only", [("Answer", True), ("see here", True), ("src", True), ("Yes, see here", False), ("", True)]
)
def test_words_around_a_link(prose, only):
    assert only_link_words(prose) is only


@pytest.mark.parametrize(
    "line, nav",
    [
        ("[[↑] Back to top](#SQL)", True),
        ("**[⬆ Back to Top](#table-of-contents)**", True),
        ('<div align="right"><a href="#top">Back to top</a></div>', True),
        ("- [What is X?](#what-is-x)", True),
        ("See [the intro](#intro) for more.", False),
        ("[docs](https://x.org)", False),
    ],
)
def test_lines_of_in_page_links_only_are_navigation(line, nav):
    assert is_nav_line(line) is nav
