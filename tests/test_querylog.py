"""The query log (indexer/usage/querylog.py): one battery run against the SQLite log and the PostgreSQL
table (records, feedback, retention, many writers at once), then what only the folder store has (a
file beside the generations that survives rebuilds; damaged or locked files), the engine hook, and
the CLI (`search --log`, `eval --from-log`).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from core_fixtures import CORPUS
from test_cli import run
from test_pgstore import pg_url  # noqa: F401  (the PostgreSQL server fixture, started once per session)

from indexer.documents.records import Hit, Record
from indexer.engine import QAIndex
from indexer.indexing.build import build
from indexer.retrieval.search import SearchResult
from indexer.stores.disk import FaissStore
from indexer.usage.querylog import (
    BUSY_TIMEOUT_MS,
    LOG_FILE,
    LogEntry,
    PgQueryLog,
    QueryLogError,
    SqliteQueryLog,
    existing_query_log,
    feedback_queries,
    open_query_log,
)

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def searched(query: str, ids: tuple = (1, 2), no_match: bool = False) -> SearchResult:
    """A search result as `search()` makes it: with no match, `hits` is empty and `nearest` is shown greyed."""
    hits = [
        Hit(Record(i, f"question {i}", "an answer", "ok", 1), 0.9 - n / 10, "question", 0.9 - n / 10, None)
        for n, i in enumerate(ids)
    ]
    return SearchResult(query, [] if no_match else hits, hits, no_match)


@pytest.fixture(params=["sqlite", "postgresql"])
def make_log(request, tmp_path):
    """A factory of connections to ONE new log: each call opens it again, as another session would."""
    name = f"test-{uuid.uuid4().hex[:8]}"

    def make(days: int = 90):
        if request.param == "sqlite":
            return SqliteQueryLog(tmp_path / LOG_FILE, days)
        return PgQueryLog(request.getfixturevalue("pg_url"), name, "test database", days)

    return make


def test_a_search_is_recorded_with_its_results_verdict_and_generation(make_log):
    log = make_log()
    first = log.record(searched("what is overfitting", ids=(3, "b.md#7")), "build-1", confidence=0.9)
    second = log.record(searched("refund policy", no_match=True), "build-1")
    (one, two) = log.entries()
    assert (one.id, two.id) == (first, second) and second > first
    assert one.query == "what is overfitting" and one.results == ((3, 0.9), ("b.md#7", 0.8))
    assert not one.no_match and one.confidence == 0.9 and one.generation == "build-1" and one.feedback is None
    assert two.no_match and two.results == ((1, 0.9), (2, 0.8))  # the greyed nearest entries the reader saw
    assert two.is_gap and not one.is_gap
    assert abs((one.asked_at - datetime.now(UTC)).total_seconds()) < 60


def test_writes_from_many_threads_at_once_lose_nothing(make_log):
    shared = make_log()
    per_thread, threads = 40, 8
    ids: list[int] = []
    errors: list[Exception] = []
    start = threading.Barrier(threads)

    def write(number: int) -> None:
        log = shared if number % 2 else make_log()  # half share one connection (the app), half have their own
        start.wait()
        try:
            for i in range(per_thread):
                ids.append(log.record(searched(f"thread {number} query {i}"), "build-1"))
        except Exception as exc:  # noqa: BLE001 — collected and asserted below
            errors.append(exc)

    workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    logged = shared.entries()
    assert len(ids) == len(set(ids)) == len(logged) == threads * per_thread
    assert {entry.query for entry in logged} == {
        f"thread {n} query {i}" for n in range(threads) for i in range(per_thread)
    }


def _write_from_a_process(path: Path, number: int, count: int) -> None:
    log = SqliteQueryLog(path)
    for i in range(count):
        log.record(searched(f"process {number} query {i}"), "build-1")


def test_writes_from_many_processes_at_once_lose_nothing(tmp_path):
    import multiprocessing

    path, processes, per_process = tmp_path / LOG_FILE, 4, 50
    context = multiprocessing.get_context("spawn")  # fresh interpreters, like CLI runs beside the app
    workers = [context.Process(target=_write_from_a_process, args=(path, n, per_process)) for n in range(processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0] * processes
    assert len({entry.query for entry in SqliteQueryLog(path).entries()}) == processes * per_process


def test_feedback_is_stored_replaced_and_undone(make_log):
    log = make_log()
    row = log.record(searched("what is dropout", ids=(5, 9)), "build-1")
    log.feedback(row, answered=9)
    assert _only(make_log()).feedback == "answered" and _only(make_log()).answered_id == 9
    log.feedback(row, none_of_these=True)
    entry = _only(make_log())
    assert (entry.feedback, entry.answered_id, entry.is_gap) == ("none", None, True)
    log.clear_feedback(row)
    assert (_only(make_log()).feedback, _only(make_log()).answered_id) == (None, None)
    log.feedback(row, answered="b.md#7")  # ids of multi-file corpora keep their type
    assert _only(make_log()).answered_id == "b.md#7"


def _only(log) -> LogEntry:
    (entry,) = log.entries()
    return entry


def test_feedback_on_an_unknown_search_or_without_a_verdict_is_a_one_line_error(make_log):
    log = make_log()
    row = log.record(searched("q"), "build-1")
    with pytest.raises(QueryLogError, match=f"no logged search with id {row + 100}"):
        log.feedback(row + 100, answered=1)
    with pytest.raises(QueryLogError, match="either answered"):
        log.feedback(row)
    with pytest.raises(QueryLogError, match="either answered"):
        log.feedback(row, answered=1, none_of_these=True)


def test_entries_older_than_the_retention_period_are_pruned(make_log):
    log = make_log()
    now = datetime.now(UTC)
    for days_ago in (400, 100, 10, 0):
        log.record(searched(f"{days_ago} days ago"), "build-1", asked_at=now - timedelta(days=days_ago))
    assert [e.query for e in make_log(days=90).entries()] == ["10 days ago", "0 days ago"]  # opening prunes
    log = make_log(days=5)
    assert log.prune() == 1 and [e.query for e in log.entries()] == ["0 days ago"]


def test_entries_since_a_date_leave_out_older_ones(make_log):
    log = make_log(days=100_000)  # these fixed dates must outlive the retention period whenever the test runs
    for day in (1, 2, 3):
        log.record(searched(f"day {day}"), "build-1", asked_at=datetime(2026, 12, day, 9, tzinfo=UTC))
    since = datetime(2026, 12, 2, tzinfo=UTC)
    assert [e.query for e in log.entries(since=since)] == ["day 2", "day 3"]


def test_the_retention_period_and_the_switch_come_from_the_environment(tmp_path, monkeypatch):
    store = FaissStore(tmp_path / "index")
    monkeypatch.setenv("INDEXER_QUERY_LOG_DAYS", "7")
    assert open_query_log(store).days == 7
    monkeypatch.setenv("INDEXER_QUERY_LOG_DAYS", "a week")
    with pytest.raises(QueryLogError, match="INDEXER_QUERY_LOG_DAYS"):
        open_query_log(store)
    monkeypatch.setenv("INDEXER_QUERY_LOG", "off")
    assert open_query_log(store) is None


def test_a_log_can_be_read_while_logging_is_off(tmp_path, monkeypatch):
    store = FaissStore(tmp_path / "index")
    with pytest.raises(QueryLogError, match="no query log at"):
        existing_query_log(store)
    store.index_dir.mkdir()  # as a build leaves it
    open_query_log(store).record(searched("asked before logging was turned off"), "build-1")
    monkeypatch.setenv("INDEXER_QUERY_LOG", "off")
    assert [e.query for e in existing_query_log(store).entries()] == ["asked before logging was turned off"]


def test_the_log_stores_no_user_identity_or_address(tmp_path):
    SqliteQueryLog(tmp_path / LOG_FILE).record(searched("q"), "build-1")
    with sqlite3.connect(tmp_path / LOG_FILE) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(queries)")}
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert columns == {
        "id",
        "asked_at",
        "query",
        "results",
        "no_match",
        "confidence",
        "generation",
        "feedback",
        "answered_id",
    }
    assert mode == "wal"


# ---- the folder store: a file with the index, and the engine hook -----------------------------------


@pytest.fixture
def fake_qa(tmp_path, fake_encoder, monkeypatch) -> QAIndex:
    monkeypatch.delenv("INDEXER_QUERY_LOG", raising=False)
    store = FaissStore(tmp_path / "index")
    build([CORPUS], store, lambda: fake_encoder, "fake-model")
    return QAIndex(store.load(), "fake-model", lambda model: fake_encoder)


def test_the_log_lives_beside_the_generations_and_survives_a_rebuild(tmp_path, fake_encoder, fake_qa):
    row = fake_qa.log_search(fake_qa.search("what is overfitting"))
    assert (tmp_path / "index" / LOG_FILE).is_file() and fake_qa.generation.startswith("build-")
    edited = tmp_path / "corpus.md"
    edited.write_text(CORPUS.read_text() + "\n**999. What is a brand new question?**\n\nIts answer.\n")
    for _ in range(3):  # more builds than generations kept
        build([edited], FaissStore(tmp_path / "index"), lambda: fake_encoder, "fake-model")
        edited.write_text(edited.read_text() + "\nMore answer.\n")
    reopened = QAIndex(FaissStore(tmp_path / "index").load(), "fake-model", lambda model: fake_encoder)
    assert reopened.generation != fake_qa.generation
    (entry,) = reopened.query_log.entries()
    assert entry.id == row and entry.generation == fake_qa.generation and entry.query == "what is overfitting"


def test_a_logged_search_carries_its_confidence(fake_qa):
    result = fake_qa.search("overfitting and underfitting")  # a match, even with the fake encoder
    fake_qa.log_search(result)
    (entry,) = fake_qa.query_log.entries()
    assert 0.0 <= entry.confidence <= 1.0 and entry.no_match == result.no_match
    assert entry.results == tuple((h.record.id, round(h.score, 4)) for h in result.hits)


def test_logging_turned_off_writes_nothing(fake_qa, tmp_path, monkeypatch):
    monkeypatch.setenv("INDEXER_QUERY_LOG", "off")
    assert fake_qa.log_search(fake_qa.search("what is overfitting")) is None
    assert not (tmp_path / "index" / LOG_FILE).exists()


def test_a_damaged_log_is_one_line_and_searching_goes_on(fake_qa, tmp_path):
    (tmp_path / "index" / LOG_FILE).write_bytes(b"not a database " * 500)
    notes: list[str] = []
    result = fake_qa.search("overfitting and underfitting")
    assert fake_qa.log_search(result, notes.append) is None
    assert result.hits and len(notes) == 1 and "\n" not in notes[0] and "file is not a database" in notes[0]
    assert fake_qa.search("what is dropout").hits  # the next search is unaffected too


def test_a_locked_log_is_one_line_and_searching_goes_on(fake_qa, tmp_path):
    SqliteQueryLog(tmp_path / "index" / LOG_FILE).record(searched("earlier"), "build-1")
    holder = sqlite3.connect(tmp_path / "index" / LOG_FILE, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holding the file
    try:
        notes: list[str] = []
        started = time.monotonic()
        assert fake_qa.log_search(fake_qa.search("what is overfitting"), notes.append) is None
        assert time.monotonic() - started < BUSY_TIMEOUT_MS / 1000 + 3  # it waited its busy timeout, no longer
        assert len(notes) == 1 and "locked" in notes[0]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert fake_qa.log_search(fake_qa.search("what is overfitting")) is not None  # unlocked: logging resumes


# ---- the CLI: search --log, eval --from-log ------------------------------------------------------------


@pytest.fixture
def index_copy(real_index, tmp_path, monkeypatch) -> str:
    """A private copy of the session's real-model index folder, so each test has a log of its own."""
    monkeypatch.delenv("INDEXER_QUERY_LOG", raising=False)
    copy = tmp_path / "index"
    shutil.copytree(real_index.stored.path.parent, copy, symlinks=True, ignore=shutil.ignore_patterns(LOG_FILE + "*"))
    return str(copy)


