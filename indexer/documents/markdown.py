"""Markdown Q&A documents → entries, the way a person reads them.

Three entry styles are recognised and one is chosen per document, by which has the most
question-like lines (ties: bold, then heading, then Q:/A:):
- bold lines, numbered or not: `**12. What is X?**`, `1. **What is X?**`, `**What is X? ⭐️**`
- headings: `### 12) What is X?`, `#### Q: What is X?`, `## What is X?`
- `Q:` / `A:` pairs (also `**Q:**`, `Question 3:`, `Answer:`)

Question words only choose the style. Then structure decides what an entry is: in a heading document,
every heading at the entries' level (the level most question headings use) with an answer under it is
an entry, question or statement; a heading above that level, or one followed only by entries, is a
section. In a bold document, a bold line with an answer under it is an entry when it has the shape the
question lines share (a number, a list marker, a trailing decoration such as ⭐️, a paragraph of its
own). Front and back matter headings ("Table of contents", "References", "Contributing", ...) are never
entries, and neither is the title (the first heading, when no other is as high).

Lines inside fenced code blocks are never entries. An optional solution marker (`*solution*`,
`*Solution:*`, `**Answer:**`, any case) on the first line of an answer is dropped, keeping any text
written after it; separators and back-to-top links after an answer are dropped too. Where every
other line of the document went is `places.py`. This module knows nothing about files, ids or statuses
(see `parse.py`).
"""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from indexer.documents.lines import A_LINE, BOLD_LINE, Q_LINE, Line, classify_lines, strip_bold_body
from indexer.documents.places import PLACES, Span, is_matter_heading, place_lines, prose_not_taken
from indexer.documents.text import clean_question, is_nav_line, is_source_line, prose_text, strip_decorations

_NUMBERED = re.compile(r"^\s*(?:Q(?:uestion)?\s*)?(\d{1,5})\s*[.):\-]\s+", re.I)
_LIST_NUMBER = re.compile(r"^(\d{1,5})[.)]$")
_LIST_ITEM = re.compile(r"^\s{0,3}(?:[-*+]|\d{1,5}[.)])\s")
_Q_LABEL = re.compile(r"^(?:Q|Question)\s*\d{0,5}\s*[:.)]", re.IGNORECASE)
_MARKER = re.compile(
    r"^\s{0,3}(?:[*_]{1,2}\s*(?:solution|answer|ans)s?\s*:?\s*[*_]{1,2}\s*:?|(?:solution|answer)s?\s*:)\s?(?P<rest>.*)$",
    re.I,
)
_MARKER_HEADING = re.compile(r"^(?:answers?|solutions?|ans)\s*:?$", re.IGNORECASE)
_RULE = re.compile(r"^\s{0,3}([-*_])(?:\s*\1){2,}\s*$")
# `<br/>` lines people put between entries, and empty anchors (`<a name="q12"></a>`) put before them
_BREAK = re.compile(r"^\s*(?:(?:<(?:br|hr)\s*/?>|<a\s+(?:name|id)=[^<>]*>\s*</a>)\s*)+$", re.IGNORECASE)
# A page's closing line, emphasised on its own after the last answer: when it was last updated, or a
# copyright notice with its year ("*Copyright stays with the uploader.*" is an answer's, and stays).
_PAGE_FOOTER = re.compile(
    r"^\s*([*_]{1,2})\s*(?:(?:last\s+(?:updated|reviewed|modified|revised)|page\s+updated|updated\s+on)\b[^*_]*"
    r"|(?:©|\(c\)|copyright)[^*_]*\b(?:19|20)\d\d\b[^*_]*)\1\s*$",
    re.I,
)
_BACK_TO_TOP = re.compile(r"^\s*(?:\*\*)?\[[^\]]*back to (?:top|contents|index)[^\]]*\]\([^)]*\)(?:\*\*)?\s*$", re.I)
_QUESTION_WORD = re.compile(
    r"^(?:what|why|how|when|where|which|who|whom|whose|is|are|can|could|do|does|did|should|would|will|"
    r"explain|describe|define|compare|name|list|give|tell|write|implement|suppose|given)\b",
    re.I,
)
# What a bold entry line may carry that the document's question lines share (see `_bold_shape`).
_SHAPES = ("numbered", "listed", "decorated", "paragraph")
_SHAPE_NAMES = {
    "numbered": "the number",
    "listed": "the list marker",
    "decorated": "the decoration",
    "paragraph": "the blank line before",
}
SHARED_SHARE = 0.8  # a shape is the document's when this share of its question lines have it


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
    skipped: list[tuple[int, str]]  # (line, why): prose in no entry, and lines that looked like entries
    places: list[str] = field(default_factory=list)  # where each line went ("" for a blank line)
    # How the entries were found, for `incremental.py`: the classified lines, each entry's first line (an
    # index into them) and, in a bold document, the shape its entry lines share.
    lines: list[Line] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    shared: set[str] | None = None

    def place_counts(self) -> dict[str, int]:
        """Non-blank lines per place, in `PLACES` order; together they are every non-blank line of the document."""
        counts = Counter(self.places)
        return {place: counts[place] for place in PLACES if counts[place]}


