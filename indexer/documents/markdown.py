"""Markdown Q&A documents → entries, the way a person reads them.

Three entry styles are recognised and one is chosen per document, by which has the most
question-like lines (ties: bold, then heading, then Q:/A:):
- bold question lines, numbered or not: `**12. What is X?**`, `1. **What is X?**`, `**What is X? ⭐️**`
- heading questions: `### 12) What is X?`, `#### Q: What is X?`, `## What is X?`
- `Q:` / `A:` pairs (also `**Q:**`, `Question 3:`, `Answer:`)

Lines inside fenced code blocks are never entries. Headings that are not questions become the
`section` of the entries below them (a document title is not a section). An optional solution marker
(`*solution*`, `*Solution:*`, `**Answer:**`, any case) on the first line of an answer is dropped,
keeping any text written after it. This module knows nothing about files, ids or statuses
(see `parse.py`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from indexer.documents.text import clean_question, prose_text, strip_decorations

_FENCE_OPEN = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_ATX_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_SETEXT_RULE = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_BOLD_LINE = re.compile(r"^\s{0,3}(?:(?P<list>[-*+]|\d{1,5}[.)])\s+)?(?:\*\*|__)(?P<body>.*\S)\s*$")
_BOLD_END = re.compile(r"(?:\*\*|__)[^*_\w]*$")
_NUMBERED = re.compile(r"^\s*(?:Q(?:uestion)?\s*)?(\d{1,5})\s*[.):\-]\s+", re.I)
_LIST_NUMBER = re.compile(r"^(\d{1,5})[.)]$")
_Q_LINE = re.compile(
    r"^\s{0,3}(?:[-*+]\s+)?(?:\*\*|__)?(?:Q|Question)\s*(?P<num>\d{1,5})?\s*[:.)]\s*(?:\*\*|__)?\s*(?P<text>.*)$",
    re.I,
)
_A_LINE = re.compile(r"^\s{0,3}(?:[-*+]\s+)?(?:\*\*|__)?(?:A|Answer)\s*\d{0,5}\s*[:.)]\s*(?:\*\*|__)?\s?(?P<text>.*)$", re.I)
_MARKER = re.compile(
    r"^\s{0,3}(?:[*_]{1,2}\s*(?:solution|answer|ans)s?\s*:?\s*[*_]{1,2}\s*:?|(?:solution|answer)s?\s*:)\s?(?P<rest>.*)$",
    re.I,
)
_RULE = re.compile(r"^\s{0,3}([-*_])(?:\s*\1){2,}\s*$")
_BACK_TO_TOP = re.compile(r"^\s*(?:\*\*)?\[[^\]]*back to (?:top|contents|index)[^\]]*\]\([^)]*\)(?:\*\*)?\s*$", re.I)
_QUESTION_WORD = re.compile(
    r"^(?:what|why|how|when|where|which|who|whom|whose|is|are|can|could|do|does|did|should|would|will|"
    r"explain|describe|define|compare|name|list|give|tell|write|implement|suppose|given)\b",
    re.I,
)
# Every entry-like line (heading, Q:/A: line, bold line, list item) starts with one of these, or with a
# digit of any script (`\d` takes them all), once its indentation is gone; any other line is plain
# text without trying the patterns.
_STRUCTURE_STARTS = frozenset("#*_-+QqAa")
# Headings that close the entry list rather than introduce a section of it.
_BACK_MATTER = re.compile(
    r"^(?:references?|sources?|resources|further reading|see also|links|credits|acknowledge?ments?|"
    r"contribut\w*|license|sponsors?|table of contents|contents|about|authors?)\b",
    re.I,
)


class Line(NamedTuple):
    """One classified line of the document (1-based `number`). A tuple, not a dataclass: a document
    has tens of thousands of lines and a tuple is built 2.5x faster."""

    number: int
    text: str
    kind: str  # "text" | "fenced" | "heading" | "bold" | "q" | "a"
    level: int = 0  # heading level
    title: str = ""  # heading text, or the bold/Q line's question text


@dataclass(frozen=True)
class RawEntry:
    """An entry before ids and statuses: where it starts, what it says, which section it is in."""

    line: int
    question_raw: str
    number: int | None
    answer: str
    section: str


@dataclass(frozen=True)
class MarkdownParse:
    style: str
    entries: list[RawEntry]
    skipped: list[tuple[int, str]]  # (line, why) for lines that looked like entries but were not taken


def parse_markdown(text: str) -> MarkdownParse:
    lines = classify_lines(text.split("\n"))
    style, starts = choose_style(lines)
    if style == "":
        return MarkdownParse("", [], _skipped_candidates(lines, set()))
    title_line = _title_line(lines, starts)
    entries = _collect_entries(lines, starts, style, title_line)
    return MarkdownParse(style, entries, _skipped_candidates(lines, set(starts)))


def classify_lines(raw_lines: list[str]) -> list[Line]:
    """Tag each line; fenced code is opaque, setext headings are folded into their text line."""
    out: list[Line] = []
    fence: str | None = None
    for i, text in enumerate(raw_lines, start=1):
        start = text.lstrip()[:1]
        structural = start in _STRUCTURE_STARTS or start.isdecimal()
        if fence is None and not structural and start not in ("`", "~"):
            out.append(Line(i, text, "text"))  # most lines: decided without a call or a pattern
            continue
        opener = _FENCE_OPEN.match(text) if start in ("`", "~") else None
        if fence is not None:
            if opener and opener.group(1)[0] == fence[0] and len(opener.group(1)) >= len(fence) and not text.strip(
            )[len(opener.group(1)):].strip():
                fence = None
            out.append(Line(i, text, "fenced"))
            continue
        if opener:
            fence = opener.group(1)
            out.append(Line(i, text, "fenced"))
            continue
        out.append(_classify(i, text, start) if structural else Line(i, text, "text"))
    return _fold_setext(out)


def _classify(number: int, text: str, start: str) -> Line:
    """A line outside code fences that may be structural; `start` is its first non-blank character."""
    # The letter after any list marker and bold opener: only a Q or an A can begin a Q:/A: line.
    label = text.lstrip().lstrip("-*+").lstrip().lstrip("*_")[:1]
    heading = _ATX_HEADING.match(text) if start == "#" else None
    if heading:
        return Line(number, text, "heading", len(heading.group(1)), heading.group(2).strip())
    q_line = _Q_LINE.match(text) if label in ("Q", "q") else None
    if q_line and q_line.group("text").strip():
        return Line(number, text, "q", title=text.strip())
    # `Answer:` and `**Answer:**` are also solution markers; they are still "a" lines (a Q:/A: document
    # needs them to close its questions), and other styles drop them from the answer as markers.
    if label in ("A", "a") and _A_LINE.match(text):
        return Line(number, text, "a")
    bold = _BOLD_LINE.match(text) if "**" in text or "__" in text else None
    if bold and _BOLD_END.search(strip_decorations(text)) and _strip_bold_body(bold.group("body")):
        return Line(number, text, "bold", title=text.strip())
    return Line(number, text, "text")


def _strip_bold_body(body: str) -> str:
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


def choose_style(lines: list[Line]) -> tuple[str, list[int]]:
    """Pick the entry style with the most question-like lines; return it and its start indexes."""
    candidates = {
        "bold": [i for i, ln in enumerate(lines) if ln.kind == "bold" and _bold_is_question(lines, i)],
        "heading": [i for i, ln in enumerate(lines) if ln.kind == "heading" and _heading_is_question(ln)],
        "qa": [i for i, ln in enumerate(lines) if ln.kind == "q" and _q_has_answer(lines, i)],
    }
    style = max(candidates, key=lambda name: len(candidates[name]))  # dict order breaks ties
    return (style, candidates[style]) if candidates[style] else ("", [])


def _looks_like_question(title: str) -> bool:
    if _NUMBERED.match(title.replace("**", "").replace("__", "").lstrip("#").strip()):
        return True  # decided without cleaning the title, which costs more
    clean = clean_question(title)
    return clean.endswith("?") or bool(_QUESTION_WORD.match(clean))


def _bold_is_question(lines: list[Line], i: int) -> bool:
    line = lines[i]
    bold = _BOLD_LINE.match(line.text)
    numbered_list = bool(bold and bold.group("list") and _LIST_NUMBER.match(bold.group("list")))
    return numbered_list or _looks_like_question(line.title) or _next_is_marker(lines, i)


def _heading_is_question(line: Line) -> bool:
    return _looks_like_question(line.title)


def _next_is_marker(lines: list[Line], i: int) -> bool:
    for line in lines[i + 1:]:
        if line.text.strip():
            return bool(_MARKER.match(line.text))
    return False


def _q_has_answer(lines: list[Line], i: int) -> bool:
    for line in lines[i + 1:]:
        if line.kind == "a":
            return True
        if line.kind in ("q", "heading"):
            return False
    return False


def _title_line(lines: list[Line], starts: list[int]) -> int | None:
    """The document title: the first heading, before any entry, if no other heading is as high."""
    headings = [i for i, ln in enumerate(lines) if ln.kind == "heading" and i not in starts]
    if not headings or headings[0] > starts[0]:
        return None
    first = lines[headings[0]]
    if any(lines[i].level <= first.level for i in headings[1:]):
        return None
    return headings[0]


def _collect_entries(lines: list[Line], starts: list[int], style: str, title_line: int | None) -> list[RawEntry]:
    entries: list[RawEntry] = []
    start_set = set(starts)
    section = ""
    # Sections come from non-entry headings; in heading style only from those above the entries' level
    # (a deeper heading is a sub-heading inside an answer).
    top_level = min(lines[i].level for i in starts) if style == "heading" else 7
    openers = [i for i, line in enumerate(lines) if line.kind == "heading" and i not in start_set
               and i != title_line and line.level < top_level]
    section_at: dict[int, str] = {}
    next_opener = 0
    for start in starts:
        while next_opener < len(openers) and openers[next_opener] < start:
            title = clean_question(lines[openers[next_opener]].title)
            section = "" if _BACK_MATTER.match(title) else title
            next_opener += 1
        section_at[start] = section
    for n, start in enumerate(starts):
        limit = starts[n + 1] if n + 1 < len(starts) else len(lines)
        end = _answer_end(lines, start, limit, style)
        question_raw, body_start = _question_and_body_start(lines, start, end, style)
        body = [ln.text for ln in lines[body_start:end] if ln.kind != "setext_rule"]
        answer = _tidy_answer(body, last=(n + 1 == len(starts)) or end < limit)
        entries.append(RawEntry(lines[start].number, question_raw, _entry_number(lines[start]), answer,
                                section_at[start]))
    return entries


def _answer_end(lines: list[Line], start: int, limit: int, style: str) -> int:
    """Where an entry's answer stops: the next entry, or a heading that closes it."""
    level = lines[start].level if style == "heading" else 0
    for i in range(start + 1, limit):
        line = lines[i]
        if line.kind != "heading":
            continue
        if style != "heading" or line.level <= level:
            return i
    return limit


