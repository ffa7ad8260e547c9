"""End to end in a real browser: `streamlit run app.py` driven by headless system chromium.

One test walks what a first-time user does (search, a shared ?q= link, the Missing answers view,
"None of these" on a question the document does not answer and the "Asked, not answered" view, the
topic map, an upload) so the server, the browser and the model load are paid for once. The server
serves the bundled corpus from a copy of its index, so the searches it logs go to a log of its own.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Page, expect
from test_app import copy_bundled_index

from indexer.stores.spec import STORE_ENV
from indexer.usage.querylog import SWITCH_ENV

pytestmark = pytest.mark.browser

UNANSWERED = "how do I bake banana bread"  # no good match in the bundled corpus
OVERFITTING = (
    "What is Overfitting and Underfitting, and How to Combat Them?",
    "How do you ensure you’re not overfitting with a model?",
)
XSS_DOCUMENT = """\
**1. How do I embed a script in an answer?**

Like this: <script>window.__xss = "script"; console.log("xss: script")</script> and
<img src="x" alt="a missing picture" onerror="window.__xss = 'img'; alert('xss: img')">.
Or <a href="javascript:window.__xss='link';alert('xss: link')">click me</a>, [or me](javascript:alert('xss: md')),
<iframe src="https://example.com"></iframe> and <svg onload="alert('xss: svg')"></svg>.

<table><tr><th>engine</th><th>speed</th></tr><tr><td>faiss</td><td onmouseover="alert('xss: td')">fast</td></tr></table>

**2. What is the capital of France?**

Paris.
"""


@pytest.fixture(scope="session")
def server_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str | None]]:
    """While the shared server starts: the bundled corpus from a copy of its index, logging on. Yields
    what the variables were, for `streamlit_url` to put back once the server has read them."""
    store = copy_bundled_index(tmp_path_factory.mktemp("store"))
    saved = {name: os.environ.pop(name, None) for name in (STORE_ENV, SWITCH_ENV)}
    os.environ[STORE_ENV] = str(store)
    try:
        yield saved
    finally:
        restore_environment(saved)


def restore_environment(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def streamlit_url(server_environment: dict[str, str | None], streamlit_url: str) -> str:
    """conftest's server, started in `server_environment`, which no other test sees afterwards."""
    restore_environment(server_environment)
    return streamlit_url