def _logged(index_dir: str) -> list[LogEntry]:
    return SqliteQueryLog(Path(index_dir) / LOG_FILE).entries()


def test_cli_searches_are_logged_only_with_log(index_copy, tmp_path):
    code, out, _ = run("search", "what is deep learning", "--index-dir", index_copy, "--source", str(CORPUS))
    assert code == 0 and "Deep Learning" in out and not (Path(index_copy) / LOG_FILE).exists()
    code, _, err = run(
        "search", "what is deep learning", "--index-dir", index_copy, "--source", str(CORPUS), "--log", "--json"
    )
    assert code == 0 and err == ""
    (entry,) = _logged(index_copy)
    assert entry.query == "what is deep learning" and entry.results[0][0] == 1 and not entry.no_match
    batch = tmp_path / "queries.txt"
    batch.write_text("what is dropout\nhow do I get a refund for my course\n")
    assert run("search", "--batch", str(batch), "--index-dir", index_copy, "--source", str(CORPUS), "--log")[0] == 0
    assert [e.query for e in _logged(index_copy)][1:] == ["what is dropout", "how do I get a refund for my course"]


def test_cli_search_with_a_damaged_log_prints_results_and_one_warning(index_copy):
    (Path(index_copy) / LOG_FILE).write_bytes(b"\x00garbage" * 1000)
    code, out, err = run("search", "what is deep learning", "--index-dir", index_copy, "--source", str(CORPUS), "--log")
    assert code == 0 and "Deep Learning" in out
    assert err.count("\n") == 1 and err.startswith("warning: query log: ") and "file is not a database" in err


