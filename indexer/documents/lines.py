"""Markdown lines → classified lines: headings, bold lines, Q:/A: lines, fenced code, plain text.

The first step of reading a document (`markdown.py` decides entries from these). Fenced code is opaque;
a setext heading is folded into its text line. Nothing here knows about entries or sections.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from indexer.documents.text import fence_after, strip_decorations

_ATX_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_LISTED_HEADING = re.compile(r"^\s{0,3}(\d{1,5})[.)]\s+(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_SETEXT_RULE = re.compile(r"^\s{0,3}(=+|-+)\s*$")
BOLD_LINE = re.compile(r"^\s{0,3}(?:(?P<list>[-*+]|\d{1,5}[.)])\s+)?(?:\*\*|__)(?P<body>.*\S)\s*$")
_BOLD_END = re.compile(r"(?:\*\*|__)[^*_\w]*$")
# A line led by a bold number is an entry line even when the text runs on after the bold:
# `**1)** The number of active ads.`, `**2) Factorial**. Calculate a factorial.`
_BOLD_NUMBER_LEAD = re.compile(r"^\s{0,3}(?:\*\*|__)\s*\d{1,5}[.):]")
Q_LINE = re.compile(
    r"^\s{0,3}(?:[-*+]\s+)?(?:\*\*|__)?(?:Q|Question)\s*(?P<num>\d{1,5})?\s*[:.)]\s*(?:\*\*|__)?\s*(?P<text>.*)$",
    re.I,
)
A_LINE = re.compile(
    r"^\s{0,3}(?:[-*+]\s+)?(?:\*\*|__)?(?:A|Ans|Answer)\s*\d{0,5}\s*[:.)]\s*(?:\*\*|__)?\s?(?P<text>.*)$", re.I
)
# Every entry-like line (heading, Q:/A: line, bold line, list item) starts with one of these, or with a
# digit of any script (`\d` takes them all), once its indentation is gone; any other line is plain
# text without trying the patterns.
_STRUCTURE_STARTS = frozenset("#*_-+QqAa")
FRONT_MATTER_LINES = 200  # front matter is looked for in this many lines at most
_METADATA_KEY = re.compile(r"^[\w.-]+\s*[:=]")


class Line(NamedTuple):
    """One classified line of the document (1-based `number`). A tuple, not a dataclass: a document
    has tens of thousands of lines and a tuple is built 2.5x faster."""

    number: int
    text: str
    kind: str  # "text" | "fenced" | "heading" | "bold" | "q" | "a" | "setext_rule" | "metadata"
    level: int = 0  # heading level
    title: str = ""  # heading text, or the bold/Q line's question text


def classify_lines(raw_lines: list[str]) -> list[Line]:
    """Tag each line; fenced code and front matter are opaque, setext headings are folded into their
    text line."""
    metadata = front_matter_length(raw_lines)
    out = [Line(i, text, "metadata") for i, text in enumerate(raw_lines[:metadata], start=1)]
    fence = ""  # the open fence's mark, "" outside code
    for i, text in enumerate(raw_lines[metadata:], start=metadata + 1):
        start = text.lstrip()[:1]
        structural = start in _STRUCTURE_STARTS or start.isdecimal()
        if not fence and not structural and start not in ("`", "~"):
            out.append(Line(i, text, "text"))  # most lines: decided without a call or a pattern
            continue
        after = fence_after(fence, text) if start in ("`", "~") else fence
        if fence or after:  # inside a fenced block, or its opening or closing line
            fence = after
            out.append(Line(i, text, "fenced"))
            continue
        out.append(_classify(i, text, start) if structural else Line(i, text, "text"))
    return _fold_setext(out)


def front_matter_length(raw_lines: list[str]) -> int:
    """How many lines of YAML (`---`) or TOML (`+++`) front matter open the document: site generators'
    metadata, not prose (and its closing `---` under a line would read as a setext heading)."""
    opener = raw_lines[0].rstrip() if raw_lines else ""
    if opener not in ("---", "+++") or len(raw_lines) < 3 or not _METADATA_KEY.match(raw_lines[1]):
        return 0  # a rule at the top of a document opens no front matter
    closers = ("---", "...") if opener == "---" else ("+++",)
    for i in range(1, min(len(raw_lines), FRONT_MATTER_LINES)):
        if raw_lines[i].rstrip() in closers:
            return i + 1
    return 0


def _classify(number: int, text: str, start: str) -> Line:
    """A line outside code fences that may be structural; `start` is its first non-blank character."""
    # The letter after any list marker and bold opener: only a Q or an A can begin a Q:/A: line.
    label = text.lstrip().lstrip("-*+").lstrip().lstrip("*_")[:1]
    heading = _ATX_HEADING.match(text) if start == "#" else None
    if heading:
        return Line(number, text, "heading", len(heading.group(1)), heading.group(2).strip())
    listed = _LISTED_HEADING.match(text) if start.isdecimal() else None
    if listed:  # `12. ### What is X?`: a heading in a numbered list item; its number is the entry's
        return Line(number, text, "heading", len(listed.group(2)), f"{listed.group(1)}. {listed.group(3).strip()}")
    q_line = Q_LINE.match(text) if label in ("Q", "q") else None
    if q_line and q_line.group("text").strip():
        return Line(number, text, "q", title=text.strip())
    # `Answer:` and `**Answer:**` are also solution markers; they are still "a" lines (a Q:/A: document
    # needs them to close its questions), and other styles drop them from the answer as markers.
    if label in ("A", "a") and A_LINE.match(text):
        return Line(number, text, "a")
    bold = BOLD_LINE.match(text) if "**" in text or "__" in text else None
    if (
        bold
        and strip_bold_body(bold.group("body"))
        and (_BOLD_END.search(strip_decorations(text)) or _BOLD_NUMBER_LEAD.match(text))
    ):
        return Line(number, text, "bold", title=text.strip())
    return Line(number, text, "text")


def strip_bold_body(body: str) -> str:
    """The text without its `**`/`__` bold marks, stripped."""
    return body.replace("**", "").replace("__", "").strip()


def _fold_setext(lines: list[Line]) -> list[Line]:
    out = list(lines)
    for i in range(1, len(out)):
        rule, above = out[i], out[i - 1]
        if rule.kind != "text" or above.kind != "text" or not above.text.strip():
            continue
        match = _SETEXT_RULE.match(rule.text)
        if not match or (i >= 2 and out[i - 2].text.strip() and out[i - 2].kind in ("text", "a")):
            continue  # a rule under a multi-line paragraph is a thematic break here, not a heading
        level = 1 if match.group(1).startswith("=") else 2
        out[i - 1] = Line(above.number, above.text, "heading", level, above.text.strip())
        out[i] = Line(rule.number, rule.text, "setext_rule")
    return out
