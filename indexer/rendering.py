"""Text for display: plain text as Markdown that shows exactly its characters, and a document's answer
as sanitised HTML. Pure functions; no Streamlit import (the app and its tests import this directly).

    literal("Why <b>x</b> * 2?")   -> "Why `<b>`x`</b>` \\* 2?"   (Markdown that renders as written)
    answer_html("| a |\n|---|\n| <img src=x onerror=alert(1)> |")   -> "<div><table>…<img src=\"x\"></td>…"

What it does not do: parse documents into entries (documents/), or decide what a page shows (app.py).
"""
from __future__ import annotations

import re
from typing import Callable

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# A code span as the renderer sees one: it may wrap lines but never crosses a blank line (a paragraph).
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(?:(?!\n[ \t]*\n).)+?(?<!`)\1(?!`)", re.DOTALL)
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
        before = text[last:match.start()]  # an earlier tag, shown as code, already ended any link
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


def answer_markdown(answer: str) -> str:
    """An answer as Markdown that renders as written: tables, lists and code intact, HTML shown as text.

    Outside code, HTML tags become code spans (no tag can be injected, whatever the renderer does
    with raw HTML) and `$` is escaped (Streamlit would otherwise read "$5 and x$" as LaTeX). Code
    blocks and code spans are left alone because they already render literally.
    """
    out: list[str] = []
    prose: list[str] = []
    fence = ""
    for line in answer.split("\n"):
        if fence:
            out.append(line)
            if re.match(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$", line):
                fence = ""
            continue
        opening = _FENCE.match(line)
        if opening:
            out.append(_escape_prose("\n".join(prose)))
            prose, fence = [], opening.group(1)
            out.append(line)
        else:
            prose.append(line)
    if prose:
        out.append(_escape_prose("\n".join(prose)))
    return "\n".join(out)


def _escape_prose(text: str) -> str:
    parts, last = [], 0
    for span in _CODE_SPAN.finditer(text):
        parts += [_escape_text(text[last:span.start()]), span.group(0)]
        last = span.end()
    parts.append(_escape_text(text[last:]))
    # A tag shown as code right beside a code span of the answer would merge with it into one span.
    return "".join(part if not (i and part.startswith("`") and parts[i - 1].endswith("`")) else " " + part
                   for i, part in enumerate(parts))


def _escape_text(text: str) -> str:
    # `$` would start LaTeX; a backtick left here has no partner (code spans were taken out first) and
    # could pair with the fence of a tag shown as code, putting the tag back outside code.
    return html_as_text(text, lambda part: re.sub(r"(?<!\\)([$`])", r"\\\1", part))



def sentence(text: str) -> str:
    """A message from the core ("also searched for: …") as a sentence: first letter up, the rest kept
    (str.capitalize would lower "BERT" or a file name)."""
    return text[:1].upper() + text[1:]


