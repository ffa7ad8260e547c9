"""Streamlit front end: search a Q&A document, list its missing answers, map its topics, find entries
that ask the same thing, browse its entries, and a page per entry.

    streamlit run app.py                      # the bundled corpus (builds index/ on first launch)
    http://localhost:8501/?q=batch+norm       # opens with that query already run
    http://localhost:8501/?view=topics        # opens a view: missing, gaps, topics, duplicates or browse
    http://localhost:8501/?id=17              # opens one entry's page

A thin shell over `indexer`: it picks a source, calls `QAIndex` and draws the results. It parses no
documents, touches no vectors and escapes no HTML itself (`indexer.display.rendering` does). `main()` calls
one function per region of the page; the URL's q/view/id are the page state (`follow_url`,
`write_url`). Every search shown is recorded once in the index's query log, with the reader's
feedback ("This answered my question", "None of these"); the "Asked, not answered" view groups what
it did not answer. Everything cached (model, indexes, topics, near-duplicates, search results) lives in
`app_resources.py`, imported once per process. docs/app.md describes the behaviour.

Environment (optional): INDEXER_DATA_DIR is the folder whose files the sidebar offers (default
data/); INDEXER_CACHE_DIR holds uploaded files and the indexes of non-bundled sources (default
<system temp>/qa-indexer-app), so neither data/ nor the bundled index/ is ever overwritten.
INDEXER_STORE=postgresql://user@host/db keeps every index in that database instead (pgvector).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import altair as alt
import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.uploaded_file_manager import UploadedFile
from streamlit.typing import VegaLiteState

from app_resources import (
    STATUS_LABELS,
    Hidden,
    SearchOptions,
    Source,
    current_index,
    duplicate_pairs,
    duplicate_partners,
    entries_frame,
    index_key,
    listed_files,
    logged_gaps,
    missing_hints,
    overview,
    resolved,
    search_results,
    topic_overview,
)
from indexer import DEFAULT_INDEX_DIR, DEFAULT_SOURCE, Hit, IndexerError, QAIndex, Record
from indexer.analysis.charts import topic_map_chart
from indexer.analysis.topics import DUPLICATE_MIN_SCORE, Duplicate, MapPoint, Topic
from indexer.defaults import DEFAULT_K, DEFAULT_MIN_SCORE
from indexer.display.rendering import answer_html, entry_link, literal, missing_csv, missing_markdown, sentence
from indexer.display.wording import entries_phrase, plural
from indexer.documents.places import describe_places
from indexer.documents.records import RecordId
from indexer.engine import PROJECT_ROOT
from indexer.errors import QueryError
from indexer.indexing.build import BuildSummary
from indexer.retrieval.search import SearchResult
from indexer.stores.spec import is_database_url, store_spec
from indexer.usage.gaps import Gap, entry_style, gaps_csv, gaps_markdown
from indexer.usage.querylog import QueryLog, QueryLogError

SOURCE_TYPES = ("md", "txt", "csv", "json", "jsonl")  # offered for upload and listed from the data folder
VIEWS = {
    "search": ":material/search: Search",
    "missing": ":material/help: Missing answers",
    "gaps": ":material/contact_support: Asked, not answered",
    "topics": ":material/scatter_plot: Topics",
    "duplicates": ":material/content_copy: Duplicates",
    "browse": ":material/table_rows: Browse",
}
BROWSE_COLUMNS = ["id", "question", "answer", "status", "section"]
STYLE_NAMES = {"bold": "bold question lines", "heading": "question headings", "qa": "Q:/A: pairs"}
ALL_SECTIONS = ""  # the first option of a section filter
URL_KEYS = ("q", "view", "id")  # the page state: ?q=batch+norm, ?view=missing, ?id=17 (an entry's own page)
LOWEST_DUPLICATE_SCORE = 0.3  # the Duplicates slider's lower end
MAP_SELECTION = "entry"  # the topic map's point-selection parameter, named in the chart and in its state
EXAMPLES = (
    "my model does well in training but badly on new data",
    "what does batch normalization do",
    "precision vs recall",
)  # the bundled corpus's; other documents offer their own questions
EXAMPLE_MAX_CHARS = 60  # a longer question makes a pill too wide to read as a suggestion
# SearchResult.confidence in words, each with the callout that shows it and what it means for the reader
CONFIDENCE_NOTES: dict[str, tuple[Callable[..., DeltaGenerator], str, str, str]] = {
    "good match": (st.success, ":material/check_circle:", "Good match", "The first result most likely answers it."),
    "possibly related": (
        st.info,
        ":material/help:",
        "Possibly related — check the answers",
        "These entries are close to the question; none may answer it.",
    ),
    "no good match": (
        st.warning,
        ":material/search_off:",
        "No good match",
        "No entry answers this well; the nearest ones are shown below, greyed.",
    ),
}


# ---- sources and their index folders ------------------------------------------------------------


def data_dir() -> Path:
    return Path(os.environ.get("INDEXER_DATA_DIR") or PROJECT_ROOT / "data")


def cache_dir() -> Path:
    return Path(os.environ.get("INDEXER_CACHE_DIR") or Path(tempfile.gettempdir()) / "qa-indexer-app")


def source_for(path: Path, name: str) -> Source:
    """The bundled corpus keeps the default store (`index/`, or $INDEXER_STORE); any other file gets an
    index of its own, keyed by its path: a folder under the cache, or a named index in the same database."""
    path = resolved(str(path))
    spec = store_spec(None, DEFAULT_INDEX_DIR)
    if path == resolved(str(DEFAULT_SOURCE)):
        return Source((str(path),), str(spec), name, bundled=True)
    key = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    where = f"{str(spec).partition('#')[0]}#{key}" if is_database_url(spec) else str(cache_dir() / "indexes" / key)
    return Source((str(path),), where, name, bundled=False)


def data_files() -> list[Path]:
    """The bundled corpus first, then every supported file under the data folder."""
    return list(listed_files(str(data_dir()), SOURCE_TYPES))


def save_upload(name: str, data: bytes) -> Path:
    """Keep an upload under the cache folder (never data/), named by its content so a rerun reuses it."""
    safe_name = re.sub(r"[^\w.\-]+", "_", Path(name).name) or "upload.md"
    path = cache_dir() / "uploads" / hashlib.sha256(data).hexdigest()[:16] / safe_name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return path


def source_stamp(paths: tuple[str, ...]) -> tuple:
    """Sizes and modification times: an edited source becomes a new cache key, so the app re-opens it."""
    try:
        return tuple((os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths)
    except OSError:
        return ()  # QAIndex.open reports the missing file


def load_or_stop(source: Source) -> QAIndex:
    """The open index, or a readable error on the page (never a traceback) and the end of this run."""
    try:
        return open_source(source)
    except IndexerError as exc:
        st.error(open_error(source, exc), icon=":material/error:")
        st.stop()


def open_source(source: Source) -> QAIndex:
    return current_index(source.paths, source.index_dir, source_stamp(source.paths))


def open_error(source: Source, exc: IndexerError) -> str:
    """One line: "**Cannot open notes.md:** no question-and-answer entries found"."""
    message = str(exc)
    for path in source.paths:  # uploads live in a temp folder; say the name the user knows
        message = message.replace(path, source.name)
    detail = message.removeprefix(f"{source.name}: ").strip()
    if not detail:
        return f"**Cannot open {literal(source.name)}.**"
    return f"**Cannot open {literal(source.name)}:** {literal(detail)}"


def entry_title(number: int | str, question: str) -> str:
    """A card's bold title: "**12.&nbsp; What is X?**" (a rank in results, the entry's id elsewhere)."""
    return f"**{literal(str(number))}.&nbsp; {literal(question)}**"


def show(markdown: str, element: Callable[..., DeltaGenerator] = st.markdown, **kwargs) -> DeltaGenerator:
    """Markdown that holds entry links (`rendering.entry_link`, HTML so they open in the same tab). HTML
    is allowed because everything else in such a line is the app's own text or went through `literal`."""
    return element(markdown, unsafe_allow_html=True, **kwargs)


