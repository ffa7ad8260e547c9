"""The app's cached resources and the computations behind its pages, in a module of their own so that
Streamlit's cache decorators run once per process: app.py is executed again on every page run, and
each `@st.cache_resource` there re-derived its key from the function's source (inspect.getsource
scans every loaded module), about a tenth of the server's time with 20 users searching.

    model (one per process) -> index (one per source version) -> per index generation: topics, map,
    near-duplicates, counts, hints, Browse's table -> per query and options: search results

Not cached: the query log's gaps (`logged_gaps`), which change with every search logged.

Everything here is keyed by what it depends on and computed once; app.py draws the page.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from indexer import DEFAULT_SOURCE, Hit, QAIndex, Record
from indexer.analysis import topics as topic_analysis  # looked up on use, so tests can count its calls
from indexer.analysis.topics import DUPLICATE_MIN_SCORE, Duplicate, MapPoint, Topic
from indexer.display.rendering import entry_href
from indexer.display.wording import STATUS_LABELS
from indexer.documents.records import RecordId
from indexer.documents.text import plain_text
from indexer.engine import query_encoder
from indexer.retrieval.embed import Encoder
from indexer.retrieval.search import SearchResult
from indexer.usage.gaps import Gap, find_gaps
from indexer.usage.querylog import existing_query_log

ANSWER_PREVIEW_CHARS = 120  # a Browse cell: enough to recognise an answer; the row opens all of it


@dataclass(frozen=True)
class Source:
    """What the page is about: the source file(s), where their index lives, and a name for people."""

    paths: tuple[str, ...]
    index_dir: str
    name: str
    bundled: bool


@dataclass(frozen=True)
class SearchOptions:
    k: int
    min_score: float
    include_missing: bool
    section: str | None = None


@dataclass(frozen=True)
class Overview:
    """What every page run shows of one index generation: counted once, not on each rerun."""

    entries: int
    missing: int
    link_only: int
    sections: tuple[str, ...]


@dataclass(frozen=True)
class Hidden:
    """What the search options kept off the page, for the note that says so."""

    below_minimum: int = 0
    without_answer: int = 0
    section: str | None = None


# ---- cached resources ---------------------------------------------------------------------------


@st.cache_resource(show_spinner=False, ttl=10, max_entries=8)
def listed_files(folder: str, suffixes: tuple[str, ...]) -> tuple[Path, ...]:
    """The bundled corpus, then every file under `folder` with one of `suffixes`. Walked at most every
    10 s (a new file shows up within that), not on every page run: the walk was 4 % of server time."""
    root = Path(folder)
    found = (
        sorted(
            p
            for p in root.rglob("*")
            if p.is_file() and p.suffix.lower().lstrip(".") in suffixes and not p.name.startswith(".")
        )
        if root.is_dir()
        else []
    )
    bundled = DEFAULT_SOURCE.resolve()
    return (DEFAULT_SOURCE, *(p for p in found if p.resolve() != bundled))


@st.cache_resource(show_spinner=False, ttl=10, max_entries=64)
def resolved(path: str) -> Path:
    """`Path(path).resolve()`, redone at most every 10 s: a realpath walk on every page run was 3 % of
    the server's time with 20 users."""
    return Path(path).resolve()


@st.cache_resource(show_spinner="Loading the language model…")
def shared_query_encoder(model: str) -> Encoder:
    """One query encoder per process, shared by every open index, warmed up so the first search is fast."""
    encoder = query_encoder(model)
    encoder.encode(["warm up"])
    return encoder


def current_index(paths: tuple[str, ...], index_dir: str, stamp: tuple) -> QAIndex:
    """The cached index of `paths`, checked on every page run (stat calls only) to still be the store's
    current generation, its files untouched; if not, it is opened again, which verifies it and
    rebuilds a corrupt one.

    Checked here rather than by the cache's `validate`, which Streamlit runs under the cache's lock:
    with 20 sessions every page run queued there behind the others' stat calls."""
    qa = open_index(paths, index_dir, stamp)
    if qa.is_current():
        return qa
    open_index.clear(paths, index_dir, stamp)
    return open_index(paths, index_dir, stamp)


@st.cache_resource(show_spinner=False, max_entries=4)
def open_index(paths: tuple[str, ...], index_dir: str, stamp: tuple) -> QAIndex:
    """Open (building first when missing, stale or corrupt) the index of `paths`; one per process and
    source version, replaced when its files change on disk.

    The progress bar is drawn inside this function on purpose: Streamlit replays what a cached
    function drew on every cache hit, and everything drawn here ends as one empty slot.
    """
    slot = st.empty()
    try:
        qa = QAIndex.open(
            [Path(p) for p in paths],
            index_dir,  # a folder or a database URL: not Path()
            notify=lambda message: slot.progress(0.0, text=build_message(message)),
            progress=progress_bar(slot),
            encoder_factory=shared_query_encoder,
        )
    finally:
        slot.empty()
    qa.search("warm up", k=1)  # loads the encoder and any lazy search state now, not on the first query
    duplicate_partners(qa, index_key(qa))  # the cards' near-duplicate badges (an n x n product) likewise
    return qa


def index_key(qa: QAIndex) -> str:
    """The loaded generation's folder: every build gets a new one, so it keys what is computed from vectors."""
    return str(qa.stored.path)


@st.cache_resource(show_spinner="Grouping the entries into topics…", max_entries=4)
def topic_overview(_qa: QAIndex, generation: str) -> tuple[list[Topic], list[MapPoint]]:
    """Topics and map points of one index generation (`generation` is the cache key; `_qa` is not hashed)."""
    found = _qa.topics()
    return found, topic_analysis.topic_map(_qa.stored, found)


