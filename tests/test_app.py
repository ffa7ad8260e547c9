"""app.py through Streamlit's AppTest (no server, no browser), with the real model and the bundled corpus.

The bundled corpus uses the repository's index/ (built once if missing); every other source, upload
and index lives under tmp_path through INDEXER_DATA_DIR and INDEXER_CACHE_DIR. Searches are not logged
(INDEXER_QUERY_LOG=off), so the repository's query log is never written; tests of the log serve the
bundled corpus from a copy of its index in tmp_path (`logged_index`), whose log is their own.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import io
import json
import os
import re
import shutil
import sys
from pathlib import Path
from unittest import mock

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest, local_script_runner

import indexer.analysis.topics
from indexer import DEFAULT_INDEX_DIR, DEFAULT_SOURCE, QAIndex
from indexer.defaults import DEFAULT_MIN_SCORE
from indexer.display.rendering import missing_csv, missing_markdown
from indexer.stores.spec import STORE_ENV
from indexer.usage.querylog import LogEntry, SqliteQueryLog

APP = str(Path(__file__).resolve().parents[1] / "app.py")
MISSING_IDS = {31, 32, 33, 34, 35, 45, 48, 52, 58, 80}
KNOWN_DUPLICATES = {(15, 31), (16, 81), (17, 57), (22, 74)}
OVERFITTING_QUERY = "why does my model do well on training data but badly on new data"
XSS_DOCUMENT = """\
**1. How do I embed a script in an answer?**

Like this: <script>alert(1)</script> or <img src=x onerror="alert(2)">, and it costs $5 and x$.
Or <iframe src="https://example.com"></iframe>, or <b>x</b>, or see https://example.com<br>now.

| tag | use |
|-----|-----|
| `<b>` | bold |

```html
<b>code stays as written</b>
```

**2. What is the capital of France?**

Paris.
"""
FAQ_CSV = """\
question,answer
How do I reset my password?,Use the Forgot password link on the login page.
Which payment methods do you accept?,"Visa, Mastercard and PayPal."
Can I export my data?,
"""
SECTIONED_DOCUMENT = """\
# Shop FAQ

## Accounts

**1. How do I reset my password?**

Use the Forgot password link on the sign-in page.

**2. Can I change my email address?**

Yes, under Settings, Account.

## Billing

**3. Which payment methods do you accept?**

Visa, Mastercard and PayPal.

**4. How do I get a refund?**

Write to support within 30 days of your order.

## Shipping

**5. How long does delivery take?**

Three to five working days.

**6. Do you ship abroad?**

Yes, to every country in the EU.
"""
REPEATED_NUMBER_DOCUMENT = """\
**1. What is a tensor?**

An array with any number of axes.

**2. What is a gradient?**

The vector of partial derivatives.

```text
**3. Not an entry: this line is inside a code block?**
```

**2. What is a learning rate?**