def status_badges(record: Record) -> str:
    return {
        "missing": f":orange-badge[:material/help: {STATUS_LABELS['missing'].capitalize()}]",
        "link_only": f":violet-badge[:material/link: {STATUS_LABELS['link_only'].capitalize()}]",
    }.get(record.status, "")


# ---- page regions -------------------------------------------------------------------------------


def open_document() -> tuple[QAIndex, Source]:
    """The upload's index while there is a readable upload, else the picked document's.

    An upload that cannot be opened gets a one-line error under the uploader and the page carries
    on with the picked document; it is remembered for the session, so it is not read again on
    every rerun and the picker stays usable.
    """
    picked, upload = sidebar_source()
    if upload is None:
        return load_or_stop(picked), picked
    failed: dict[str, str] = st.session_state.setdefault("failed_uploads", {})
    if upload.file_id not in failed:
        source = source_for(save_upload(upload.name, upload.getvalue()), upload.name)
        try:
            return open_source(source), source
        except IndexerError as exc:
            failed[upload.file_id] = open_error(source, exc)
            st.rerun()  # the picker was drawn disabled for this upload; draw it again, usable
    st.sidebar.error(failed[upload.file_id], icon=":material/error:")
    return load_or_stop(picked), picked


def sidebar_source() -> tuple[Source, UploadedFile | None]:
    """The document picked from the data folder, and the uploaded file if any (which wins while it is there)."""
    with st.sidebar:
        st.header("Document", divider="gray")
        files = data_files()
        pending = st.session_state.get("upload")  # known before the uploader is drawn below
        uploaded = pending is not None and pending.file_id not in st.session_state.get("failed_uploads", {})
        chosen = st.selectbox(
            "Document",
            files,
            key="source",
            label_visibility="collapsed",
            disabled=uploaded,
            format_func=lambda p: p.name if p == DEFAULT_SOURCE else str(p.relative_to(data_dir())),
            help="Remove the uploaded file to pick a document here." if uploaded else None,
        )
        upload = st.file_uploader(
            "Or upload your own",
            type=list(SOURCE_TYPES),
            key="upload",
            help="Markdown with bold or heading questions, Q:/A: pairs, or a CSV/JSON/JSONL "
            "file with question and answer columns.",
        )
    return source_for(chosen, chosen.name), upload


