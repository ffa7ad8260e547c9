"""Markdown text helpers: plain text for embedding, prose detection, question cleaning.

Display always uses the text as written; these functions only decide what is embedded and how an
entry is classified. They never parse document structure (that is `parse.py`).
"""
from __future__ import annotations

import functools
import html
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from indexer.documents.records import Record

_FENCE_LINE = re.compile(r"^\s*(```|~~~).*$", re.MULTILINE)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
# A code span's content is literal (in `<div>`, "<div>" is a name, not a tag), so where code spans
# occur tags are matched together with them and the spans are kept. One line at most: an unpaired
# backtick must not shield tags paragraphs away.
_CODE_SPAN_OR_TAG = re.compile(r"(?<!`)(`+)(?!`).+?(?<!`)\1(?!`)|" + _HTML_TAG.pattern)
# A link's (target): one level of balanced parentheses belongs to the URL, as in Wikipedia's
# `wiki/BERT_(language_model)`; a lone "(" is still taken, so a malformed link goes as before. Written
# as runs of one character class, not an alternation per character: that was 15x slower on long lines.
_LINK_TARGET = r"\((?:[^()]*\([^()]*\))*[^)]*\)"
_IMAGE = re.compile(r"!\[([^\]]*)\]" + _LINK_TARGET)
_LINK = re.compile(r"\[([^\]]*)\]" + _LINK_TARGET)
_REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_REF_DEFINITION = re.compile(r"^\s*\[[^\]]+\]:\s*\S+.*$", re.MULTILINE)
_AUTOLINK = re.compile(r"<(?:https?|ftp|mailto):[^>\s]+>")
_URL = re.compile(r"(?:https?|ftp)://\S+|www\.\S+")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$", re.MULTILINE)
_HEADING_HASHES = re.compile(r"^\s{0,3}#{1,6}\s+", re.MULTILINE)
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+", re.MULTILINE)
_EMPHASIS = re.compile(r"(\*{1,3}|_{1,3}|`+|~~)")
_SPACES = re.compile(r"\s+")

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


def _sub(pattern: re.Pattern, replacement: str, text: str, *needles: str) -> str:
    """`pattern.sub`, skipped when none of the strings it needs occurs: most answers hold no link, tag
    or table, and a substring test costs far less than a regex pass."""
    for needle in needles:  # a loop, not any(<generator>): this runs ~10 times per entry
        if needle in text:
            return pattern.sub(replacement, text)
    return text


def _to_text(markdown: str, link_text: str) -> str:
    text = _sub(_FENCE_LINE, " ", markdown, "```", "~~~")
    text = _sub(_HTML_COMMENT, " ", text, "<!--")
    text = _sub(_REF_DEFINITION, " ", text, "]:")
    text = _sub(_IMAGE, link_text, text, "![")
    text = _sub(_LINK, link_text, text, "](")
    text = _sub(_REF_LINK, link_text, text, "][")
    return _strip_inline(text)


def _strip_inline(text: str) -> str:
    text = _sub(_AUTOLINK, " ", text, "<")
    text = _strip_tags(text)
    text = html.unescape(text) if "&" in text else text
    text = _sub(_URL, " ", text, "://", "www.")
    text = _sub(_TABLE_RULE, " ", text, "--")
    text = text.replace("|", " ")
    text = _sub(_HEADING_HASHES, "", text, "#")
    text = _LIST_MARKER.sub("", text)
    text = _sub(_EMPHASIS, "", text, "*", "_", "`", "~~")
    return _SPACES.sub(" ", text).strip()


def _strip_tags(text: str) -> str:
    """HTML tags become spaces, except inside code spans."""
    if "<" not in text:
        return text
    if "`" not in text:  # most texts: no code span to keep, one simpler pass
        return _HTML_TAG.sub(" ", text)
    return _CODE_SPAN_OR_TAG.sub(_keep_code_span, text)


def _keep_code_span(match: re.Match) -> str:
    return match.group(0) if match.group(1) else " "


def answer_text(record: "Record") -> str:
    """A record's answer as plain text, "" when it has none: what is embedded and tokenised for it."""
    return plain_text(record.answer) if record.has_answer else ""


def answer_texts(records: list["Record"]) -> list[str]:
    return [answer_text(r) for r in records]


def has_words(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def has_links(markdown: str) -> bool:
    """True when the text holds a link, an image or a URL of any kind."""
    return bool(_LINK.search(markdown) or _IMAGE.search(markdown) or _URL.search(markdown)
                or _AUTOLINK.search(markdown) or _REF_LINK.search(markdown) or "<img" in markdown.lower()
                or "<a " in markdown.lower())


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
    text = strip_decorations(text.replace("**", "").replace("__", ""))
    text = _NUMBER_PREFIX.sub("", text)
    text = _QUESTION_LABEL.sub("", text)
    text = plain_text(text)
    return _SPACES.sub(" ", text).strip()
