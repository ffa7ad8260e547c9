"""Text for display: plain text as Markdown that shows exactly its characters, and a document's answer
as sanitised HTML. Pure functions; no Streamlit import (the app and its tests import this directly).

    literal("Why <b>x</b> * 2?")   -> "Why `<b>`x`</b>` \\* 2?"   (Markdown that renders as written)
    answer_html("| a |\n|---|\n| <img src=x onerror=alert(1)> |")   -> "<div><table>…<img src=\"x\"></td>…"

Also the exports of missing answers (CSV, Markdown), each entry with its closest answered entries.

What it does not do: parse documents into entries (documents/), or decide what a page shows (app.py).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

import nh3
from markdown_it import MarkdownIt

from indexer.display.wording import entries_phrase
from indexer.documents.records import Hit, Record, RecordId

_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]$:~|&])")
# A run of adjacent HTML tags (`<iframe src="…"></iframe>`), or a `<` that starts no tag.
_HTML = re.compile(r"(?:<[A-Za-z/!?][^<>\n]*>)+|<")


def literal(text: str) -> str:
    """Plain text (a question, a name) as Markdown that shows exactly these characters: Markdown
    punctuation and Streamlit's `:directive[...]` syntax are backslash-escaped, HTML is shown as text."""
    return html_as_text(text, lambda part: _MARKDOWN_PUNCTUATION.sub(r"\\\1", part))


def html_as_text(text: str, escape: Callable[[str], str]) -> str:
    """`text` with every HTML tag shown as a code span, a stray `<` as `&lt;`, and the rest through `escape`.

    Why code spans rather than `&lt;`: the renderer's GFM autolinking runs over the decoded text up
    to the next whitespace, so in `&lt;iframe src="https://x.com">&lt;/iframe>` it made
    `https://x.com">&lt;/iframe>` one link and showed the second `&lt;` literally. Nothing inside a
    code span is linked or read as HTML. A `<` right after a URL still ends up inside that link, so
    it gets a space in front.
    """
    parts, last = [], 0
    for match in _HTML.finditer(text):
        before = text[last : match.start()]  # an earlier tag, shown as code, already ended any link
        parts.append(escape(before))
        if _may_autolink(before):
            parts.append(" ")
        parts.append(_html_part(match.group(0), escape))
        last = match.end()
    parts.append(escape(text[last:]))
    return "".join(parts)


def _may_autolink(before: str) -> bool:
    """Whether `before` ends in a word the renderer may turn into a link (GFM autolinks run to the next
    whitespace). Substring tests on the last word: a regex search there was quadratic in its length."""
    if not before or before[-1].isspace():
        return False
    word = before.rsplit(None, 1)[-1]
    return "://" in word or "www." in word or "@" in word


def _html_part(html: str, escape: Callable[[str], str]) -> str:
    # Streamlit ends a `:gray[...]` label at the first `]`, even inside a code span: a tag holding a
    # bracket is escaped instead.
    if html == "<" or "[" in html or "]" in html:
        return escape(html).replace("<", "&lt;")
    return code_span(html)


def code_span(text: str) -> str:
    """`text` as an inline code span, fenced by more backticks than it holds in a row."""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def sentence(text: str) -> str:
    """A message from the core ("also searched for: …") as a sentence: first letter up, the rest kept
    (str.capitalize would lower "BERT" or a file name)."""
    return text[:1].upper() + text[1:]


# ---- answers as sanitised HTML ------------------------------------------------------------------

# What an answer may keep of its HTML: structure and emphasis, tables, code, lists, images and links.
# Everything else is dropped by nh3 (a maintained sanitiser, html5ever's parser): scripts, event
# handlers, styles, forms, frames, SVG and MathML, ids and classes (no DOM clobbering, no page CSS).
ALLOWED_TAGS = frozenset(
    {
        "p",
        "br",
        "hr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "strong",
        "b",
        "em",
        "i",
        "del",
        "s",
        "sub",
        "sup",
        "kbd",
        "code",
        "pre",
        "ul",
        "ol",
        "li",
        "table",
        "caption",
        "thead",
        "tbody",
        "tfoot",
        "tr",
        "th",
        "td",
        "a",
        "img",
    }
)
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "th": {"style", "colspan", "rowspan"},
    "td": {"style", "colspan", "rowspan"},
    "ol": {"start"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})  # relative URLs are kept too; javascript: and data: are not