def sidebar_summary(qa: QAIndex, source: Source) -> None:
    facts = overview(qa, index_key(qa))
    counts = (
        f"{plural(facts.entries, 'entry', 'entries')}, {plural(facts.missing, 'missing answer')}, "
        f"{facts.link_only} {STATUS_LABELS['link_only']}"
    )
    with st.sidebar:
        if source.bundled:
            st.caption(f"Bundled corpus: {counts}.")
        else:
            st.success(f"Indexed **{literal(source.name)}**: {counts}.", icon=":material/check_circle:")


def sidebar_log_status(qa: QAIndex) -> None:
    """One line: whether searches are logged (INDEXER_QUERY_LOG=off turns it off), and where."""
    try:
        log = qa.query_log
    except QueryLogError as exc:
        line = f":material/warning: Searches are not logged: {literal(str(exc))}"
    else:
        line = (
            ":material/history: Searches are not logged (INDEXER_QUERY_LOG=off)."
            if log is None
            else f":material/history: Searches are logged to {literal(log.location)}"
        )
    st.sidebar.caption(line)


def parse_report(summary: BuildSummary) -> None:
    """What a build just read, so a user can check the parse: how, where every line went, its warnings,
    and everything not taken.

    Shown only after a build (an upload, a new document, an edited one); open when there are warnings.
    """
    skipped = [(line, why) for report in summary.reports for line, why in report.skipped]
    count = len(summary.warnings)
    label = f"Parse report: {plural(count, 'warning')}" if count else "Parse report"
    with st.sidebar.expander(label, icon=":material/fact_check:", expanded=bool(count)):
        for report in summary.reports:
            style = STYLE_NAMES.get(report.style, report.style)
            st.markdown(
                f"**{literal(Path(report.source).name)}**: {plural(len(report.records), 'entry', 'entries')}, "
                f"read as {literal(style)}."
            )
            if report.places:
                st.caption(literal(sentence(describe_places(report.places))) + ".")
        for warning in summary.warnings:
            st.warning(literal(sentence(warning)), icon=":material/warning:")
        if skipped:
            lines = [f"- line {line}: {literal(why)}" for line, why in skipped]
            st.markdown(
                "Not taken as entries (prose in no entry, lines that looked like entries):\n" + "\n".join(lines)
            )
        elif not summary.warnings:
            st.markdown("No warnings, and no question-like line was left out.")
        st.caption(
            f"Indexed in {summary.seconds:.1f} s: {summary.embedded} texts embedded, "
            f"{summary.reused} reused from the previous build."
        )


def section_filter(qa: QAIndex, key: str, persist: bool = False) -> str | None:
    """A "Section" select box when the document has sections; the chosen name, or None for all of them."""
    options = [ALL_SECTIONS, *overview(qa, index_key(qa)).sections]
    if len(options) == 1:
        return None
    if st.session_state.get(key) not in options:  # nothing chosen yet, or a section of another document
        st.session_state[key] = ALL_SECTIONS
    chosen = st.selectbox(
        "Section",
        options,
        key=key,
        format_func=lambda name: name or "All sections",
        persist_state="session" if persist else None,
    )
    return chosen or None


def search_options(qa: QAIndex) -> SearchOptions:
    with st.sidebar:
        st.header("Search options", divider="gray")
        section = section_filter(qa, "section", persist=True)
        k = st.slider("Number of results", 1, 20, DEFAULT_K, key="k", persist_state="session")
        min_score = st.slider(
            "Minimum score",
            0.0,
            1.0,
            DEFAULT_MIN_SCORE,
            0.05,
            key="min_score",
            persist_state="session",
            help="Cosine similarity of an entry's best-matching field (question or answer); "
            "results scoring below it are left out.",
        )
        include_missing = st.toggle(
            "Show entries without an answer", True, key="include_missing", persist_state="session"
        )
    return SearchOptions(k, min_score, include_missing, section)


def page_header(qa: QAIndex, source: Source) -> str:
    """Title and the view switch; returns the chosen view (a key of VIEWS)."""
    st.title("Q&A search")
    entries = overview(qa, index_key(qa)).entries
    answers = "its answer" if entries == 1 else "their answers"
    st.caption(
        f"Semantic search over **{literal(source.name)}**: {plural(entries, 'question')} and "
        f"{answers}. Ask in your own words."
    )
    return (
        st.segmented_control(
            "View",
            list(VIEWS),
            format_func=VIEWS.get,
            key="view",
            required=True,
            label_visibility="collapsed",
            on_change=close_entry,
        )
        or "search"
    )


# ---- the page's state in its URL ----------------------------------------------------------------