def test_feedback_becomes_labelled_queries_latest_first():
    def entry(row: int, query: str, feedback=None, answered=None) -> LogEntry:
        return LogEntry(row, NOW, query, (), False, None, "g", feedback, answered)

    labelled = feedback_queries(
        [
            entry(1, "What is dropout?", "none"),
            entry(2, "what is  DROPOUT?", "answered", 9),
            entry(3, "refund policy", "none"),
            entry(4, "no feedback here"),
        ]
    )
    assert [(q.query, q.relevant) for q in labelled] == [("what is  DROPOUT?", [9]), ("refund policy", [])]


def test_eval_from_log_measures_the_logged_feedback(index_copy):
    log = SqliteQueryLog(Path(index_copy) / LOG_FILE)
    log.feedback(log.record(searched("what is deep learning"), "g"), answered=1)
    log.feedback(log.record(searched("how do I get a refund for my course"), "g"), none_of_these=True)
    log.feedback(log.record(searched("an entry since removed"), "g"), answered=9999)
    log.record(searched("no feedback"), "g")
    code, out, err = run("eval", "--from-log", "--index-dir", index_copy, "--source", str(CORPUS), "--json")
    assert code == 0, err
    metrics = json.loads(out)["metrics"]["from-log"]
    assert (metrics["queries"], metrics["answerable"], metrics["hit@1"]) == (2, 1, 1.0)
    assert "left out 1 logged query" in err