# Removed with everything inside them (other disallowed tags are unwrapped and keep their text).
DROPPED_WITH_CONTENT = frozenset(
    {
        "script",
        "style",
        "iframe",
        "frame",
        "frameset",
        "object",
        "embed",
        "applet",
        "noscript",
        "noembed",
        "noframes",
        "template",
        "svg",
        "math",
        "textarea",
        "select",
        "title",
        "xmp",
        "plaintext",
        "head",
    }
)
# Markdown-it renders GFM table alignment as `style="text-align:…"`; no other property survives.
ALLOWED_STYLE_PROPERTIES = frozenset({"text-align"})
_MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def sanitize_html(html: str) -> str:
    """`html` cut down to the allowlist above. Links never tell their target who sent them (Streamlit's
    renderer opens them in a new tab)."""
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        filter_style_properties=set(ALLOWED_STYLE_PROPERTIES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


@lru_cache(maxsize=4096)  # an entry's answer is rendered on every rerun that shows it; the text is its key
def answer_html(answer: str) -> str:
    """A document's answer (Markdown, maybe with HTML in it) as sanitised HTML on one line, in a `<div>`.

    One line on purpose: the app passes it to Streamlit's Markdown renderer, which takes a block that
    starts with `<div>` as raw HTML up to the first blank line; with no line break (newlines in code
    become `&#10;`) all of it stays HTML, and no `$`, `*` or `:red[` in the text is read as Markdown.
    """
    return "<div>" + _LINE_BREAK.sub("&#10;", sanitize_html(_MARKDOWN.render(answer))) + "</div>"


def entry_href(record_id: RecordId) -> str:
    """The app's link to one entry's page: `?id=17`, `?id=faq.md%2312` (the id as shown, URL-quoted)."""
    return "?id=" + quote(str(record_id), safe="")


def entry_link(record_id: RecordId) -> str:
    """An HTML link "#17" to an entry's page that opens in the same tab (so Back returns here); the app
    renders it with Streamlit's Markdown, which would open a Markdown link in a new tab."""
    return f'<a href="{_escape_html(entry_href(record_id))}" target="_self">{_escape_html(f"#{record_id}")}</a>'


def _escape_html(text: str) -> str:
    # Markdown punctuation too: the link sits in a Markdown line, where `*` or `:red[` would still be read.
    return "".join(f"&#{ord(ch)};" if ch in "<>&\"'`*_[]$:~|\\" else ch for ch in text)


# ---- exports of missing answers ---------------------------------------------------------------------


def missing_csv(missing: Sequence[Record], hints: Mapping[RecordId, Sequence[Hit]]) -> bytes:
    """The entries without an answer, one row each, with the answered entries that come closest:
    what whoever writes the answers needs in a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "question", "section", "line", "source", "closest answered entries"])
    for record in missing:
        closest = "; ".join(f"{h.record.id}: {h.record.question} ({h.score:.2f})" for h in hints.get(record.id, ()))
        writer.writerow([record.id, record.question, record.section, record.line, Path(record.source).name, closest])
    return out.getvalue().encode()


def missing_markdown(missing: Sequence[Record], hints: Mapping[RecordId, Sequence[Hit]], total: int) -> str:
    """The same as a Markdown checklist, the closest answered entries indented under each."""
    lines = ["# Missing answers", "", entries_phrase(len(missing), total, "no answer") + ".", ""]
    for record in missing:
        lines.append(f"- [ ] **{record.id}.** {record.question} (line {record.line})")
        lines += [
            f"  - closest answered: **{h.record.id}.** {h.record.question} ({h.score:.2f})"
            for h in hints.get(record.id, ())
        ]
    return "\n".join(lines) + "\n"