def parse_markdown(text: str) -> MarkdownParse:
    lines = classify_lines(text.split("\n"))
    style, seeds = choose_style(lines)
    if style == "":
        return MarkdownParse("", [], skipped_candidates(lines, set(), "", None), lines=lines)
    title_line = _title_line(lines, seeds)
    shared = _shared_shape(lines, seeds) if style == "bold" else None
    starts, level = entry_starts(lines, style, seeds, title_line, shared)
    entries, spans = _collect_entries(lines, starts, style, title_line, level)
    places, headings = place_lines(lines, spans, title_line)
    candidates = skipped_candidates(lines, set(starts), style, shared)
    listed = {line for line, _ in candidates}  # a line is listed once, with the more specific reason
    prose = [(line, why) for line, why in prose_not_taken(lines, places, headings) if line not in listed]
    return MarkdownParse(style, entries, sorted(candidates + prose), places, lines, starts, shared)


def choose_style(lines: list[Line]) -> tuple[str, list[int]]:
    """Pick the entry style with the most question-like lines; return it and those lines' indexes."""
    candidates = {
        "bold": [i for i, ln in enumerate(lines) if ln.kind == "bold" and _bold_is_question(lines, i)],
        "heading": [i for i, ln in enumerate(lines) if ln.kind == "heading" and _looks_like_question(ln.title)],
        "qa": [i for i, ln in enumerate(lines) if ln.kind == "q" and _q_has_answer(lines, i)],
    }
    if _mostly_under(lines, candidates["bold"], set(candidates["heading"])):
        candidates["bold"] = []  # numbered steps or sub-questions inside the answers of question headings
    style = max(candidates, key=lambda name: len(candidates[name]))  # dict order breaks ties
    return (style, candidates[style]) if candidates[style] else ("", [])


def _mostly_under(lines: list[Line], inner: list[int], outer: set[int]) -> bool:
    """True when most of the `inner` lines have one of the `outer` headings as the nearest heading above."""
    if not inner or not outer:
        return False
    nearest, under, pending = -1, 0, iter(inner)
    target = next(pending, None)
    for i, line in enumerate(lines):
        if i == target:
            under += nearest in outer
            target = next(pending, None)
        if line.kind == "heading":
            nearest = i
    return 2 * under > len(inner)


def _looks_like_question(title: str) -> bool:
    if _NUMBERED.match(strip_bold_body(title).lstrip("#").strip()):
        return True  # decided without cleaning the title, which costs more
    clean = clean_question(title)
    return clean.endswith("?") or bool(_QUESTION_WORD.match(clean))


def _bold_is_question(lines: list[Line], i: int) -> bool:
    line = lines[i]
    bold = BOLD_LINE.match(line.text)
    numbered_list = bool(bold and bold.group("list") and _LIST_NUMBER.match(bold.group("list")))
    return numbered_list or _looks_like_question(line.title) or _next_is_marker(lines, i)