def follow_url() -> None:
    """Set the page from its URL on the session's first run (a shared link or an entry link loads the
    page afresh) and on Back or Forward (Streamlit reruns the script with the earlier query string).
    Any other rerun comes from a widget: the widgets lead and `write_url` follows them. Such a rerun's
    query string is not trusted: when the reader acts right after a run that changed the URL, the
    browser can still send the URL from before that change, and following it would undo the action."""
    url = {key: st.query_params[key] for key in URL_KEYS if key in st.query_params}
    if "url" in st.session_state and not history_navigation():
        return
    st.session_state["view"] = url["view"] if url.get("view") in VIEWS else "search"
    st.session_state["query"] = url.get("q", "")
    st.session_state["entry"] = url.get("id")
    st.session_state["url"] = url


def history_navigation() -> bool:
    """True when this run is the browser's Back or Forward (the rerun request says so)."""
    context = get_script_run_ctx()
    return bool(context and context.is_history_navigation)


def write_url() -> None:
    """The URL is the page state: query, view and open entry. Streamlit adds a history entry whenever
    the script changes the query string, so Back returns to the previous search, view or entry."""
    state = {
        "q": st.session_state.get("query", "").strip() and st.session_state["query"],
        "view": st.session_state.get("view") if st.session_state.get("view") != "search" else None,
        "id": st.session_state.get("entry"),
    }
    wanted = {key: value for key, value in state.items() if value}
    for key in URL_KEYS:
        if key not in wanted:
            st.query_params.pop(key, None)
        elif st.query_params.get(key) != wanted[key]:
            st.query_params[key] = wanted[key]
    st.session_state["url"] = wanted


def close_entry() -> None:
    st.session_state["entry"] = None


def examples_for(qa: QAIndex, source: Source) -> list[str]:
    """Queries to try: hand-written paraphrases for the bundled corpus; for any other document, its first
    few short answered questions (they are sure to find something), or none."""
    if source.bundled:
        return list(EXAMPLES)
    short = (r.question for r in qa.records if not r.missing and len(r.question) <= EXAMPLE_MAX_CHARS)
    return list(itertools.islice(short, 3))  # lazily: a large document's records are made on demand


def search_view(qa: QAIndex, options: SearchOptions, examples: list[str]) -> None:
    # persist_state: the query outlives the box while another view is shown, so the URL keeps it
    query = st.text_input(
        "Ask a question",
        key="query",
        icon=":material/search:",
        persist_state="session",
        placeholder="Type a question in your own words and press Enter",
    )
    if not query.strip():
        if examples:
            st.pills("Or try an example", examples, key="example", on_change=use_example)
        return
    asked_from = asked_from_entry(query)
    if asked_from is not None:
        show(
            f"Entries that may answer {entry_link(asked_from)}, which has no answer yet "
            f"({entry_link(asked_from)} itself is left out).",
            st.caption,
        )
    try:
        result, hidden = search_results(qa, index_key(qa), query, options, asked_from)
    except QueryError as exc:
        st.info(literal(sentence(str(exc))), icon=":material/info:")
        return
    for note in result.notes:
        st.info(literal(sentence(note)), icon=":material/info:")
    note = hidden_note(hidden, options)
    if note:
        st.caption(note)
    confidence_note(result)
    row = logged_search(qa, result, (index_key(qa), query, options, asked_from))
    for rank, hit in enumerate(result.hits or result.nearest, start=1):
        result_card(qa, rank, hit, greyed=result.no_match, row=row)
    if row is not None:
        feedback_button(qa, row, None, "None of these", key=f"none-{row}", icon=":material/thumb_down:")
    failed = st.session_state.pop("feedback_error", None)
    if failed:
        log_warning(failed)


def confidence_note(result: SearchResult) -> None:
    """How sure the list is, in words: good match, possibly related, or no good match. When the
    minimum score emptied the list it says that instead: the options hid the results, not the model."""
    if result.below_minimum:
        st.warning(
            "**Nothing reaches the minimum score.** The nearest entries are shown below, greyed; "
            "lower *Minimum score* to see them as results.",
            icon=":material/search_off:",
        )
        return
    element, icon, words, meaning = CONFIDENCE_NOTES[result.confidence]
    element(f"**{words}.** {meaning}", icon=icon)


def logged_search(qa: QAIndex, result: SearchResult, shown: tuple) -> int | None:
    """The query-log row of the search on the page (None: logging is off or failed). Logged the first
    time this session shows `shown` (index, query, options), so reruns caused by other widgets (a
    panel, a feedback click, Back to it) do not log it again."""
    logged: dict[tuple, int | None] = st.session_state.setdefault("logged_searches", {})
    if shown not in logged:
        logged[shown] = qa.log_search(result, notify=log_warning)
    return logged[shown]


def log_warning(line: str) -> None:
    """A query-log failure as one warning line ("Query log: … is locked by another process …")."""
    st.warning(literal(sentence(line)), icon=":material/warning:")


def feedback_button(qa: QAIndex, row: int, answered: RecordId | None, label: str, key: str, icon: str) -> None:
    """A one-click mark on a logged search: `answered` (an entry's id) answered it, or None: none of
    these did. Marked, the button says so and a second click undoes it."""
    marked = st.session_state.get("feedback", {}).get(row) == feedback_mark(answered)
    st.button(
        f"{label} · Undo" if marked else label,
        key=key,
        type="primary" if marked else "tertiary",
        icon=":material/check_circle:" if marked else icon,
        on_click=toggle_feedback,
        args=(qa, row, answered),
        help="Marked in the query log; click again to take it back."
        if marked
        else "Recorded in the query log (without anything about you), for whoever maintains the document.",
    )


