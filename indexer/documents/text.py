"""Markdown text helpers: plain text for embedding, prose detection, question cleaning, boilerplate.

Display always uses the text as written; these functions only decide what is embedded and how an
entry is classified. Code (inline spans and fenced blocks) is literal: its `*`, `_`, `#` and tags are
kept as written, only the backticks and fence lines go. Boilerplate a reader skips (in-page navigation
links, a "Source" label with its links) is left out of the embedded text by `strip_boilerplate`. These
functions never parse document structure (that is `markdown.py`).
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from indexer.documents.records import Record

_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
# Code is literal, so it is set aside before anything is stripped and put back at the end. A fenced
# block runs from its opening fence to a closing fence of the same kind (or to the end of the text); a
# code span stays on one line: an unpaired backtick must not shield tags paragraphs away.
_FENCED_BLOCK = re.compile(
    r"^[ \t]{0,3}(`{3,}(?=[^`\n]*$)|~{3,})[^\n]*\n?(.*?)(?:^[ \t]{0,3}\1[`~]*[ \t]*$|\Z)", re.MULTILINE | re.DOTALL
)
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_STASHED = re.compile("\ue000(\\d+)\ue000")  # a private-use character around the number of a set-aside code
# A link's text may hold one level of brackets, as in `[[Answer]](https://...)` or `[[↑] Back to top](#x)`.
_LINK_TEXT = r"\[([^\[\]]*(?:\[[^\[\]]*\][^\[\]]*)*)\]"
# A link's (target): one level of balanced parentheses belongs to the URL, as in Wikipedia's
# `wiki/BERT_(language_model)`; a lone "(" is still taken, so a malformed link goes as before. Written
# as runs of one character class, not an alternation per character: that was 15x slower on long lines.
_LINK_TARGET = r"\((?:[^()]*\([^()]*\))*[^)]*\)"
_IMAGE = re.compile("!" + _LINK_TEXT + _LINK_TARGET)
_LINK = re.compile(_LINK_TEXT + _LINK_TARGET)
_REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_REF_DEFINITION = re.compile(r"^\s*\[[^\]]+\]:\s*\S+.*$", re.MULTILINE)
_AUTOLINK = re.compile(r"<(?:https?|ftp|mailto):[^>\s]+>")
_URL = re.compile(r"(?:https?|ftp)://\S+|www\.\S+")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$", re.MULTILINE)
_HEADING_HASHES = re.compile(r"^\s{0,3}#{1,6}\s+", re.MULTILINE)
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+", re.MULTILINE)
_EMPHASIS = re.compile(r"(\*{1,3}|_{1,3}|`+|~~)")
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"\w+")

# Boilerplate a reader skips. A line of in-page links only: "[↑] Back to top", a table-of-contents list.
_NAV_LINK = (
    r"(?:\*\*|__)?(?:\[[^\[\]]*(?:\[[^\[\]]*\][^\[\]]*)*\]\(#[^)]*\)|<a\s+href=[\"']#[^\"']*[\"'][^<>]*>[^<]*</a>)"
    r"(?:\*\*|__)?"
)
_WRAPPING_TAGS = r"(?:\s*</?[A-Za-z][^<>]*>)*"  # `<div align="right"><a href="#top">Back to top</a></div>`
_NAV_LINE = re.compile(
    r"^\s*(?:[-*+]\s+|\d{1,4}[.)]\s+)?"
    + _WRAPPING_TAGS
    + r"\s*"
    + _NAV_LINK
    + r"(?:[\s|·•,]*"
    + _NAV_LINK
    + r")*"
    + _WRAPPING_TAGS
    + r"[\s|·•,]*$",
    re.IGNORECASE,
)
# A "Source" label (a sub-heading, a bold or list line, "Source:"), alone or followed by links only.
_SOURCE_LABEL = re.compile(
    r"^\s{0,3}(?:#{1,6}\s+|[-*+]\s+)?[*_]{0,2}(?:sources?|references?|refs?|credits?)[*_]{0,2}\s*:?\s*[*_]{0,2}"
    r"(?:\s+|$)(?P<rest>.*)$",
    re.IGNORECASE,
)
_LABEL_AT_LINE_START = re.compile(r"^[ \t#*_+-]*(?:source|reference|ref|credit)", re.IGNORECASE | re.MULTILINE)
_CODE_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
# Words an answer may hold besides its links and still be only a link: "Answer: [here](https://...)".
_LINK_WORDS = frozenset(
    "answer answers link links here src source sources see click read more this the at in on "
    "full details ref refs reference references solution video article".split()
)

# Placeholders people leave where an answer should be; compared against the whole prose of an answer.
_PLACEHOLDER = re.compile(
    r"^(?:todo|tbd|tba|tbc|wip|work in progress|coming soon|answer(?: goes)? here|your answer here|"
    r"(?:to be|will be) (?:added|written|done|filled(?: in)?|updated)|add answer|fill (?:me|this) in|"
    r"n/?a|none yet|pending|placeholder|\?+|[.…\-_]+)$",
    re.IGNORECASE,
)

# Decorations people add after a question: difficulty stars, emoji, "[[src](...)]" suffixes, tags.
_SOURCE_SUFFIX = re.compile(r"\s*\[\[[^\]]*\]" + _LINK_TARGET + r"\]\s*$")
_DIFFICULTY = re.compile(r"\s*[\[(](?:easy|medium|hard|beginner|intermediate|advanced|basic)[\])]\s*$", re.I)
_TRAILING_SYMBOLS = re.compile(r"[\s\u2600-\u27BF\u2B00-\u2BFF\U0001F000-\U0001FAFF\uFE0F\u200D]+$")
_NUMBER_PREFIX = re.compile(r"^\s*(?:Q(?:uestion)?\s*)?\d{1,5}\s*[.):\-]\s*", re.I)
_QUESTION_LABEL = re.compile(r"^\s*(?:Q|Question)\s*[:.)]\s*", re.I)


def plain_text(markdown: str) -> str:
    """Markdown/HTML to one line of plain words for embedding: links keep their text, URLs go.

    >>> plain_text("**Bold** [docs](https://x.org) <b>now</b>")
    'Bold docs now'
    """
    return _to_text(markdown, link_text=r"\1")


def prose_text(markdown: str) -> str:
    """The words an answer says itself: like `plain_text` but links and images count for nothing."""
    return _to_text(markdown, link_text=" ")


def _sub(pattern: re.Pattern, replacement: str | Callable[[re.Match], str], text: str, *needles: str) -> str:
    """`pattern.sub`, skipped when none of the strings it needs occurs: most answers hold no link, tag
    or table, and a substring test costs far less than a regex pass."""
    for needle in needles:  # a loop, not any(<generator>): this runs ~10 times per entry
        if needle in text:
            return pattern.sub(replacement, text)
    return text


def _to_text(markdown: str, link_text: str) -> str:
    text, code = _set_code_aside(markdown)
    text = _sub(_HTML_COMMENT, " ", text, "<!--")
    text = _sub(_REF_DEFINITION, " ", text, "]:")
    text = _sub(_IMAGE, link_text, text, "![")
    text = _sub(_LINK, link_text, text, "](")
    text = _sub(_REF_LINK, link_text, text, "][")
    text = _strip_inline(text)
    if code:
        text = _STASHED.sub(lambda match: code[int(match.group(1))], text)
    return _SPACES.sub(" ", text).strip()


def _set_code_aside(markdown: str) -> tuple[str, list[str]]:
    """The text with each fenced block and code span replaced by a numbered mark, and their contents."""
    code: list[str] = []
    if "```" not in markdown and "~~~" not in markdown and "`" not in markdown:
        return markdown, code  # most answers: no code at all

    def keep(content: str, around: str) -> str:
        code.append(content)
        return f"{around}\ue000{len(code) - 1}\ue000{around}"

    text = _sub(_FENCED_BLOCK, lambda m: keep(m.group(2) or "", " "), markdown, "```", "~~~")
    return _sub(_CODE_SPAN, lambda m: keep(m.group(2), ""), text, "`"), code


def _strip_inline(text: str) -> str:
    text = _sub(_AUTOLINK, " ", text, "<")
    text = _sub(_HTML_TAG, " ", text, "<")
    text = html.unescape(text) if "&" in text else text
    text = _sub(_URL, " ", text, "://", "www.")
    text = _sub(_TABLE_RULE, " ", text, "--")
    text = text.replace("|", " ")
    text = _sub(_HEADING_HASHES, "", text, "#")
    text = _LIST_MARKER.sub("", text)
    return _sub(_EMPHASIS, "", text, "*", "_", "`", "~~")


def answer_text(record: Record) -> str:
    """A record's answer as plain text, "" when it has none: what is embedded and tokenised for it.
    Boilerplate (`strip_boilerplate`) is left out; the answer is still shown as written."""
    return plain_text(strip_boilerplate(record.answer)) if record.has_answer else ""


def answer_texts(records: Sequence[Record]) -> list[str]:
    return [answer_text(r) for r in records]


def strip_boilerplate(markdown: str) -> str:
    """The answer without what a reader skips: lines of in-page links only ("[↑] Back to top", a table
    of contents) and a "Source" label with the links under it. Code blocks are kept whole.

    >>> strip_boilerplate("Yes.\n\n###### Source\n\n* https://x.org\n\n[[↑] Back to top](#top)")
    'Yes.\n'
    """
    if "](#" not in markdown and 'href="#' not in markdown and not _LABEL_AT_LINE_START.search(markdown):
        return markdown  # most answers: nothing to strip, decided without a pass over the lines
    kept: list[str] = []
    fence = ""
    in_source = False  # after a "Source" label: its links and the blank lines around them go too
    for line in markdown.split("\n"):
        fence = fence_after(fence, line)
        if fence or _CODE_FENCE.match(line):
            kept.append(line)
            in_source = False
        elif is_nav_line(line) or (in_source and not has_words(prose_text(line))):
            continue
        elif is_source_line(line):
            in_source = True
        else:
            kept.append(line)
            in_source = False
    return "\n".join(kept)


def fence_after(fence: str, line: str) -> str:
    """The fence open after `line` ("" outside code), given the one open before it."""
    opener = _CODE_FENCE.match(line)
    if not opener:
        return fence
    mark = opener.group(1)
    if not fence:
        return mark
    closes = mark[0] == fence[0] and len(mark) >= len(fence) and not line.strip()[len(mark) :].strip()
    return "" if closes else fence


def is_nav_line(line: str) -> bool:
    """True for a line of in-page links only: `[[↑] Back to top](#top)`, `- [What is X?](#what-is-x)`."""
    return "#" in line and bool(_NAV_LINE.match(line))


def is_source_line(line: str) -> bool:
    """True for a "Source" label line, alone (`###### Source`, `**References:**`) or with links only."""
    first = line[:40].lstrip(" #-*+_")[:1]  # most lines are decided here, without the pattern
    label = _SOURCE_LABEL.match(line) if first and first in "SsRrCc" else None
    return label is not None and not has_words(prose_text(label.group("rest")))


def only_link_words(prose: str) -> bool:
    """True when every word is one that people write around a link ("Answer", "here", "source", ...)."""
    return all(word in _LINK_WORDS for word in _WORD.findall(prose.lower()))


def has_words(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def has_links(markdown: str) -> bool:
    """True when the text holds a link, an image or a URL of any kind."""
    return bool(
        _LINK.search(markdown)
        or _IMAGE.search(markdown)
        or _URL.search(markdown)
        or _AUTOLINK.search(markdown)
        or _REF_LINK.search(markdown)
        or "<img" in markdown.lower()
        or "<a " in markdown.lower()
    )


def is_placeholder(prose: str) -> bool:
    """True for answers like "TODO", "Answer here", "Coming soon.", "..." (any case)."""
    core = prose.strip().strip(":;!").strip()
    core = core.rstrip(".") if not set(core) <= {"."} else core
    return bool(_PLACEHOLDER.match(core.strip()))


def strip_decorations(text: str) -> str:
    """Drop what people append to a question line: source links, difficulty tags, stars and emoji."""
    text = text.rstrip()
    text = _sub(_SOURCE_SUFFIX, "", text, "[[")
    for _ in range(2):  # decorations can stack: "What? ⭐ (Hard)"
        if not text or (text[-1].isascii() and not text[-1].isspace() and text[-1] not in ")]"):
            break  # no emoji, symbol or tag can end here: most lines stop at once
        text = _TRAILING_SYMBOLS.sub("", text)
        text = _DIFFICULTY.sub("", text)
    return text


@functools.lru_cache(maxsize=1 << 16)  # style detection and record building both clean every question
def clean_question(raw: str) -> str:
    """A question line as written to clean text: no bold, heading marks, number, label or decorations.

    >>> clean_question("**12. What is X? ⭐️** [[src](http://a.b)]")
    'What is X?'
    """
    text = _HEADING_HASHES.sub("", raw.strip())
    text = strip_decorations(_without_bold(text))
    text = _NUMBER_PREFIX.sub("", text)
    text = _QUESTION_LABEL.sub("", text)
    text = plain_text(text)
    return _SPACES.sub(" ", text).strip()


def _without_bold(text: str) -> str:
    """`**` and `__` removed, except inside code spans (`__init__` stays whole)."""
    if "`" not in text:
        return text.replace("**", "").replace("__", "")
    pieces, done = [], 0
    for span in _CODE_SPAN.finditer(text):
        pieces += [_without_bold(text[done : span.start()].replace("`", "")), span.group(0)]
        done = span.end()
    return "".join(pieces) + _without_bold(text[done:].replace("`", ""))