def _next_is_marker(lines: list[Line], i: int) -> bool:
    for j in range(i + 1, len(lines)):  # indexes, not a slice: a slice per line is quadratic
        if lines[j].text.strip():
            return is_marker(lines[j].text)
    return False


def is_marker(text: str) -> bool:
    """A solution marker: `*solution*`, `**Answer:**`, `Solution: ...`."""
    return bool(_MARKER.match(text))


def _q_has_answer(lines: list[Line], i: int) -> bool:
    for j in range(i + 1, len(lines)):
        line = lines[j]
        if line.kind == "a":
            return True
        if line.kind in ("q", "heading"):
            return False
    return False


def _title_line(lines: list[Line], starts: list[int]) -> int | None:
    """The document title: the first heading, before any entry, if no other heading is as high."""
    taken = set(starts)
    headings = [i for i, ln in enumerate(lines) if ln.kind == "heading" and i not in taken]
    if not headings or headings[0] > starts[0]:
        return None
    first = lines[headings[0]]
    if any(lines[i].level <= first.level for i in headings[1:]):
        return None
    return headings[0]


# ---- structure: which lines in the entry style are entries ------------------------------------------


def entry_starts(
    lines: list[Line], style: str, seeds: list[int], title: int | None, shared: set[str] | None = None
) -> tuple[list[int], int]:
    """Every entry's first line: the question-like lines (`seeds`) and, by structure, the other lines in
    the entry style with an answer under them. Also the entries' heading level (7 when not headings).
    `shared` is the shape of the bold question lines (`_shared_shape`), for bold documents."""
    seed_set = set(seeds)
    if style == "heading":
        level = _entry_level(lines, seeds)
        numbered = _entries_numbered(lines, seeds, level)
        if numbered:  # the number is part of the entry style: unnumbered headings are no entries
            seed_set -= {i for i in seeds if lines[i].level > level and not _is_labelled(lines[i].title)}
        more = (
            []
            if numbered
            else [
                i
                for i, line in enumerate(lines)
                if line.kind == "heading"
                and line.level == level
                and i not in seed_set
                and i != title
                and not is_matter_heading(line.title)
                and _has_answer(lines, i, level, seed_set)
            ]
        )
    elif style == "bold":
        level, more = 7, _bold_statements(lines, seeds, _shared_shape(lines, seeds) if shared is None else shared)
    else:
        level, more = 7, []
    return sorted(seed_set.union(more)), level


def _entry_level(lines: list[Line], seeds: list[int]) -> int:
    """The heading level most question headings use (the higher one on a tie)."""
    counts: dict[int, int] = {}
    for i in seeds:
        counts[lines[i].level] = counts.get(lines[i].level, 0) + 1
    return min(counts, key=lambda level: (-counts[level], level))


def _entries_numbered(lines: list[Line], seeds: list[int], level: int) -> bool:
    """Whether the question headings at the entries' level share a number (or a `Q:` label). Then a
    question heading below that level without one is a sub-heading of an answer ("#### What are the
    drawbacks?" under "## 2. How does Git differ?"), and a statement heading is no entry."""
    entries = [i for i in seeds if lines[i].level == level]
    return sum(_is_labelled(lines[i].title) for i in entries) >= SHARED_SHARE * len(entries)


def _is_labelled(title: str) -> bool:
    """True for a numbered or `Q:`-labelled title: `12) What is X?`, `Q: What is X?`, `Question 3. X?`."""
    body = strip_bold_body(title)
    return bool(_NUMBERED.match(body) or _Q_LABEL.match(body))


def _has_answer(lines: list[Line], i: int, level: int, seeds: set[int]) -> bool:
    """Whether a heading has an answer under it: any text before the next entry or heading as high.
    Separators and navigation links are not an answer."""
    for j in range(i + 1, len(lines)):
        line = lines[j]
        if j in seeds or (line.kind == "heading" and line.level <= level):
            return False
        if line.kind != "setext_rule" and line.text.strip() and not is_separator(line.text):
            return True
    return False