def feedback_mark(answered: RecordId | None) -> tuple[str, RecordId | None]:
    return ("answered", answered) if answered is not None else ("none", None)


def toggle_feedback(qa: QAIndex, row: int, answered: RecordId | None) -> None:
    """Button callback: set the mark, or clear it when it is the one already set (a new mark replaces
    another). A log failure becomes one warning under the list."""
    marks: dict[int, tuple] = st.session_state.setdefault("feedback", {})
    mark = feedback_mark(answered)
    try:
        log = open_log(qa)
        if marks.get(row) == mark:
            log.clear_feedback(row)
            marks.pop(row)
        else:
            log.feedback(row, answered=answered, none_of_these=answered is None)
            marks[row] = mark
    except QueryLogError as exc:
        st.session_state["feedback_error"] = f"query log: {exc}"


def open_log(qa: QAIndex) -> QueryLog:
    """The log a search was recorded in (it was, or there would be no row to mark)."""
    log = qa.query_log
    if log is None:
        raise QueryLogError("logging was turned off (INDEXER_QUERY_LOG=off); the feedback was not recorded")
    return log


def hidden_note(hidden: Hidden, options: SearchOptions) -> str | None:
    """One line saying what the search options hide, or None when they hide nothing."""
    parts = []
    if hidden.below_minimum:
        parts.append(
            f"{plural(hidden.below_minimum, 'result')} scoring below the minimum score {options.min_score:.2f}"
        )
    if hidden.without_answer:
        parts.append(f"{plural(hidden.without_answer, 'entry', 'entries')} without an answer")
    if hidden.section:
        parts.append(f"every entry outside the section {literal(hidden.section)}")
    if not parts:
        return None
    return f":material/filter_alt: **Hidden by the search options:** {'; '.join(parts)}. Change them in the sidebar."


def result_card(qa: QAIndex, rank: int, hit: Hit, greyed: bool = False, row: int | None = None) -> None:
    """One result: title, details, score and answer in one element, "This answered my question" when the
    search was logged (`row`) and the entry has an answer, then its related questions.

    Few elements on purpose: each is a message and an event-loop wake-up in every page run, and with
    many users at once they were most of the server's time (a column is three more, a bar one more)."""
    record = hit.record
    title = entry_title(rank, record.question)
    details = details_line(qa, record, f"matched on {hit.matched_on}")
    with st.container(border=True):
        if greyed:  # no bar: a bar reads as "relevant", and these are not
            show(f":gray[{title}]\n\n{details} &nbsp; :gray[score {hit.score:.2f}]")
            with st.expander("Answer"):
                answer(record)
        else:
            # the answer is one raw HTML line, so it can follow the Markdown as a paragraph of its own
            body = ":small[:gray[No answer yet.]]" if record.missing else answer_html(record.answer)
            show(f"{title}\n\n{details} &nbsp; :small[score] **{hit.score:.2f}** {score_bar(hit.score)}\n\n{body}")
        if row is not None and not record.missing:  # an entry without an answer cannot have answered it
            feedback_button(
                qa,
                row,
                record.id,
                "This answered my question",
                key=f"answered-{row}-{record.id}",
                icon=":material/thumb_up:",
            )
        related_panel(qa, record)


def score_bar(score: float) -> str:
    """A score as ten blocks of text, "▰▰▰▰▰▱▱▱▱▱" for 0.5 (cosine can be negative: the bar shows [0, 1])."""
    filled = round(10 * min(max(score, 0.0), 1.0))
    return f":blue[{'▰' * filled}]:gray[{'▱' * (10 - filled)}]"


def entry_card(qa: QAIndex, record: Record) -> None:
    """One entry on its own (opened from the topic map): title, details, answer, related entries."""
    with st.container(border=True):
        st.markdown(entry_title(record.id, record.question))
        show(details_line(qa, record, f"line {record.line}"))
        answer(record)
        related_panel(qa, record)


def entry_page(qa: QAIndex, source: Source, shown_id: str) -> bool:
    """`?id=17`: one entry with its answer, status, section, near-duplicate and related questions.
    False for an id the document lacks: one line says so, and the caller draws the view as usual."""
    record = qa.find(shown_id)
    if record is None:
        st.warning(f"{literal(source.name)} has no entry with the id {literal(shown_id)}.", icon=":material/link_off:")
        close_entry()
        return False
    st.button("Close", key="close_entry", icon=":material/close:", type="tertiary", on_click=close_entry)
    with st.container(border=True):
        st.markdown(entry_title(record.id, record.question))
        show(details_line(qa, record, f"line {record.line}"))
        answer(record)
    twin = duplicate_partners(qa, index_key(qa)).get(record.id)
    if twin is not None:
        st.subheader("Near-duplicate", divider="gray")
        entry_row(qa.record(twin), "Asks the same thing; merge the two, or answer one from the other.")
    st.subheader("Related questions", divider="gray")
    related_rows(qa, record)
    return True