def _question_and_body_start(lines: list[Line], start: int, end: int, style: str) -> tuple[str, int]:
    if style != "qa":
        return lines[start].title, start + 1
    # A Q: question may run over several lines until its A: line.
    question = [lines[start].title]
    for i in range(start + 1, end):
        if lines[i].kind == "a":
            return " ".join(question), i
        if lines[i].text.strip():
            question.append(lines[i].text.strip())
    return " ".join(question), end


def _entry_number(line: Line) -> int | None:
    bold = _BOLD_LINE.match(line.text) if line.kind == "bold" else None
    if bold and bold.group("list"):
        listed = _LIST_NUMBER.match(bold.group("list"))
        if listed:
            return int(listed.group(1))
    if line.kind == "q":
        q_line = _Q_LINE.match(line.text)
        if q_line and q_line.group("num"):
            return int(q_line.group("num"))
    body = line.title.replace("**", "").replace("__", "").lstrip("#").strip()
    if line.kind == "bold" and bold:
        body = _strip_bold_body(bold.group("body"))
    number = _NUMBERED.match(body)
    return int(number.group(1)) if number else None


def _tidy_answer(body: list[str], last: bool) -> str:
    """Drop the solution marker, surrounding blank lines, separators and, after the last entry, link lists."""
    body = _drop_answer_label(body)
    body = _strip_blank_edges(body)
    while body and (_RULE.match(body[-1]) or _BACK_TO_TOP.match(body[-1])):
        body = _strip_blank_edges(body[:-1])
    if last:
        body = _drop_trailing_link_paragraphs(body)
    return "\n".join(line.rstrip() for line in body)