def is_separator(text: str) -> bool:
    """A line a reader skips between entries: a rule, `<br/>`, a back-to-top or other in-page link."""
    return bool(_RULE.match(text) or _BREAK.match(text) or _BACK_TO_TOP.match(text) or is_nav_line(text))


def _bold_statements(lines: list[Line], seeds: list[int], shared: set[str]) -> list[int]:
    """Bold lines that are not question-like but have the shape the document's question lines share
    and an answer under them: `**Precision-recall trade-off ⭐️**` among `**What is X? ⭐️**` entries."""
    seed_set = set(seeds)
    # Without a number or decoration to go by, only a bold line after the first entry is taken.
    first = 0 if shared - {"paragraph"} else seeds[0]
    return [
        i
        for i in range(first, len(lines))
        if lines[i].kind == "bold" and i not in seed_set and _is_bold_statement(lines, i, shared, seed_set)
    ]


def _shared_shape(lines: list[Line], seeds: list[int]) -> set[str]:
    """The shapes (`_bold_shape`) that most of the question lines have."""
    shapes = [_bold_shape(lines, i) for i in seeds]
    return {shape for shape in _SHAPES if sum(shape in s for s in shapes) >= SHARED_SHARE * len(shapes)}


def _is_bold_statement(lines: list[Line], i: int, shared: set[str], seeds: set[int]) -> bool:
    words = strip_decorations(strip_bold_body(lines[i].text))
    if words.endswith(":") or _MARKER.match(lines[i].text) or is_source_line(lines[i].text):
        return False  # a label inside an answer: "**Example:**", "**Solution**", "**Sources**"
    if not shared <= _bold_shape(lines, i):
        return False
    following = next((j for j in range(i + 1, len(lines)) if lines[j].text.strip()), None)
    return (
        following is not None
        and following not in seeds
        and lines[following].kind not in ("heading", "bold", "setext_rule")
    )


def _bold_shape(lines: list[Line], i: int) -> set[str]:
    """What a bold line carries besides its words: a number, a list marker, a trailing decoration, a
    blank line (or heading) before it."""
    bold = BOLD_LINE.match(lines[i].text)
    marker = (bold.group("list") or "") if bold else ""
    body = strip_bold_body(bold.group("body")) if bold else lines[i].text
    unbolded = strip_bold_body(lines[i].text)
    shape = set()
    if _LIST_NUMBER.match(marker) or _NUMBERED.match(body):
        shape.add("numbered")
    elif marker:
        shape.add("listed")
    if strip_decorations(unbolded) != unbolded:
        shape.add("decorated")
    if i == 0 or not lines[i - 1].text.strip() or lines[i - 1].kind in ("heading", "setext_rule"):
        shape.add("paragraph")
    return shape


# ---- entries: question, answer, section -------------------------------------------------------------


def _collect_entries(
    lines: list[Line], starts: list[int], style: str, title_line: int | None, level: int
) -> tuple[list[RawEntry], list[Span]]:
    sections = _sections(lines, starts, title_line, level)
    entries: list[RawEntry] = []
    spans: list[Span] = []
    for n, start in enumerate(starts):
        limit = starts[n + 1] if n + 1 < len(starts) else len(lines)
        entry, span = collect_entry(lines, start, limit, style, n + 1 == len(starts), sections[start])
        entries.append(entry)
        spans.append(span)
    return entries, spans


def collect_entry(
    lines: list[Line], start: int, limit: int, style: str, last: bool, section: str
) -> tuple[RawEntry, Span]:
    """The entry whose first line is `start` and whose block ends before `limit` (the next entry's first
    line, or the end); `last` when no entry follows. It reads no line outside the block."""
    end = _answer_end(lines, start, limit, style)
    question_raw, body_start = _question_and_body_start(lines, start, end, style)
    body = [i for i in range(body_start, end) if lines[i].kind != "setext_rule"]
    kept, first_text, back = _tidy_answer(lines, body, last=last or end < limit)
    texts = [lines[i].text for i in kept]
    if first_text is not None:
        texts[0] = first_text
    answer = "\n".join(text.rstrip() for text in texts)
    if _LIST_ITEM.match(lines[start].text):  # the answer is the item's indented continuation
        answer = textwrap.dedent(answer)
    entry = RawEntry(lines[start].number, question_raw, _entry_number(lines[start]), answer, section)
    return entry, Span(start, body_start, end, frozenset(kept), frozenset(back))