def entry_row(record: Record, note: str = "") -> None:
    """One line for another entry: its id as a link to its page, its question, and a grey note."""
    missing = " :orange[(no answer yet)]" if record.missing else ""
    grey = f" &nbsp; :small[:gray[{note}]]" if note else ""
    show(f"{entry_link(record.id)} &nbsp; {literal(record.question)}{missing}{grey}")


def details_line(qa: QAIndex, record: Record, note: str) -> str:
    """The line under a card's title: id, status, near-duplicate, a grey note and the section."""
    details = [f":gray-badge[{entry_link(record.id)}]", status_badges(record)]
    twin = duplicate_partners(qa, index_key(qa)).get(record.id)
    if twin is not None:
        details.append(f":blue-badge[:material/content_copy: Near-duplicate of {entry_link(twin)}]")
    details.append(f":small[:gray[{literal(note)}]]")
    if record.section:
        details.append(f":small[:gray[:material/folder: {literal(record.section)}]]")
    return " &nbsp; ".join(d for d in details if d)


def answer(record: Record) -> None:
    """The answer as the document's author wrote it: Markdown and HTML rendered, after nh3 kept only
    the allowlisted tags (unsafe_allow_html sees sanitised output only)."""
    if record.missing:
        st.caption("No answer yet.")
    else:
        st.markdown(answer_html(record.answer), unsafe_allow_html=True)


def related_panel(qa: QAIndex, record: Record) -> None:
    """The nearest other entries, in a panel.

    Filled only while open: five always-filled panels doubled the time from Enter to results.
    """
    panel = st.expander("Related questions", icon=":material/hub:", key=f"related-open-{record.id}", on_change="rerun")
    if panel.open:
        with panel:
            related_rows(qa, record)


def related_rows(qa: QAIndex, record: Record) -> None:
    """The five nearest other entries: score, id (a link to its page) and question (a button that searches it)."""
    for hit in qa.related(record.id, k=5):
        score_col, id_col, question_col = st.columns([1, 1, 8], vertical_alignment="center")
        score_col.markdown(f"`{hit.score:.2f}`")
        show(f":small[{entry_link(hit.record.id)}]", id_col.markdown)
        with question_col:
            question_button(hit.record, key=f"related-{record.id}-{hit.record.id}")


def question_button(record: Record, key: str) -> None:
    """An entry's question as a link-like button that searches for it (one line; hover shows a long one whole)."""
    label = record.question + (" (no answer yet)" if record.missing else "")
    st.button(label, key=key, type="tertiary", on_click=ask, args=(record,))


def use_example() -> None:
    """Pills callback: search the chosen example and clear the pill, so it can be chosen again."""
    ask(st.session_state["example"])
    st.session_state["example"] = None


def ask(question_or_entry: str | Record) -> None:
    """Button callback: show the Search view with this question (or this entry's question) in the box."""
    record = question_or_entry if isinstance(question_or_entry, Record) else None
    st.session_state["query"] = record.question if record else question_or_entry
    st.session_state["view"] = "search"
    # An entry without an answer would come back as its own best match (score 1.00): remember it, to
    # leave it out for as long as the box holds its question.
    st.session_state["asked_from"] = (record.question, record.id) if record and record.missing else None


def asked_from_entry(query: str) -> RecordId | None:
    """The unanswered entry whose Search button put `query` in the box, if the box still holds its question."""
    asked = st.session_state.get("asked_from")
    return asked[1] if asked and asked[0] == query else None


def missing_view(qa: QAIndex) -> None:
    missing, total = qa.missing(), len(qa.records)
    hints = missing_hints(qa, index_key(qa))
    header, downloads = st.columns([3, 2], vertical_alignment="bottom")
    header.subheader(entries_phrase(len(missing), total, "no answer"))
    if missing:
        download_buttons(
            downloads, missing_csv(missing, hints), missing_markdown(missing, hints, total), "missing_answers"
        )
    for record in missing:
        with st.container(border=True):
            question_col, action_col = st.columns([5, 1], vertical_alignment="top")
            question_col.markdown(entry_title(record.id, record.question))
            where = [entry_link(record.id), f"line {record.line}"] + (
                [literal(record.section)] if record.section else []
            )
            show(" · ".join(where), question_col.caption)
            action_col.button(
                "Search",
                key=f"ask-{record.id}",
                icon=":material/search:",
                on_click=ask,
                args=(record,),
                width="stretch",
            )
            if hints[record.id]:
                show(nearest_list("Closest answered entries:", [(h.record, h.score) for h in hints[record.id]]))
    link_only = qa.link_only()
    if link_only:
        st.subheader(entries_phrase(len(link_only), total, "only links for an answer"))
        for record in link_only:
            with st.container(border=True):
                st.markdown(f"{entry_title(record.id, record.question)} &nbsp; {status_badges(record)}")
                answer(record)


def download_buttons(place: DeltaGenerator, csv_data: str | bytes, markdown: str, stem: str) -> None:
    """A view's two exports side by side: `stem`.csv and `stem`.md (no rerun on click)."""
    csv_col, md_col = place.columns(2)
    csv_col.download_button(
        "CSV", csv_data, f"{stem}.csv", "text/csv", icon=":material/download:", on_click="ignore", width="stretch"
    )
    md_col.download_button(
        "Markdown",
        markdown,
        f"{stem}.md",
        "text/markdown",
        icon=":material/download:",
        on_click="ignore",
        width="stretch",
    )