The step size of gradient descent.
"""


@pytest.fixture
def app_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Data folder, uploads and non-bundled indexes in tmp_path (app.py reads these variables on every run)."""
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("INDEXER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("INDEXER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("INDEXER_QUERY_LOG", "off")  # else the bundled corpus logs to the repository's index/
    return tmp_path


def copy_bundled_index(folder: Path) -> Path:
    """`folder` holding a copy of the bundled corpus's current index generation (index/ is built first
    on a fresh clone): the same index, with a query log of its own."""
    QAIndex.open(index_dir=DEFAULT_INDEX_DIR)
    generation = (DEFAULT_INDEX_DIR / "current").resolve()
    shutil.copytree(generation, folder / generation.name)
    (folder / "current").symlink_to(generation.name)
    return folder


@pytest.fixture
def logged_index(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The bundled corpus served from a copy of its index under tmp_path, with logging on; the log is
    `<returned folder>/querylog.sqlite`."""
    monkeypatch.setenv(STORE_ENV, str(copy_bundled_index(app_env / "index")))
    monkeypatch.delenv("INDEXER_QUERY_LOG")
    return app_env / "index"


def log_entries(index_dir: Path) -> list[LogEntry]:
    return SqliteQueryLog(index_dir / "querylog.sqlite", create=False).entries()


@pytest.fixture(scope="module")
def app_module():
    """app.py imported as a module (its main() only runs under Streamlit), for its pure helpers."""
    spec = importlib.util.spec_from_file_location("qa_app", APP)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it is being executed
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def run_app(query_params: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query_params or {})
    at.run()
    assert not at.exception, at.exception
    return at


def navigate(at: AppTest, query_params: dict[str, str]) -> AppTest:
    """Back or Forward: the browser reruns the script with that entry's query string, flagged as a
    history navigation (AppTest has no Back button, so its rerun request is flagged here)."""
    at.query_params.clear()
    at.query_params.update(query_params)
    flagged = functools.partial(local_script_runner.RerunData, is_history_navigation=True)
    with mock.patch.object(local_script_runner, "RerunData", flagged):
        at.run()
    assert not at.exception, at.exception
    return at


def search(at: AppTest, query: str) -> AppTest:
    at.text_input(key="query").input(query).run()  # like typing and pressing Enter
    assert not at.exception, at.exception
    return at


def cards(at: AppTest) -> list[dict]:
    """Result cards in page order: rank, id, question, details line and score, read from the Markdown source
    (a card's title, details line and score are one element: two paragraphs)."""
    found: list[dict] = []
    for value in (m.value for m in at.main.markdown):
        title, _, details = value.partition("\n\n")
        details = details.split("\n\n")[0]  # the answer follows
        heading = re.fullmatch(r"(?::gray\[)?\*\*(\d+)\.&nbsp; (.*)\*\*\]?", title, re.S)
        if heading and details.startswith(':gray-badge[<a href="?id='):
            found.append(
                {
                    "rank": int(heading[1]),
                    "question": heading[2],
                    "greyed": title.startswith(":gray["),
                    "details": unlinked(details),
                    "id": int(re.match(r':gray-badge\[<a href="\?id=(\d+)" target="_self">#\1</a>\]', details)[1]),
                    "score": float(re.search(r"score\]? \**(-?\d\.\d\d)\**", details)[1]),
                    "answer": value.split("\n\n", 2)[-1] if value.count("\n\n") >= 2 else None,
                }
            )
    return found


def unlinked(markdown: str) -> str:
    """`markdown` with each entry link (`<a href="?id=17" target="_self">#17</a>`) read as the "#17" it
    shows; a link whose address does not match its text is left as it is, and fails the test."""
    return re.sub(r'<a href="\?id=([^"]+)" target="_self">#\1</a>', r"#\1", markdown)


def markdown_text(at: AppTest) -> str:
    return "\n".join(unlinked(m.value) for m in at.main.markdown)


def captions(at: AppTest) -> list[str]:
    return [unlinked(c.value) for c in at.main.caption]


def keyed_ids(at: AppTest, prefix: str) -> list[str]:
    """What follows `prefix` in the keys of the buttons that have it, in page order."""
    return [b.key.removeprefix(prefix) for b in at.button if b.key and b.key.startswith(prefix)]


def listed_pairs(at: AppTest) -> list[tuple[int, int]]:
    """The Duplicates view's pairs in page order, read from its buttons' keys ("pair-15-31-15")."""
    pairs = [tuple(int(n) for n in key.split("-")[:2]) for key in keyed_ids(at, "pair-")]
    return list(dict.fromkeys(pairs))


def select_document(at: AppTest, name: str) -> AppTest:
    """Choose a file of the data folder in the sidebar (the bundled corpus is always first)."""
    selectbox = at.selectbox(key="source")
    selectbox.select_index([Path(str(option)).name for option in selectbox.options].index(name)).run()
    assert not at.exception, at.exception
    return at


# ---- search ---------------------------------------------------------------------------------------


def test_query_shows_cards_with_scores_and_keeps_it_in_the_url(app_env):
    at = search(run_app(), OVERFITTING_QUERY)
    results = cards(at)
    assert [c["rank"] for c in results] == [1, 2, 3, 4, 5]
    assert all(0 < c["score"] <= 1 for c in results)
    assert {17, 57} & {c["id"] for c in results[:3]}, results
    assert all(re.search(r"matched on (question|answer|both)", c["details"]) for c in results)
    assert at.query_params["q"] == OVERFITTING_QUERY


def test_batch_normalization_finds_15_or_31_and_flags_31_missing(app_env):
    at = search(run_app(), "what does batch normalization do")
    results = cards(at)
    assert results[0]["id"] in (15, 31)
    by_id = {c["id"]: c for c in results}
    assert "Missing answer" in by_id[31]["details"]
    assert "Missing answer" not in by_id[15]["details"]
    assert by_id[31]["answer"] == ":small[:gray[No answer yet.]]" and by_id[15]["answer"].startswith("<div><p>")


def test_deep_link_runs_the_query(app_env):
    at = run_app({"q": "batch normalization"})
    assert at.text_input(key="query").value == "batch normalization"
    assert cards(at)[0]["id"] in (15, 31)


def test_empty_query_offers_examples_that_run_when_chosen(app_env, app_module):
    at = run_app()
    assert cards(at) == [] and "q" not in at.query_params
    example = app_module.EXAMPLES[1]
    at.button_group(key="example").set_value(example).run()
    assert at.text_input(key="query").value == example
    assert at.query_params["q"] == example and cards(at)


def test_another_document_offers_its_own_answered_questions_as_examples(app_env):
    at = run_app()
    at.file_uploader(key="upload").set_value(("faq.csv", FAQ_CSV.encode(), "text/csv")).run()
    assert at.button_group(key="example").options == [
        "How do I reset my password?",
        "Which payment methods do you accept?",
    ]  # not the ML ones
    at.button_group(key="example").set_value("Which payment methods do you accept?").run()
    assert cards(at)[0]["question"] == "Which payment methods do you accept?"


def test_options_set_k_and_hide_entries_without_answers(app_env):
    at = run_app()
    at.slider(key="k").set_value(3).run()
    assert len(cards(search(at, "what is batch normalization"))) == 3
    assert 31 in {c["id"] for c in cards(at)}
    at.toggle(key="include_missing").set_value(False).run()
    results = cards(at)
    assert len(results) == 3 and 31 not in {c["id"] for c in results}
    assert all("Missing answer" not in c["details"] for c in results)


def test_no_good_match_is_said_plainly_and_nearest_are_greyed(app_env):
    at = run_app()
    at.slider(key="min_score").set_value(1.0).run()
    results = cards(search(at, "how do I bake banana bread"))
    assert any("No good match" in w.value for w in at.warning)
    assert results and all(c["greyed"] for c in results)


def test_a_minimum_score_that_hides_good_matches_says_so_not_no_good_match(app_env):
    at = run_app()
    at.slider(key="min_score").set_value(1.0).run()
    results = cards(search(at, "what is dropout"))
    warnings = [w.value for w in at.warning]
    assert any("Nothing reaches the minimum score" in w for w in warnings)
    assert not any("No good match" in w for w in warnings)
    assert results and all(c["greyed"] for c in results)


def test_query_without_words_gets_a_readable_message(app_env):
    at = search(run_app(), "???")
    assert at.info[0].value.startswith("The query has no letters or digits")
    assert cards(at) == []


def test_notes_about_the_query_are_shown(app_env):
    at = search(run_app(), "overfitting " * 200)
    assert any(i.value.startswith("Query cut to its first 2000 characters") for i in at.info)  # a sentence
    assert cards(at)


def test_related_questions_lists_neighbours_when_opened_and_searches_one(app_env):
    at = search(run_app(), "what is batch normalization")
    first = cards(at)[0]

    def related_buttons() -> list:
        return [b for b in at.button if b.key and b.key.startswith(f"related-{first['id']}-")]

    assert related_buttons() == []  # closed panels are not filled
    assert [e.label for e in at.main.expander][:2] == ["Related questions"] * 2
    at.session_state[f"related-open-{first['id']}"] = True  # what opening the expander does
    at.run()
    related = related_buttons()
    assert len(related) == 5
    assert len([m for m in at.main.markdown if re.fullmatch(r"`-?\d\.\d\d`", m.value)]) == 5  # their scores
    question = related[0].label.removesuffix(" (no answer yet)")
    related[0].click().run()
    assert at.text_input(key="query").value == question
    assert cards(at)[0]["question"].replace("\\", "") == question


# ---- the note on what the options hide -----------------------------------------------------------


def hidden_note(at: AppTest) -> str | None:
    notes = [c for c in captions(at) if "Hidden by the search options" in c]
    assert len(notes) <= 1
    return notes[0] if notes else None


def test_a_deep_link_says_how_many_results_the_minimum_score_hides(app_env):
    expected = QAIndex.open().search("dropout", k=5)
    hidden = len(expected.nearest) - len(expected.hits)
    assert hidden > 0  # "dropout" has one clear match; the rest of the top five score below the minimum
    at = run_app({"q": "dropout"})
    assert len(cards(at)) == len(expected.hits)
    assert f"{hidden} results scoring below the minimum score {DEFAULT_MIN_SCORE:.2f}" in hidden_note(at)


def test_the_note_names_hidden_unanswered_entries_and_the_section(app_env):
    (app_env / "data" / "shop.md").write_text(SECTIONED_DOCUMENT, encoding="utf-8")  # before the folder is listed
    at = search(run_app(), "what is batch normalization")
    assert hidden_note(at) is None  # all five pass and nothing is filtered
    at.toggle(key="include_missing").set_value(False).run()
    assert "1 entry without an answer" in hidden_note(at)  # #31, the best match
    at = select_document(run_app(), "shop.md")
    search(at, "how do I pay").selectbox(key="section").select("Billing").run()
    assert "every entry outside the section Billing" in hidden_note(at)


# ---- an entry's own page and the URL as page state --------------------------------------------------


def test_an_entry_link_opens_its_page_with_answer_twin_and_related_questions(app_env):
    at = run_app({"id": "31"})
    text = markdown_text(at)
    assert "**31.&nbsp; What is batch normalization?**" in text
    assert "Missing answer" in text and "Near-duplicate of #15" in text and "line " in text
    assert "No answer yet." in captions(at)
    assert [s.value for s in at.main.subheader] == ["Near-duplicate", "Related questions"]
    assert "#15 &nbsp; What Is Dropout and Batch Normalization?" in text  # the twin, linked
    assert len(keyed_ids(at, "related-31-")) == 5 and not at.text_input  # a page of its own, no search box
    assert dict(at.query_params) == {"id": "31"}


def test_an_answered_entry_page_renders_its_answer(app_env):
    at = run_app({"id": "17"})
    (answer,) = [m for m in at.main.markdown if m.value.startswith("<div>")]
    assert answer.proto.allow_html and "verfitting" in answer.value
    assert "Missing answer" not in markdown_text(at)


@pytest.mark.parametrize("shown_id", ["999", "abc", "17.0", "ml_interview_qa.md#17"])
def test_an_unknown_id_gets_one_line_and_a_usable_page(app_env, shown_id):
    at = run_app({"id": shown_id})
    (warning,) = at.warning
    assert warning.value.replace("\\", "") == f"ml_interview_qa.md has no entry with the id {shown_id}."
    assert "id" not in at.query_params
    assert cards(search(at, "what does batch normalization do"))  # the search page works as usual


def test_closing_an_entry_or_picking_a_view_leaves_its_page(app_env):
    at = run_app({"id": "17"})
    at.button(key="close_entry").click().run()
    assert "id" not in at.query_params and at.text_input(key="query").value == ""
    at = run_app({"id": "17"})
    at.button_group(key="view").set_value("missing").run()
    assert dict(at.query_params) == {"view": "missing"}
    assert at.subheader[0].value == "10 of 82 entries have no answer"


def test_back_and_forward_restore_the_search_and_view_from_the_url(app_env):
    at = search(run_app(), "what is dropout")
    search(at, "what is batch normalization")
    at.button_group(key="view").set_value("missing").run()
    assert dict(at.query_params) == {"q": "what is batch normalization", "view": "missing"}
    navigate(at, {"q": "what is dropout"})  # Back to the first search
    assert at.text_input(key="query").value == "what is dropout"
    assert cards(at)[0]["question"] == "What Is Dropout and Batch Normalization?"
    navigate(at, {"q": "what is dropout", "view": "missing"})  # and Forward again, to a view
    assert at.subheader[0].value == "10 of 82 entries have no answer"
    at.button_group(key="view").set_value("search").run()  # the query lived on while the view was shown
    assert at.text_input(key="query").value == "what is dropout"


def test_a_widget_rerun_with_a_stale_url_does_not_undo_what_the_reader_did(app_env):
    # Typing right after switching views: the browser may still send the URL from before the switch.
    at = run_app({"view": "topics"})
    at.button_group(key="view").set_value("search").run()
    assert dict(at.query_params) == {}
    at.query_params["view"] = "topics"  # the stale query string the next widget rerun carries
    search(at, "what is dropout")
    assert at.button_group(key="view").value == "search"
    assert cards(at)[0]["question"] == "What Is Dropout and Batch Normalization?"
    assert dict(at.query_params) == {"q": "what is dropout"}


ENTRY_LINK = re.compile(r'<a href="\?id=(\d+)" target="_self">#\1</a>')


@pytest.mark.parametrize("view", ["missing", "topics", "duplicates"])
def test_every_id_a_view_shows_links_to_its_entry_page(app_env, view):
    at = run_app({"view": view})
    texts = [m.value for m in at.main.markdown] + [c.value for c in at.main.caption]
    linked = {int(n) for text in texts for n in ENTRY_LINK.findall(text)}
    assert [text for text in texts if re.search(r"(?<!&)#\d", ENTRY_LINK.sub("", text))] == []  # no id without its link
    expected = {
        "missing": MISSING_IDS,
        "topics": set(range(1, 83)),
        "duplicates": {n for pair in KNOWN_DUPLICATES for n in pair},
    }[view]
    assert expected <= linked


# ---- missing answers and browse --------------------------------------------------------------------


def test_missing_view_lists_exactly_the_missing_entries_with_hints(app_env):
    at = run_app({"view": "missing"})
    assert at.subheader[0].value == "10 of 82 entries have no answer"
    listed = {int(b.key.removeprefix("ask-")) for b in at.button if b.key and b.key.startswith("ask-")}
    assert listed == MISSING_IDS
    text = markdown_text(at)
    assert "**31.&nbsp; What is batch normalization?**" in text
    assert text.count("Closest answered entries:") == 10
    assert "1 of 82 entries has only links for an answer" in [s.value for s in at.subheader]
    assert "**72.&nbsp;" in text  # the link-only entry, listed separately


def test_missing_view_search_button_opens_search_with_that_question(app_env):
    at = run_app({"view": "missing"})
    at.button(key="ask-31").click().run()
    assert at.query_params.get("view") is None
    assert at.text_input(key="query").value == "What is batch normalization?"
    # #31 has no answer: it is not offered as its own best match (it was, with score 1.00), its twin #15 is
    assert 31 not in [c["id"] for c in cards(at)] and cards(at)[0]["id"] == 15
    assert any("#31 itself is left out" in c for c in captions(at))
    search(at, "batch normalization")  # a query of one's own shows every entry again
    assert 31 in [c["id"] for c in cards(at)]


def test_missing_exports_hold_the_ten_entries_with_their_hints():
    qa = QAIndex.open()
    missing = qa.missing()
    hints = {record.id: qa.hints(record.id, k=3) for record in missing}
    rows = list(csv.DictReader(io.StringIO(missing_csv(missing, hints).decode())))
    assert list(rows[0]) == ["id", "question", "section", "line", "source", "closest answered entries"]
    assert {int(row["id"]) for row in rows} == MISSING_IDS
    batch_norm = next(row for row in rows if row["id"] == "31")
    assert batch_norm["closest answered entries"].startswith("15: What Is Dropout and Batch Normalization? (0.")
    assert batch_norm["closest answered entries"].count("; ") == 2  # three hints
    markdown = missing_markdown(missing, hints, len(qa.records))
    assert "10 of 82 entries have no answer." in markdown
    assert markdown.count("- [ ] **") == 10 and markdown.count("  - closest answered: **") == 30
    assert "- [ ] **31.** What is batch normalization?" in markdown
    assert (
        markdown.split("- [ ] **31.**")[1]
        .split("\n")[1]
        .startswith("  - closest answered: **15.** What Is Dropout and Batch Normalization? (0.")
    )


def browsed_ids(at: AppTest) -> list[int]:
    """The ids of Browse's rows, read from their links ("?id=17")."""
    links = list(at.dataframe[0].value["id"])
    assert all(re.fullmatch(r"\?id=\d+", link) for link in links)
    return [int(link.removeprefix("?id=")) for link in links]


def test_browse_view_filters_by_status_and_text(app_env):
    at = run_app({"view": "browse"})
    table = at.dataframe[0].value
    assert len(table) == 82 and browsed_ids(at) == list(range(1, 83))
    assert list(table.columns[:5]) == ["id", "question", "answer", "status", "section"]
    assert not any("The filters hide" in c for c in captions(at))
    at.button_group(key="browse_status").set_value(["missing"]).run()
    assert set(browsed_ids(at)) == MISSING_IDS
    assert "Showing 10 of 82 entries. The filters hide 72." in captions(at)[-1]
    at.button_group(key="browse_status").set_value(["ok", "missing", "link_only"]).run()
    at.text_input(key="browse_filter").input("dropout").run()
    assert "The filters hide" in captions(at)[-1]
    questions = list(at.dataframe[0].value["question"])
    assert "What Is Dropout and Batch Normalization?" in questions and len(questions) < 82


def test_browse_shows_answers_shortened_and_a_selected_row_whole(app_env):
    at = run_app({"view": "browse"})
    answers = at.dataframe[0].value.set_index(pd.Index(browsed_ids(at)))["answer"]
    assert answers[31] == "" and all(len(a) <= 120 for a in answers)
    assert answers[17].endswith("…") and "\n" not in answers[17] and "**" not in answers[17]
    assert not [m for m in at.main.markdown if m.value.startswith("<div>")]  # no whole answer yet
    at.session_state["browse_table"] = {"selection": {"rows": [16], "columns": [], "cells": []}}  # a click on #17
    at.run()
    assert "**17.&nbsp; What is Overfitting and Underfitting, and How to Combat Them?**" in markdown_text(at)
    (whole,) = [m for m in at.main.markdown if m.value.startswith("<div>")]
    assert len(whole.value) > 2 * len(answers[17])


# ---- topics and near-duplicates -------------------------------------------------------------------


def test_topics_view_maps_every_entry_and_lists_topics_that_cover_them_all(app_env):
    at = run_app({"view": "topics"})
    all_ids = {str(r.id) for r in QAIndex.open().records}
    (chart,) = at.get("vega_lite_chart")
    spec = json.loads(chart.proto.spec)
    assert {"name": "entry", "select": {"type": "point", "fields": ["id"], "on": "click"}} in spec["params"]
    assert list(chart.proto.selection_mode) == ["entry"]  # a click on a point reruns the app
    points = pa.ipc.open_stream(chart.proto.datasets[0].data.data).read_all().to_pandas()
    assert len(points) == 82 and set(points["id"]) == all_ids
    assert {"question", "topic", "status"} <= set(points.columns)  # what the hover shows and colours by
    listed = keyed_ids(at, "topic-")
    assert sorted(listed) == sorted(all_ids)  # every entry in exactly one topic
    panels = [e.label for e in at.main.expander]
    sizes = [int(re.search(r":gray\[(\d+) entr", label)[1]) for label in panels]
    assert len(panels) >= 3 and sum(sizes) == 82 and sizes == sorted(sizes, reverse=True)
    assert panels[0].startswith("**1. ") and "/" in panels[0]  # "**1. wine / image / cnn**"
    assert at.subheader[0].value == f"{len(panels)} topics in 82 entries"


def test_a_point_picked_on_the_map_opens_its_entry_below(app_env):
    at = run_app({"view": "topics"})
    assert "**31.&nbsp; What is batch normalization?**" not in markdown_text(at)
    at.session_state["topic_map"] = {"selection": {"entry": [{"id": "31"}]}}  # what a click on point 31 sends
    at.run()
    assert not at.exception
    text = markdown_text(at)
    assert "**31.&nbsp; What is batch normalization?**" in text
    assert "Near-duplicate of #15" in text and "Missing answer" in text
    assert "No answer yet." in captions(at)


def test_an_entry_listed_under_its_topic_searches_for_it(app_env):
    at = run_app({"view": "topics"})
    at.button(key="topic-17").click().run()
    assert at.query_params.get("view") is None
    assert cards(at)[0]["id"] == 17


def test_topics_and_map_are_computed_once_per_index(app_env, monkeypatch):
    (app_env / "data" / "faq.csv").write_text(FAQ_CSV, encoding="utf-8")  # a source no other test has mapped
    calls = {"topics": 0, "topic_map": 0}

    def counted(name: str):
        original = getattr(indexer.analysis.topics, name)

        def call(*args):
            calls[name] += 1
            return original(*args)

        return call

    for name in calls:
        monkeypatch.setattr(indexer.analysis.topics, name, counted(name))
    at = select_document(run_app(), "faq.csv")
    at.button_group(key="view").set_value("topics").run()
    assert len(keyed_ids(at, "topic-")) == 3
    at.run()
    at.button_group(key="view").set_value("browse").run()
    at.button_group(key="view").set_value("topics").run()
    assert not at.exception and len(keyed_ids(at, "topic-")) == 3
    assert calls == {"topics": 1, "topic_map": 1}


def test_duplicates_view_lists_the_known_pairs_with_scores(app_env):
    at = run_app({"view": "duplicates"})
    pairs = listed_pairs(at)
    assert KNOWN_DUPLICATES <= set(pairs)
    assert at.subheader[0].value == f"{len(pairs)} near-duplicate pairs"
    scores = [
        float(re.search(r"\*\*(\d\.\d\d)\*\*", m.value)[1])
        for m in at.main.markdown
        if m.value.startswith(":small[similarity]")
    ]
    assert len(scores) == len(pairs) and all(s >= 0.6 for s in scores) and scores == sorted(scores, reverse=True)
    labels = {b.key: b.label for b in at.button if b.key and b.key.startswith("pair-")}
    assert labels["pair-15-31-31"] == "What is batch normalization? (no answer yet)"
    assert labels["pair-15-31-15"] == "What Is Dropout and Batch Normalization?"
    assert "#31 has no answer yet; the answer of #15 may cover it." in captions(at)


def test_duplicates_slider_raises_the_bar_and_a_question_opens_its_search(app_env):
    at = run_app({"view": "duplicates"})
    everything = listed_pairs(at)
    lowest = QAIndex.open().duplicates(0.3)
    assert f"The minimum similarity hides {len(lowest) - len(everything)} more pairs" in captions(at)[1]
    at.slider(key="duplicate_min_score").set_value(0.75).run()
    strict = listed_pairs(at)
    assert f"hides {len(lowest) - len(strict)} more pairs" in captions(at)[1]
    assert (16, 81) in strict and (22, 74) not in strict and set(strict) < set(everything)
    at.button(key="pair-16-81-81").click().run()
    assert at.query_params.get("view") is None
    assert at.text_input(key="query").value == "Compare batch, mini-batch and stochastic gradient descent."
    assert cards(at)[0]["id"] == 81


def test_a_card_mentions_its_near_duplicate(app_env):
    at = search(run_app(), "what does batch normalization do")
    by_id = {c["id"]: c for c in cards(at)}
    assert "Near-duplicate of #15" in by_id[31]["details"]
    assert "Near-duplicate of #31" in by_id[15]["details"]
    paired = {record_id for pair in QAIndex.open().duplicates() for record_id in (pair.first, pair.second)}
    assert all(("Near-duplicate" in c["details"]) == (c["id"] in paired) for c in by_id.values())


# ---- sections and the parse report -----------------------------------------------------------------


def test_section_filter_restricts_search_and_browse(app_env):
    (app_env / "data" / "shop.md").write_text(SECTIONED_DOCUMENT, encoding="utf-8")
    at = select_document(run_app(), "shop.md")
    assert at.sidebar.selectbox(key="section").options == ["All sections", "Accounts", "Billing", "Shipping"]
    everywhere = cards(search(at, "I forgot my password"))
    assert everywhere[0]["id"] == 1 and "Accounts" in everywhere[0]["details"]
    assert {c["id"] for c in everywhere} & {1, 2} and {c["id"] for c in everywhere} - {1, 2}
    at.selectbox(key="section").select("Billing").run()
    billing = cards(at)
    assert billing and {c["id"] for c in billing} <= {3, 4}
    assert all("Billing" in c["details"] for c in billing)
    at.button_group(key="view").set_value("browse").run()
    assert list(at.dataframe[0].value["section"].unique()) == ["Accounts", "Billing", "Shipping"]
    at.selectbox(key="browse_section").select("Shipping").run()
    assert browsed_ids(at) == [5, 6]


def test_browse_hides_the_section_filter_when_there_are_no_sections(app_env):
    at = run_app({"view": "browse"})
    assert [s.key for s in at.selectbox] == ["source"]
    at.button_group(key="view").set_value("search").run()
    assert [s.key for s in at.selectbox] == ["source"]


def test_parse_report_shows_a_repeated_number_and_the_lines_not_taken(app_env):
    (app_env / "data" / "repeated.md").write_text(REPEATED_NUMBER_DOCUMENT, encoding="utf-8")
    at = select_document(run_app(), "repeated.md")
    (report,) = [e for e in at.sidebar.expander if e.label.startswith("Parse report")]
    assert report.label == "Parse report: 1 warning"
    assert [w.value for w in report.warning] == [
        "Entry number 2 appears 2 times (lines 5, 13); the first keeps id 2, the others get new ids"
    ]
    text = "\n".join(m.value for m in report.markdown)
    assert "**repeated.md**: 3 entries, read as bold question lines." in text
    assert "- line 10: inside a fenced code block" in text


def test_an_upload_read_without_problems_gets_a_clean_parse_report(app_env):
    at = run_app()
    at.file_uploader(key="upload").set_value(("faq.csv", FAQ_CSV.encode(), "text/csv")).run()
    (report,) = [e for e in at.sidebar.expander if e.label.startswith("Parse report")]
    assert report.label == "Parse report" and not report.warning
    assert "No warnings, and no question-like line was left out." in [m.value for m in report.markdown]


# ---- other sources --------------------------------------------------------------------------------


def test_uploaded_csv_is_indexed_apart_and_searchable(app_env):
    default_generation = os.readlink(DEFAULT_INDEX_DIR / "current")
    at = run_app()
    at.file_uploader(key="upload").set_value(("faq.csv", FAQ_CSV.encode(), "text/csv")).run()
    assert not at.exception
    assert "Indexed **faq.csv**: 3 entries, 1 missing answer, 0 link only." in [s.value for s in at.sidebar.success]
    results = cards(search(at, "I forgot my login"))
    assert results[0]["question"] == "How do I reset my password?"
    assert list((app_env / "cache" / "uploads").rglob("faq.csv"))
    assert list((app_env / "cache" / "indexes").glob("*/current"))
    assert os.readlink(DEFAULT_INDEX_DIR / "current") == default_generation
    assert list((app_env / "data").iterdir()) == []


def test_answers_render_their_html_sanitised_and_keep_code(app_env):
    (app_env / "data" / "xss.md").write_text(XSS_DOCUMENT, encoding="utf-8")
    at = run_app()
    at.selectbox(key="source").select_index(1).run()
    assert "Indexed **xss.md**: 2 entries" in at.sidebar.success[0].value
    search(at, "how to embed a script")
    (card,) = [m for m in at.main.markdown if "Like this:" in m.value]
    html = card.value.split("\n\n")[-1]  # the card's title and details line come first
    assert html.startswith("<div>") and html.endswith("</div>")
    assert card.proto.allow_html  # rendered as HTML, which is only safe because it was sanitised:
    assert "<script" not in html and "alert(1)" not in html and "onerror" not in html and "<iframe" not in html
    assert '<img src="x">' in html and "<b>x</b>" in html  # harmless tags stay, stripped of their handlers
    assert "<table>" in html and "<td><code>&lt;b&gt;</code></td>" in html
    assert "<pre><code class" not in html and "&lt;b&gt;code stays as written&lt;/b&gt;" in html
    assert "costs $5 and x$" in html and "\n" not in html  # one raw HTML block: no Markdown, no LaTeX


@pytest.mark.parametrize(
    "name, data, says",
    [
        ("broken.csv", b"\x00\x01\x02binary", "looks like a binary file"),
        ("notes.md", b"Just some notes.\n\nNo questions.\n", "no question-and-answer entries found"),
    ],
)
def test_a_bad_upload_gets_one_error_under_the_uploader_and_the_page_keeps_working(app_env, name, data, says):
    at = run_app()
    at.file_uploader(key="upload").set_value((name, data, "text/plain")).run()
    assert not at.exception
    (error,) = at.sidebar.error
    assert error.value.startswith(f"**Cannot open {name}:** ") and says in error.value
    assert str(app_env) not in error.value  # the temp copy's path means nothing to the user
    assert "\n" not in error.value and not at.main.error
    # title, views and the picked document still work; the picker is not greyed out
    assert at.title[0].value == "Q&A search" and not at.selectbox(key="source").disabled
    assert cards(search(at, "what does batch normalization do"))
    at.run()  # a rerun shows the same error without reading the upload again
    assert [e.value for e in at.sidebar.error] == [error.value]


def test_index_from_a_newer_version_is_refused_with_a_message(app_env, app_module):
    source = app_env / "data" / "faq.csv"
    source.write_text(FAQ_CSV, encoding="utf-8")
    index_dir = Path(app_module.source_for(source, source.name).index_dir)
    (index_dir / "build-future").mkdir(parents=True)
    (index_dir / "build-future" / "manifest.json").write_text(json.dumps({"format_version": 999}))
    os.symlink("build-future", index_dir / "current")
    at = run_app()
    at.selectbox(key="source").select_index(1).run()
    assert not at.exception
    assert "newer version" in at.main.error[0].value


def test_an_index_damaged_while_the_app_runs_is_rebuilt_not_used(app_env, app_module):
    source = app_env / "data" / "faq.csv"
    source.write_text(FAQ_CSV, encoding="utf-8")
    index_dir = Path(app_module.source_for(source, source.name).index_dir)
    first = select_document(run_app(), "faq.csv")
    assert cards(search(first, "I forgot my login"))[0]["score"] > 0.3
    damaged = os.readlink(index_dir / "current")
    vectors = index_dir / "current" / "vectors.npy"
    with open(vectors, "r+b") as fh:  # zero the body in place: same size, same file, as the user did
        fh.seek(128)
        fh.write(bytes(vectors.stat().st_size - 128))
    second = select_document(run_app(), "faq.csv")  # a new browser session, same server process
    results = cards(search(second, "I forgot my login"))
    assert os.readlink(index_dir / "current") != damaged  # rebuilt: the damaged one was never used
    assert results[0]["question"] == "How do I reset my password?" and results[0]["score"] > 0.3
    assert not second.warning  # no "No good match"


def test_reruns_and_new_queries_never_reopen_the_index(app_env, monkeypatch):
    (app_env / "data" / "faq.csv").write_text(FAQ_CSV, encoding="utf-8")  # a source no other test has opened
    opened = []
    original = QAIndex.open.__func__
    monkeypatch.setattr(QAIndex, "open", classmethod(lambda cls, *a, **kw: opened.append(a) or original(cls, *a, **kw)))
    at = run_app()
    at.selectbox(key="source").select_index(1).run()
    search(at, "payment")
    search(at, "reset my password")
    at.run()
    faq_opens = [args for args in opened if any(Path(p).name == "faq.csv" for p in args[0])]
    assert len(faq_opens) == 1  # warm-query speed is measured by bench/run.py, not asserted here


def test_the_bundled_corpus_is_read_only(app_env, app_module):
    before = (DEFAULT_SOURCE.read_bytes(), DEFAULT_SOURCE.stat().st_mtime_ns)
    at = search(run_app(), "what does batch normalization do")
    at.session_state["related-open-31"] = True
    for view in app_module.VIEWS:
        at.button_group(key="view").set_value(view)
        if view == "topics":
            at.session_state["topic_map"] = {"selection": {"entry": [{"id": "15"}]}}  # and open an entry
        at.run()
        assert not at.exception, (view, at.exception)
        assert at.query_params.get("view", "search") == view
    assert (DEFAULT_SOURCE.read_bytes(), DEFAULT_SOURCE.stat().st_mtime_ns) == before


def test_a_one_entry_document_is_counted_in_the_singular(app_env):
    at = run_app()
    at.file_uploader(key="upload").set_value(("one.md", b"**1. Why?**\n\nBecause.\n", "text/markdown")).run()
    assert not at.exception
    assert at.sidebar.success[0].value == "Indexed **one.md**: 1 entry, 0 missing answers, 0 link only."
    assert "1 question and its answer." in at.main.caption[0].value


# ---- confidence, the query log and feedback ---------------------------------------------------------

CONFIDENCE_WORDS = {
    "good match": "Good match",
    "possibly related": "Possibly related — check the answers",
    "no good match": "No good match",
}


def confidence_shown(at: AppTest) -> str:
    """The confidence level the page states above the results (exactly one)."""
    notes = [e.value for e in [*at.main.success, *at.main.info, *at.main.warning]]
    (level,) = [
        level for level, words in CONFIDENCE_WORDS.items() for note in notes if note.startswith(f"**{words}.**")
    ]
    return level


@pytest.mark.parametrize(
    "query, level",
    [
        ("what is dropout", "good match"),
        ("combining lots of models to get better predictions", "possibly related"),
        ("how do I bake banana bread", "no good match"),
    ],
)
def test_every_result_list_says_how_confident_it_is(app_env, query, level):
    expected = QAIndex.open().search(query)
    assert expected.confidence == level  # each case shows a different level
    at = search(run_app(), query)
    assert confidence_shown(at) == expected.confidence
    assert cards(at) and all(c["greyed"] == (level == "no good match") for c in cards(at))


def feedback_buttons(at: AppTest) -> dict[str, str]:
    """The feedback buttons on the page, by key: "answered-<row>-<id>" on cards, "none-<row>" for the list."""
    return {b.key: b.label for b in at.button if b.key and b.key.startswith(("answered-", "none-"))}


def test_a_search_is_logged_once_and_not_again_on_reruns(logged_index):
    at = search(run_app(), "what does batch normalization do")
    (entry,) = log_entries(logged_index)
    shown = cards(at)
    assert entry.query == "what does batch normalization do" and not entry.no_match
    assert [record_id for record_id, _ in entry.results] == [c["id"] for c in shown]
    at.session_state[f"related-open-{shown[0]['id']}"] = True  # another widget: a rerun, the same search
    at.run()
    at.slider(key="k").set_value(3).run()  # other options: another search
    assert len(log_entries(logged_index)) == 2
    search(at, "what is dropout")
    queries = [e.query for e in log_entries(logged_index)]
    assert queries == ["what does batch normalization do"] * 2 + ["what is dropout"]
    navigate(at, {"q": "what does batch normalization do"})  # Back, to a search this session has shown
    assert cards(at) and len(log_entries(logged_index)) == 3
    line = at.sidebar.caption[-1].value.replace("\\", "")
    assert line.endswith(f"Searches are logged to {logged_index / 'querylog.sqlite'}")


def test_feedback_is_one_click_and_a_second_click_undoes_it(logged_index):
    at = search(run_app(), "what does batch normalization do")
    (row,) = [e.id for e in log_entries(logged_index)]
    answered = [c["id"] for c in cards(at) if "Missing answer" not in c["details"]]  # #31 cannot have answered it
    assert 15 in answered and 31 in [c["id"] for c in cards(at)] and 31 not in answered
    assert feedback_buttons(at) == {
        **{f"answered-{row}-{i}": "This answered my question" for i in answered},
        f"none-{row}": "None of these",
    }
    other = next(i for i in answered if i != 15)
    at.button(key=f"answered-{row}-15").click().run()
    (entry,) = log_entries(logged_index)  # feedback logs no new search
    assert (entry.feedback, entry.answered_id) == ("answered", 15)
    assert feedback_buttons(at)[f"answered-{row}-15"] == "This answered my question · Undo"
    at.button(key=f"answered-{row}-15").click().run()
    assert (log_entries(logged_index)[0].feedback, feedback_buttons(at)[f"answered-{row}-15"]) == (
        None,
        "This answered my question",
    )
    at.button(key=f"none-{row}").click().run()
    assert log_entries(logged_index)[0].feedback == "none"
    assert feedback_buttons(at)[f"none-{row}"] == "None of these · Undo"
    at.button(key=f"answered-{row}-{other}").click().run()  # a new mark replaces the other
    assert (log_entries(logged_index)[0].feedback, log_entries(logged_index)[0].answered_id) == ("answered", other)
    assert feedback_buttons(at)[f"none-{row}"] == "None of these"
    at.button(key=f"answered-{row}-{other}").click().run()
    assert log_entries(logged_index)[0].feedback is None and len(log_entries(logged_index)) == 1


def test_with_logging_off_nothing_is_logged_and_no_feedback_is_offered(logged_index, monkeypatch):
    monkeypatch.setenv("INDEXER_QUERY_LOG", "off")
    at = search(run_app(), "how do I bake banana bread")
    assert cards(at) and feedback_buttons(at) == {}
    assert "Searches are not logged (INDEXER_QUERY_LOG=off)." in at.sidebar.caption[-1].value.replace("\\", "")
    assert not (logged_index / "querylog.sqlite").exists()
    at.button_group(key="view").set_value("gaps").run()
    (info,) = at.main.info
    assert info.value.replace("\\", "").startswith(f"No query log at {logged_index / 'querylog.sqlite'}")


def test_a_log_that_cannot_be_written_is_one_warning_and_the_search_goes_on(logged_index):
    (logged_index / "querylog.sqlite").write_bytes(b"not a database" * 100)
    at = search(run_app(), "what is dropout")
    (warning,) = [w.value.replace("\\", "") for w in at.main.warning]
    assert warning.startswith("Query log: ") and "cannot be used (file is not a database)" in warning
    assert "\n" not in warning
    assert cards(at) and feedback_buttons(at) == {}
    at.run()
    assert not at.main.warning  # tried once per search, not on every rerun


def test_asked_not_answered_groups_the_unanswered_searches_with_downloads(logged_index, monkeypatch):
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    downloads: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def kept(self, data, mimetype, kind, filename=None):
        downloads[filename] = data if isinstance(data, bytes) else data.encode()
        return original(self, data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", kept)
    at = run_app({"view": "gaps"})
    assert [i.value for i in at.main.info] == ["No searches logged yet."]
    at.button_group(key="view").set_value("search").run()
    # the first two are one phrasing (case and end punctuation aside), the third another of the same question
    for query in (
        "how do I bake banana bread",
        "How do I bake banana bread?",
        "how can I make banana bread?",
        "what is dropout",
    ):
        search(at, query)
    row = log_entries(logged_index)[-1].id
    at.button(key=f"none-{row}").click().run()  # "what is dropout" found its entry, but not what the reader wanted
    at.button_group(key="view").set_value("gaps").run()
    assert at.query_params["view"] == "gaps"
    assert at.main.subheader[0].value == "2 questions asked, not answered"
    banana, dropout = [m.value for m in at.main.markdown if "asked " in m.value and " UTC]" in m.value]
    assert banana.startswith("**how can I make banana bread?** &nbsp; :gray[asked 3 times, ")
    assert "Also asked as: “how do I bake banana bread”" in banana and "Nearest entries:" in banana
    assert dropout.startswith("**what is dropout** &nbsp; :gray[asked 1 time, ")
    assert ENTRY_LINK.findall(dropout)[0] == "15"  # the nearest entries link to their pages
    markdown = downloads["asked_not_answered.md"].decode()
    assert markdown.startswith("**83. How can I make banana bread?**\n\n<!-- asked 3 times")
    assert "**84. What is dropout?**" in markdown
    rows = list(csv.DictReader(io.StringIO(downloads["asked_not_answered.csv"].decode())))
    assert [(r["label"], r["count"]) for r in rows] == [("how can I make banana bread?", "3"), ("what is dropout", "1")]
    assert rows[0]["queries"] == "how do I bake banana bread | how can I make banana bread?"