def _sections(lines: list[Line], starts: list[int], title_line: int | None, level: int) -> dict[int, str]:
    """Each entry's section: the last heading before it that is no entry, no title and not below the
    entries' level (a deeper heading is a sub-heading inside an answer). Back matter ends a section."""
    start_set = set(starts)
    openers = [
        i
        for i, line in enumerate(lines)
        if line.kind == "heading" and i not in start_set and i != title_line and line.level <= level
    ]
    section_at: dict[int, str] = {}
    section, next_opener = "", 0
    for start in starts:
        while next_opener < len(openers) and openers[next_opener] < start:
            title = lines[openers[next_opener]].title
            section = "" if is_matter_heading(title) else clean_question(title)
            next_opener += 1
        section_at[start] = section
    return section_at


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
    bold = BOLD_LINE.match(line.text) if line.kind == "bold" else None
    if bold and bold.group("list"):
        listed = _LIST_NUMBER.match(bold.group("list"))
        if listed:
            return int(listed.group(1))
    if line.kind == "q":
        q_line = Q_LINE.match(line.text)
        if q_line and q_line.group("num"):
            return int(q_line.group("num"))
    body = strip_bold_body(line.title).lstrip("#").strip()
    if line.kind == "bold" and bold:
        body = strip_bold_body(bold.group("body"))
    number = _NUMBERED.match(body)
    return int(number.group(1)) if number else None


class _Body(NamedTuple):
    """An answer being tidied: the indexes of its lines, and the text its first line keeps when a label
    or marker was cut from it."""

    lines: list[int]
    first_text: str | None

    def text(self, lines: list[Line], k: int) -> str:
        return self.first_text if k == 0 and self.first_text is not None else lines[self.lines[k]].text


def _tidy_answer(lines: list[Line], body: list[int], last: bool) -> tuple[list[int], str | None, list[int]]:
    """The lines an answer keeps (indexes), the text of its first line when a label was cut from it, and
    the trailing lines that belong to the document instead (reference links after the last answer).
    Dropped: the solution marker, blank edges, separators and back-to-top links at the end."""
    tidy = _strip_blank_edges(lines, _drop_answer_label(lines, body))
    while tidy.lines and is_separator(tidy.text(lines, len(tidy.lines) - 1)):
        tidy = _strip_blank_edges(lines, _Body(tidy.lines[:-1], tidy.first_text if len(tidy.lines) > 1 else None))
    back: list[int] = []
    if last:
        tidy, back = _drop_trailing_link_paragraphs(lines, tidy)
    return tidy.lines, tidy.first_text, back


def _drop_answer_label(lines: list[Line], body: list[int]) -> _Body:
    for k, i in enumerate(body):
        text = lines[i].text
        if not text.strip():
            continue
        if lines[i].kind == "heading" and _MARKER_HEADING.match(lines[i].title):
            return _Body(body[k + 1 :], None)  # "### Answer" over the answer
        marker = _MARKER.match(text)
        if marker:
            rest = marker.group("rest")
            return _Body(body[k:], rest) if rest.strip() else _Body(body[k + 1 :], None)
        a_line = A_LINE.match(text)
        if a_line:
            return _Body(body[k:], a_line.group("text"))
        return _Body(body, None)
    return _Body(body, None)


def _strip_blank_edges(lines: list[Line], body: _Body) -> _Body:
    start, end = 0, len(body.lines)
    while start < end and not body.text(lines, start).strip():
        start += 1
    while end > start and not body.text(lines, end - 1).strip():
        end -= 1
    return _Body(body.lines[start:end], body.first_text if start == 0 and end > 0 else None)