def nearest_list(title: str, scored: list[tuple[Record, float]]) -> str:
    """Markdown: a title, then one line per entry: its score, its question and its id linked to its page."""
    return (
        title
        + "\n"
        + "\n".join(
            f"- `{score:.2f}` {literal(record.question)} :gray[{entry_link(record.id)}]" for record, score in scored
        )
    )


# ---- what readers asked that the document does not answer -----------------------------------------


def gaps_view(qa: QAIndex) -> None:
    """The query log's unanswered searches (no good match, or "None of these"), grouped by meaning,
    largest group first, with entry skeletons to add to the document."""
    try:
        logged, gaps = logged_gaps(qa)
    except QueryLogError as exc:  # no log yet (logging off), or one that cannot be read
        st.info(literal(sentence(str(exc))), icon=":material/info:")
        return
    if not gaps:
        st.info(
            "No searches logged yet."
            if not logged
            else f"Every one of the {plural(logged, 'logged search', 'logged searches')} found a good match "
            "or was marked as answered.",
            icon=":material/info:",
        )
        return
    header, downloads = st.columns([3, 2], vertical_alignment="bottom")
    header.subheader(f"{plural(len(gaps), 'question')} asked, not answered")
    download_buttons(
        downloads, gaps_csv(gaps), gaps_markdown(gaps, entry_style(qa.records, qa.manifest)), "asked_not_answered"
    )
    st.caption(
        f"From {plural(logged, 'logged search', 'logged searches')}: those that found no good match or "
        "got *None of these*, grouped by meaning, most asked first. The Markdown download holds a new "
        "entry for each, in the document's style, to write the answer into."
    )
    for gap in gaps:
        gap_card(qa, gap)


def gap_card(qa: QAIndex, gap: Gap) -> None:
    """One unanswered question: how often and when it was asked, in which words, and the nearest entries."""
    when = f"{gap.first_asked:%Y-%m-%d %H:%M}" + (
        f" to {gap.last_asked:%Y-%m-%d %H:%M}" if gap.last_asked != gap.first_asked else ""
    )
    with st.container(border=True):
        lines = [f"**{literal(gap.label)}** &nbsp; :gray[asked {plural(gap.count, 'time')}, {when} UTC]"]
        others = [query for query in gap.queries if query != gap.label]
        if others:
            lines.append(":small[Also asked as: " + "; ".join(f"“{literal(query)}”" for query in others) + "]")
        if gap.nearest:
            lines.append(nearest_list("Nearest entries:", [(qa.record(i), score) for i, score in gap.nearest]))
        show("\n\n".join(lines))


# ---- topics and near-duplicates -----------------------------------------------------------------


def topics_view(qa: QAIndex) -> None:
    found, points = topic_overview(qa, index_key(qa))
    st.subheader(f"{plural(len(found), 'topic')} in {plural(len(qa.records), 'entry', 'entries')}")
    st.caption(
        "Each point is an entry: nearby points are about similar things, colour is the topic and a "
        "cross marks a missing answer. Hover a point to read its question; click it to open the entry."
    )
    state = st.altair_chart(
        clickable_map(points, found),
        key="topic_map",
        on_select="rerun",
        selection_mode=MAP_SELECTION,
        width="stretch",
        alt=f"Topic map of {plural(len(points), 'entry', 'entries')} in {plural(len(found), 'topic')}",
    )
    for record in picked_records(qa, state):
        entry_card(qa, record)
    for topic in found:
        topic_panel(qa, topic)


def clickable_map(points: list[MapPoint], found: list[Topic]) -> alt.Chart:
    """The core's topic map plus a click selection by id: the picked point grows, the others fade."""
    picked = alt.selection_point(name=MAP_SELECTION, fields=["id"], on="click")
    return (
        topic_map_chart(points, found)
        .add_params(picked)
        .encode(
            opacity=alt.when(picked).then(alt.value(0.85)).otherwise(alt.value(0.35)),
            size=alt.when(picked, empty=False).then(alt.value(240)).otherwise(alt.value(80)),
        )
    )


def picked_records(qa: QAIndex, state: VegaLiteState) -> list[Record]:
    """The entries selected on the map (the chart holds ids as text, so "file.md#12" ids work too)."""
    by_key = {str(record.id): record for record in qa.records}
    picked = state.get("selection", {}).get(MAP_SELECTION) or []
    return [by_key[point["id"]] for point in picked if point.get("id") in by_key]


def topic_panel(qa: QAIndex, topic: Topic) -> None:
    """A topic's label and size; opened, its entries, each a button that searches for it."""
    size = plural(len(topic.record_ids), "entry", "entries")
    with st.expander(f"**{topic.number}. {literal(topic.label)}** &nbsp; :gray[{size}]"), st.container(gap=None):
        for record_id in topic.record_ids:
            record = qa.record(record_id)
            id_col, question_col = st.columns([1, 12], vertical_alignment="center")
            show(f":small[{entry_link(record.id)}]", id_col.markdown)
            with question_col:
                question_button(record, key=f"topic-{record.id}")