def test_eval_needs_query_files_or_from_log(index_copy):
    code, _, err = run("eval", "--index-dir", index_copy)
    assert code == 2 and "--from-log" in err and err.count("\n") == 1
    code, _, err = run("eval", "--from-log", "--index-dir", index_copy, "--source", str(CORPUS))
    assert code == 2 and "no query log" in err and err.count("\n") == 1


def test_an_index_in_postgresql_logs_to_a_table_of_its_database(pg_url, fake_encoder, monkeypatch):
    from indexer.stores.postgres import PgStore

    monkeypatch.delenv("INDEXER_QUERY_LOG", raising=False)
    stores = [PgStore(pg_url, name=f"test-{uuid.uuid4().hex[:8]}") for _ in range(2)]
    logged = []
    for store in stores:
        build([CORPUS], store, lambda: fake_encoder, "fake-model")
        qa = QAIndex(store.load(), "fake-model", lambda model: fake_encoder)
        qa.store = store  # as QAIndex.open sets it
        logged.append((qa.log_search(qa.search(f"what is overfitting in {store.name}")), qa.generation))
    for store, (row, generation) in zip(stores, logged):
        (entry,) = existing_query_log(store).entries()  # each named index sees its own searches
        assert (entry.id, entry.generation, entry.query) == (row, generation, f"what is overfitting in {store.name}")
        assert generation.isdigit()  # the generation's id in indexer_generations