def wait_idle(page: Page) -> None:
    """Right after Enter the old results are still in the DOM; wait for the rerun to finish."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')


def card(page: Page, question: str | re.Pattern):
    """The result card whose title is `question`: the innermost block holding that title and a panel."""
    title = page.locator("strong").filter(has_text=question)
    return page.get_by_test_id("stVerticalBlock").filter(has=title).filter(has=page.get_by_test_id("stExpander")).last


def test_search_deep_link_entry_page_missing_view_and_inert_upload(
    streamlit_url: str, page: Page, artifacts_dir: Path, tmp_path: Path
) -> None:
    page.goto(streamlit_url)
    box = page.get_by_label("Ask a question")
    expect(box).to_be_visible(timeout=120_000)  # a fresh clone builds index/ on this first load

    # Search: a paraphrase with no word in common with the entry's title still finds it, with a score.
    box.fill("why does my model do well on training data but badly on new data")
    started = time.perf_counter()
    box.press("Enter")
    # Checked on every animation frame (expect() polls at 100-1000 ms steps, too coarse to time with).
    page.wait_for_function(
        "titles => [...document.querySelectorAll('strong')].some(e => titles.some(t => e.textContent.includes(t)))",
        arg=list(OVERFITTING),
        polling="raf",
    )
    print(f"\n[timing] warm query, Enter -> overfitting card shown: {time.perf_counter() - started:.2f} s")
    overfitting = card(page, re.compile("|".join(re.escape(q) for q in OVERFITTING)))
    expect(overfitting).to_be_visible()
    expect(overfitting).to_contain_text(re.compile(r"score\s*0\.\d\d"))
    wait_idle(page)
    assert parse_qs(urlparse(page.url).query)["q"] == [box.input_value()]
    page.screenshot(path=str(artifacts_dir / "search.png"))

    # A shared link runs its query on load; the missing entry carries its badge.
    page.goto(f"{streamlit_url}/?q=batch+normalization")
    expect(page.get_by_label("Ask a question")).to_have_value("batch normalization")
    expect(card(page, "What is batch normalization?")).to_contain_text("Missing answer")
    wait_idle(page)

    # Its near-duplicate badge links to #15's own page in the same tab; Back returns to the search.
    card(page, "What is batch normalization?").get_by_role("link", name="#15").click()
    expect(page.get_by_role("heading", name="Related questions")).to_be_visible()
    expect(page.locator("strong").filter(has_text="What Is Dropout and Batch Normalization?")).to_be_visible()
    wait_idle(page)
    assert parse_qs(urlparse(page.url).query) == {"id": ["15"]} and len(page.context.pages) == 1
    page.screenshot(path=str(artifacts_dir / "entry.png"), full_page=True)
    page.go_back()
    expect(page.get_by_label("Ask a question")).to_have_value("batch normalization")
    expect(card(page, "What is batch normalization?")).to_contain_text("Missing answer")
    wait_idle(page)

    # The Missing answers view, reached the way a user does, and kept in the URL.
    page.get_by_role("radio", name="Missing answers").click()
    expect(page.get_by_text("10 of 82 entries have no answer")).to_be_visible()
    wait_idle(page)
    assert parse_qs(urlparse(page.url).query)["view"] == ["missing"]
    page.screenshot(path=str(artifacts_dir / "missing.png"), full_page=True)

    # A question the document does not answer: the list says so, the reader says "None of these", and
    # the question shows up under "Asked, not answered".
    page.get_by_role("radio", name="Search").click()
    box = page.get_by_label("Ask a question")
    box.fill(UNANSWERED)
    box.press("Enter")
    expect(page.get_by_text("No good match.")).to_be_visible()
    wait_idle(page)
    page.get_by_role("button", name="None of these").click()
    expect(page.get_by_role("button", name="None of these · Undo")).to_be_visible()
    wait_idle(page)
    page.screenshot(path=str(artifacts_dir / "feedback.png"), full_page=True)
    page.get_by_role("radio", name="Asked, not answered").click()
    expect(page.locator("strong").filter(has_text=UNANSWERED)).to_be_visible()
    expect(page.get_by_text("1 question asked, not answered")).to_be_visible()
    wait_idle(page)
    assert parse_qs(urlparse(page.url).query)["view"] == ["gaps"]
    page.screenshot(path=str(artifacts_dir / "gaps.png"), full_page=True)

    # The topic map: Vega draws one mark per entry; clicking entry 31's point opens its card below the map.
    page.goto(f"{streamlit_url}/?view=topics")
    chart = page.get_by_test_id("stVegaLiteChart")
    expect(chart.locator("svg, canvas").first).to_be_visible()
    points = chart.locator('[aria-roledescription="point"]')
    expect(points).to_have_count(82)
    chart.locator('[aria-roledescription="point"][aria-label*="id: 31;"]').click(force=True)  # ids are unique
    opened = (
        page.get_by_test_id("stVerticalBlock")
        .filter(has=page.locator("strong").filter(has_text="What is batch normalization?"))
        .filter(has_text="Near-duplicate of #15")
        .last
    )
    expect(opened).to_be_visible()
    expect(opened).to_contain_text("No answer yet.")
    wait_idle(page)
    assert parse_qs(urlparse(page.url).query)["view"] == ["topics"]
    page.screenshot(path=str(artifacts_dir / "topics.png"), full_page=True)

    # An uploaded hostile document: its HTML renders, sanitised; nothing in it runs, not even when clicked.
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    logged: list[str] = []
    page.on("console", lambda message: logged.append(message.text))
    upload = tmp_path / "xss.md"
    upload.write_text(XSS_DOCUMENT, encoding="utf-8")
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(upload))
    expect(page.get_by_text(re.compile(r"Indexed xss\.md: 2 entries"))).to_be_visible(timeout=90_000)
    wait_idle(page)  # the sidebar says so before the run ends (the Topics view maps the new document)
    page.get_by_role("radio", name="Search").click()
    box = page.get_by_label("Ask a question")
    box.fill("embed a script")
    box.press("Enter")
    answer = page.get_by_test_id("stMarkdownContainer").filter(has_text="Like this:")
    table = answer.locator("table")
    expect(table.locator("th")).to_have_text(["engine", "speed"])  # a real table, not its source
    expect(table.locator("td")).to_have_text(["faiss", "fast"])
    expect(answer).not_to_contain_text("<script")
    expect(answer.get_by_text("click me")).to_be_visible()
    wait_idle(page)
    image = answer.locator("img")
    expect(image).to_have_attribute("alt", "a missing picture")  # a broken image shows its alt text
    page.wait_for_function("img => img.complete && img.naturalWidth === 0", arg=image.element_handle())  # it failed
    answer.get_by_text("click me").click()
    answer.get_by_text("or me").click()
    table.locator("td").last.hover()
    page.wait_for_timeout(500)  # give anything that might run a moment to do so
    assert dialogs == [] and page.evaluate("window.__xss") is None
    assert not [text for text in logged if "xss" in text]
    main = page.get_by_test_id("stMain")
    assert main.locator("script, iframe, svg [onload], [onerror], [onmouseover], a[href^='javascript']").count() == 0
    assert main.locator("a", has_text="click me").get_attribute("href") is None
    page.screenshot(path=str(artifacts_dir / "upload.png"), full_page=True)
    assert page.console_errors == []