def duplicates_view(qa: QAIndex) -> None:
    header, threshold = st.columns([3, 2], vertical_alignment="bottom")
    min_score = threshold.slider(
        "Minimum similarity",
        LOWEST_DUPLICATE_SCORE,
        1.0,
        DUPLICATE_MIN_SCORE,
        0.05,
        key="duplicate_min_score",
        persist_state="session",
        help="Cosine similarity of the two questions.",
    )
    pairs = duplicate_pairs(qa, index_key(qa), round(min_score, 2))
    # a lower bar only adds pairs (the same mutual nearest neighbours, fewer cut off), so the difference is hidden
    hidden = len(duplicate_pairs(qa, index_key(qa), LOWEST_DUPLICATE_SCORE)) - len(pairs)
    header.subheader(plural(len(pairs), "near-duplicate pair"))
    st.caption(
        "Pairs whose questions are each other's closest match and share an uncommon word. Merge them, "
        "or answer the missing one from its twin. Click a question to search for it."
        + (
            f" :material/filter_alt: **The minimum similarity hides {plural(hidden, 'more pair')}**; "
            "lower it to see them."
            if hidden
            else ""
        )
    )
    for pair in pairs:
        duplicate_card(qa, pair)


def duplicate_card(qa: QAIndex, pair: Duplicate) -> None:
    first, second = qa.record(pair.first), qa.record(pair.second)
    with st.container(border=True):
        for row, record in enumerate((first, second)):
            id_col, question_col, score_col = st.columns([1, 9, 2], vertical_alignment="center")
            show(f":gray-badge[{entry_link(record.id)}]", id_col.markdown)
            with question_col:
                question_button(record, key=f"pair-{pair.first}-{pair.second}-{record.id}")
            if row == 0:  # the score beside the first question, its bar beside the second
                score_col.markdown(f":small[similarity] **{pair.score:.2f}**", text_alignment="right")
            else:
                score_col.progress(min(max(pair.score, 0.0), 1.0))
        if first.missing != second.missing:
            unanswered, answered = (first, second) if first.missing else (second, first)
            show(
                f"{entry_link(unanswered.id)} has no answer yet; the answer of {entry_link(answered.id)} may cover it.",
                st.caption,
            )


# ---- browse -------------------------------------------------------------------------------------


def browse_view(qa: QAIndex) -> None:
    sectioned = bool(overview(qa, index_key(qa)).sections)
    columns = st.columns([3, 2, 3] if sectioned else [3, 2], vertical_alignment="bottom")
    words = columns[0].text_input(
        "Filter", key="browse_filter", icon=":material/filter_list:", placeholder="words in any column"
    )
    statuses = columns[-1].pills(
        "Status",
        list(STATUS_LABELS),
        selection_mode="multi",
        default=list(STATUS_LABELS),
        format_func=STATUS_LABELS.get,
        key="browse_status",
    )
    section = None
    if sectioned:
        with columns[1]:
            section = section_filter(qa, "browse_section")
    frame = entries_frame(qa, index_key(qa))
    shown = frame[frame["status"].isin([STATUS_LABELS[s] for s in statuses])]
    if section:
        shown = shown[shown["section"] == section]
    if words.strip():
        shown = shown[shown["_text"].str.contains(words.strip().lower(), regex=False)]
    hidden = f" The filters hide {len(frame) - len(shown)}." if len(shown) < len(frame) else ""
    st.caption(
        f"Showing {len(shown)} of {plural(len(frame), 'entry', 'entries')}.{hidden} Select a row to read "
        "its whole answer below; click an id to open the entry's page."
    )
    table = st.dataframe(
        shown,
        hide_index=True,
        key="browse_table",
        on_select="rerun",
        selection_mode="single-row",
        column_order=[c for c in BROWSE_COLUMNS if c != "section" or sectioned],
        column_config={
            "id": st.column_config.LinkColumn("id", display_text=r"\?id=(.*)", width="small"),
            "question": st.column_config.TextColumn("question", width="medium"),
            "answer": st.column_config.TextColumn("answer", width="large"),
        },
    )
    for row in table.selection.rows:
        entry_card(qa, qa.record(shown.iloc[row]["_record"]))


def main() -> None:
    st.set_page_config(page_title="Q&A search", page_icon="🔎", layout="centered")
    follow_url()
    qa, source = open_document()
    sidebar_summary(qa, source)
    sidebar_log_status(qa)
    if qa.build_summary is not None:
        parse_report(qa.build_summary)
    view = page_header(qa, source)
    entry = st.session_state.get("entry")
    if entry is None or not entry_page(qa, source, entry):
        if view == "search":
            search_view(qa, search_options(qa), examples_for(qa, source))
        else:
            {
                "missing": missing_view,
                "gaps": gaps_view,
                "topics": topics_view,
                "duplicates": duplicates_view,
                "browse": browse_view,
            }[view](qa)
    write_url()


if __name__ == "__main__":  # Streamlit runs the script as __main__; tests may import the helpers
    main()