def _drop_answer_label(body: list[str]) -> list[str]:
    for i, line in enumerate(body):
        if not line.strip():
            continue
        a_line = _A_LINE.match(line)
        marker = _MARKER.match(line)
        if marker:
            return [marker.group("rest")] + body[i + 1:] if marker.group("rest").strip() else body[i + 1:]
        if a_line:
            return [a_line.group("text")] + body[i + 1:]
        return body
    return body


def _strip_blank_edges(body: list[str]) -> list[str]:
    start, end = 0, len(body)
    while start < end and not body[start].strip():
        start += 1
    while end > start and not body[end - 1].strip():
        end -= 1
    return body[start:end]


def _drop_trailing_link_paragraphs(body: list[str]) -> list[str]:
    """Reference links after the last answer belong to the document, not to that answer."""
    paragraphs = _paragraphs(body)
    keep = len(paragraphs)
    while keep > 1 and _is_link_list(paragraphs[keep - 1]):
        keep -= 1
    if keep == len(paragraphs) or not any(prose_text("\n".join(p)) for p in paragraphs[:keep]):
        return body
    kept: list[str] = []
    for paragraph in paragraphs[:keep]:
        kept.extend(paragraph + [""])
    return _strip_blank_edges(kept)


def _paragraphs(body: list[str]) -> list[list[str]]:
    paragraphs: list[list[str]] = [[]]
    for line in body:
        if line.strip():
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    return [p for p in paragraphs if p]


def _is_link_list(paragraph: list[str]) -> bool:
    text = "\n".join(paragraph)
    has_link = "](" in text or "http://" in text or "https://" in text
    return has_link and "![" not in text and not prose_text(text)


def _skipped_candidates(lines: list[Line], taken: set[int]) -> list[tuple[int, str]]:
    """Lines a reader might mistake for entries, with why they were not taken (first few)."""
    skipped: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        if line.kind in ("text", "setext_rule") or i in taken:
            continue
        if line.kind == "fenced" and (_BOLD_LINE.match(line.text) and _NUMBERED.match(
                line.text.strip().lstrip("*_").strip()) or _Q_LINE.match(line.text)):
            skipped.append((line.number, "inside a fenced code block"))
        elif line.kind == "bold" and _looks_like_question(line.title):
            skipped.append((line.number, "bold question line in a document of another entry style"))
        elif line.kind == "q":
            skipped.append((line.number, "Q: line without an A: line"))
        elif line.kind == "heading" and _heading_is_question(line):
            skipped.append((line.number, "question heading in a document of another entry style"))
        if len(skipped) >= 20:
            break
    return skipped