@st.cache_resource(show_spinner=False, max_entries=16)
def duplicate_pairs(_qa: QAIndex, generation: str, min_score: float) -> list[Duplicate]:
    return _qa.duplicates(min_score)


@st.cache_resource(show_spinner=False, max_entries=4)
def overview(_qa: QAIndex, generation: str) -> Overview:
    return Overview(len(_qa.records), len(_qa.missing()), len(_qa.link_only()), tuple(_qa.sections()))


@st.cache_resource(show_spinner=False, max_entries=512)
def search_results(
    _qa: QAIndex, generation: str, query: str, options: SearchOptions, exclude: RecordId | None
) -> tuple[SearchResult, Hidden]:
    """`run_search`, once per query and options: a rerun that changes neither (opening a panel, Back,
    a popular query asked again) costs no model call. A QueryError is raised, not cached."""
    return run_search(_qa, query, options, exclude)


@st.cache_resource(show_spinner=False, max_entries=4)
def missing_hints(_qa: QAIndex, generation: str) -> dict[RecordId, list[Hit]]:
    """The three closest answered entries of each entry without an answer (the view and its exports)."""
    return {record.id: _qa.hints(record.id, k=3) for record in _qa.missing()}


@st.cache_resource(show_spinner="Looking for questions asked twice…", max_entries=4)
def duplicate_partners(_qa: QAIndex, generation: str) -> dict[RecordId, RecordId]:
    """Each entry's near-duplicate at the default threshold (pairs are mutual nearest neighbours: one each)."""
    partners: dict[RecordId, RecordId] = {}
    for pair in duplicate_pairs(_qa, generation, DUPLICATE_MIN_SCORE):
        partners[pair.first], partners[pair.second] = pair.second, pair.first
    return partners


def build_message(notice: str) -> str:
    """The build notice for people: "building the index at /tmp/…: index at /tmp/… is corrupt: x; rebuild it"
    becomes "Building the search index (the saved index is corrupt: x)…" (the app is already rebuilding)."""
    reason = notice.split(": ", 1)[-1].removesuffix("; rebuild it")
    reason = re.sub(r"^index at .+? (is|has|was) ", r"the saved index \1 ", reason)
    return f"Building the search index ({reason}). This happens once per document version…"


def progress_bar(slot: DeltaGenerator) -> Callable[[int], Callable[[int], None]]:
    """The `progress` factory QAIndex.open expects, drawing into `slot` at most once per 5%."""

    def start(total: int) -> Callable[[int], None]:
        done, shown = 0, -1

        def advance(n: int) -> None:
            nonlocal done, shown
            done += n
            step = int(20 * done / max(total, 1))
            if step != shown:
                shown = step
                slot.progress(
                    min(done / max(total, 1), 1.0), text=f"Embedding questions and answers: {done} of {total}"
                )

        return advance

    return start


def run_search(
    qa: QAIndex, query: str, options: SearchOptions, exclude: RecordId | None = None
) -> tuple[SearchResult, Hidden]:
    """`qa.search` without the entries the page must not offer: those without an answer when the option
    says so, and `exclude` (the entry the query was asked from); asks for more so k still come back.
    Also counts what the options kept off the page."""
    extra = (0 if options.include_missing else overview(qa, index_key(qa)).missing) + (exclude is not None)
    result = qa.search(query, k=options.k + extra, min_score=options.min_score, section=options.section)
    unanswered = [] if options.include_missing else [h for h in result.nearest[: options.k] if h.record.missing]
    if extra:

        def offered(hit: Hit) -> bool:
            return hit.record.id != exclude and (options.include_missing or not hit.record.missing)

        hits = [h for h in result.hits if offered(h)][: options.k]
        nearest = [h for h in result.nearest if offered(h)][: options.k]
        result = replace(
            result,
            hits=hits,
            nearest=nearest,
            no_match=result.no_match or not hits,
            confidence=result.confidence if hits else "no good match",
        )
    # below the minimum: among the k nearest, those a lower minimum would show (all of them is its own warning)
    below = 0 if result.no_match else len(result.nearest) - len(result.hits)
    return result, Hidden(below, len(unanswered), options.section)


@st.cache_resource(show_spinner=False, max_entries=4)
def entries_frame(_qa: QAIndex, generation: str) -> pd.DataFrame:
    """Browse's table of one index generation (built once: a large document's is not cheap)."""
    records = _qa.records
    return pd.DataFrame(
        {
            "id": [entry_href(r.id) for r in records],  # a link to the entry's page, showing the id
            "question": [r.question for r in records],
            "answer": [answer_preview(r) for r in records],
            "status": [STATUS_LABELS[r.status] for r in records],
            "section": [r.section for r in records],
            "_record": [r.id for r in records],
            "_text": [f"{r.question}\n{r.answer}\n{r.section}".lower() for r in records],
        }
    )


def answer_preview(record: Record) -> str:
    """The answer as one line of plain text, cut at ANSWER_PREVIEW_CHARS (a table cell shows no markup)."""
    text = " ".join(plain_text(record.answer).split())
    return text if len(text) <= ANSWER_PREVIEW_CHARS else text[: ANSWER_PREVIEW_CHARS - 1].rstrip() + "…"


def logged_gaps(qa: QAIndex) -> tuple[int, list[Gap]]:
    """How many searches the index's query log holds, and its unanswered ones grouped by meaning,
    largest group first. Read also while logging is off; a missing or unreadable log raises
    QueryLogError. Encodes the gap queries, so only the "Asked, not answered" view calls it."""
    log = qa.query_log or existing_query_log(qa.store)
    entries = log.entries()
    return len(entries), find_gaps(entries, qa)
