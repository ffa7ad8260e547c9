"""Where every line of a Markdown document went, so that nothing is lost without a word.

Each non-blank line gets one place: `question` or `answer` (in an entry), `layout` (a line of an entry
a reader skips: a solution marker, a separator, a back-to-top link), `title`, `metadata` (YAML or TOML
front matter), `preamble` (before the first entry, or under an "Introduction" heading), `contents` (a
table of contents), `section` (a section heading and any prose under it before its entries) or
`back matter` (references, credits, licence, contributing; reference links after the last answer).
Every paragraph of prose in no entry is listed with its line and why (`prose_not_taken`).
`markdown.py` decides the entries; this module only accounts for the lines.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from indexer.documents.lines import Line
from indexer.documents.text import clean_question, has_words, is_nav_line, prose_text

PLACES = ("question", "answer", "layout", "title", "metadata", "preamble", "contents", "section", "back matter")
# Places outside entries whose prose is listed as not taken; a table of contents lists entries, it is no
# prose of its own.
_PROSE_PLACES = frozenset({"preamble", "section", "back matter"})
_CONTENTS = re.compile(r"^(?:table of contents|contents|toc|index|questions|list of questions)$", re.I)
_FRONT = re.compile(r"^(?:introduction|intro|overview|preface|foreword|about this (?:faq|document|page|guide))$", re.I)
# Headings that close the entry list rather than introduce a section of it: one of these words, with at
# most one more word before or after ("Further reading", "Useful links", "Contributing guide",
# "Credits and thanks"), so that "Sources of bias" stays a heading like any other.
_BACK = re.compile(
    r"^(?:[\w-]+\s+)?(?:references?|sources?|resources|reading|see also|links|credits|acknowledge?ments?|thanks|"
    r"contribut\w*|licen[cs]e|sponsors?|authors?|changelog|footnotes|disclaimer)(?:\s+(?:&|and)\s+\w+|\s+[\w-]+)?$",
    re.IGNORECASE,
)


class Span(NamedTuple):
    """One entry's lines: its question from `start`, its body from `body` to `end` (exclusive); `kept`
    are the body lines its answer keeps, `back` the trailing ones that belong to the document."""

    start: int
    body: int
    end: int
    kept: frozenset[int]
    back: frozenset[int]


def heading_place(title: str) -> str:
    """The place a heading outside any entry opens: contents, preamble, back matter or a section."""
    clean = clean_question(title).strip(" :")
    if _CONTENTS.match(clean):
        return "contents"
    if _FRONT.match(clean):
        return "preamble"
    if _BACK.match(clean):
        return "back matter"
    return "section"


def is_matter_heading(title: str) -> bool:
    """True for front and back matter headings: never an entry, never a section name."""
    return heading_place(title) != "section"


def place_lines(lines: list[Line], spans: list[Span], title: int | None) -> tuple[list[str], list[int]]:
    """The place of every line ("" for blank ones), and for each line the index of the heading whose
    region it is in (-1 before any)."""
    places = [""] * len(lines)
    for span in spans:
        _place_span(lines, span, places)
    if title is not None:
        places[title] = "title"
    region, heading, under = "preamble", -1, [-1] * len(lines)
    for i, line in enumerate(lines):
        if places[i] and places[i] != "title":
            continue  # in an entry; a heading always follows an entry's lines before any other line
        if line.kind == "heading":
            region = "title" if i == title else heading_place(line.title)
            heading = i
            places[i] = region
            region = "preamble" if region == "title" else region
        elif line.kind in ("setext_rule", "metadata"):
            places[i] = places[i - 1] if line.kind == "setext_rule" else "metadata"
        elif line.text.strip() and not places[i]:
            places[i] = "contents" if is_nav_line(line.text) else region
        under[i] = heading
    return places, under


def _place_span(lines: list[Line], span: Span, places: list[str]) -> None:
    for i in range(span.start, span.body):
        places[i] = "question" if lines[i].text.strip() else ""
    if not span.kept:
        first_kept = last_kept = span.end
    else:
        first_kept, last_kept = min(span.kept), max(span.kept)
    for i in range(span.body, span.end):
        if not lines[i].text.strip():
            continue
        if i in span.back:
            places[i] = "back matter"
        elif i in span.kept or first_kept < i < last_kept:  # a setext underline inside the answer
            places[i] = "answer"
        else:
            places[i] = "layout"


def prose_not_taken(lines: list[Line], places: list[str], under: list[int]) -> list[tuple[int, str]]:
    """Every paragraph of prose that is in no entry: (its first line, why)."""
    found: list[tuple[int, str]] = []
    paragraph: list[int] = []
    for i in range(len(lines) + 1):
        inside = i < len(lines) and places[i] in _PROSE_PLACES and lines[i].kind not in ("heading", "setext_rule")
        if inside and paragraph and places[i] == places[paragraph[0]]:
            paragraph.append(i)
            continue
        if paragraph and has_words(prose_text("\n".join(lines[k].text for k in paragraph))):
            found.append((lines[paragraph[0]].number, _why(lines, places[paragraph[0]], under[paragraph[0]])))
        paragraph = [i] if inside else []
    return found


def _why(lines: list[Line], place: str, heading: int) -> str:
    if heading < 0 or place == "preamble" and heading_place(lines[heading].title) != "preamble":
        return "prose after the last entry" if place == "back matter" else "prose before the first entry"
    return f"prose under the heading '{clean_question(lines[heading].title)}', in no entry"


def describe_places(counts: dict[str, int]) -> str:
    """One line for a parse report: where the document's non-blank lines went, in `PLACES` order.

    >>> describe_places({"answer": 12, "question": 3, "title": 1})
    'all 16 non-blank lines accounted for: 3 question, 12 answer, 1 title'
    """
    parts = [f"{counts[place]} {place}" for place in PLACES if counts.get(place)]
    return f"all {sum(counts.values())} non-blank lines accounted for: " + ", ".join(parts)