def _drop_trailing_link_paragraphs(lines: list[Line], body: _Body) -> tuple[_Body, list[int]]:
    """Reference links and a page footer after the last answer belong to the document, not to that
    answer; a link list under a "Source" label is the entry's own and stays."""
    paragraphs = _paragraphs(lines, body)
    keep = len(paragraphs)
    while keep > 1 and (
        (_is_link_list(paragraphs[keep - 1]) and not _is_source_label(paragraphs[keep - 2]))
        or _is_page_footer(paragraphs[keep - 1])
    ):
        keep -= 1
    if keep == len(paragraphs) or not any(prose_text("\n".join(p)) for p in paragraphs[:keep]):
        return body, []
    kept_count = sum(len(p) for p in paragraphs[:keep])
    nonblank = [k for k in range(len(body.lines)) if body.text(lines, k).strip()]
    cut = nonblank[kept_count - 1] + 1
    return _Body(body.lines[:cut], body.first_text), body.lines[cut:]


def _paragraphs(lines: list[Line], body: _Body) -> list[list[str]]:
    paragraphs: list[list[str]] = [[]]
    for k in range(len(body.lines)):
        text = body.text(lines, k)
        if text.strip():
            paragraphs[-1].append(text)
        elif paragraphs[-1]:
            paragraphs.append([])
    return [p for p in paragraphs if p]


def _is_link_list(paragraph: list[str]) -> bool:
    text = "\n".join(paragraph)
    has_link = "](" in text or "http://" in text or "https://" in text
    return has_link and "![" not in text and not prose_text(text)


def _is_page_footer(paragraph: list[str]) -> bool:
    """An emphasised line closing a page: "*Last updated: March 2025*", "_© 2025 Example Ltd._"."""
    return len(paragraph) == 1 and bool(_PAGE_FOOTER.match(paragraph[0]))


def _is_source_label(paragraph: list[str]) -> bool:
    return len(paragraph) == 1 and is_source_line(paragraph[0])


def _why_bold_not_taken(lacks: set[str]) -> str:
    if not lacks:  # it has the entries' shape, but comes before the first of them
        return "bold line before the first entry, in a document whose entries share no number or decoration"
    names = " or ".join(_SHAPE_NAMES[shape] for shape in _SHAPES if shape in lacks)
    return f"bold line without {names} that the entries share; kept in the answer above it"


def looks_like_entry_in_code(text: str) -> bool:
    """A line of fenced code that would be an entry outside the fence (reported, never taken)."""
    return bool(BOLD_LINE.match(text) and _NUMBERED.match(text.strip().lstrip("*_").strip()) or Q_LINE.match(text))


def skipped_candidates(
    lines: list[Line], taken: set[int], style: str, shared: set[str] | None
) -> list[tuple[int, str]]:
    """Lines a reader might mistake for entries, with why they were not taken (first few). `shared` is
    the bold entries' shape in a bold document: a bold line without it is reported."""
    skipped: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        if line.kind in ("text", "setext_rule") or i in taken:
            continue
        if line.kind == "fenced" and looks_like_entry_in_code(line.text):
            skipped.append((line.number, "inside a fenced code block"))
        elif line.kind == "bold" and _looks_like_question(line.title):
            skipped.append((line.number, "bold question line in a document of another entry style"))
        elif line.kind == "bold" and shared is not None and _is_bold_statement(lines, i, set(), taken):
            skipped.append((line.number, _why_bold_not_taken(shared - _bold_shape(lines, i))))
        elif line.kind == "q":
            skipped.append((line.number, "Q: line without an A: line"))
        elif line.kind == "heading" and _looks_like_question(line.title):
            skipped.append(
                (
                    line.number,
                    "question heading without the number the entries share; kept in the answer above it"
                    if style == "heading"
                    else "question heading in a document of another entry style",
                )
            )
        if len(skipped) >= 20:
            break
    return skipped
