"""The query log: every logged search (time, query, results, verdict, generation) and the reader's feedback.

    log = open_query_log(store)                  # None when INDEXER_QUERY_LOG=off
    log = existing_query_log(store)              # to read: QueryLogMissingError when there is none
    row = log.record(result, generation="build-…", confidence=0.82)
    log.feedback(row, answered=17)               # "this answered my question"
    log.feedback(row, none_of_these=True)        # "none of these" for the whole list
    log.clear_feedback(row)                      # undo
    log.entries(since=datetime(2026, 12, 1, tzinfo=timezone.utc))

Where it lives: for the folder store, `querylog.sqlite` in the index folder, beside the generations
(builds never touch it, so it survives rebuilds), in SQLite's WAL mode so readers never block the
writer and concurrent writers queue for a few milliseconds instead of failing; for the PostgreSQL
store, the table `indexer_query_log` in the index's database, one column naming the index.

What it deliberately does not hold: who asked or from where (no user, session or address columns).
Entries older than the retention period (INDEXER_QUERY_LOG_DAYS, default 90) are pruned when a log
is opened and then once a day. Every failure is a `QueryLogError` with one line of text; callers that
search (`record_search`) report it and go on, so a damaged or locked log never stops a search.
This module does not group or export anything (analysis/gaps.py) and imports psycopg only for a
PostgreSQL log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from indexer.documents.records import RecordId
from indexer.errors import IndexerError

if TYPE_CHECKING:
    from indexer.analysis.evaluate import LabelledQuery
    from indexer.retrieval.search import SearchResult

LOG_FILE = "querylog.sqlite"
PG_TABLE = "indexer_query_log"
SWITCH_ENV = "INDEXER_QUERY_LOG"  # "off" (or 0 / false / no) turns logging off
DAYS_ENV = "INDEXER_QUERY_LOG_DAYS"
DEFAULT_RETENTION_DAYS = 90
SCHEMA_VERSION = 1
# Long enough for dozens of queued writers (an insert holds SQLite's write lock well under a
# millisecond), short enough that a log locked by someone else delays a search by at most this.
BUSY_TIMEOUT_MS = 2000
_PRUNE_EVERY_S = 24 * 3600
_OFF = ("off", "0", "false", "no")

Feedback = Literal["answered", "none"]


class QueryLogError(IndexerError):
    """The query log cannot be read or written (missing, damaged, locked, unreachable)."""


class QueryLogMissingError(QueryLogError):
    """There is no query log where one was looked for."""


@dataclass(frozen=True)
class LogEntry:
    """One logged search. `results` are the (id, score) pairs shown, best first (greyed ones too when
    `no_match`); `feedback` is "answered" (with `answered_id`), "none" ("none of these") or None."""

    id: int
    asked_at: datetime  # UTC
    query: str
    results: tuple[tuple[RecordId, float], ...]
    no_match: bool
    confidence: float | None
    generation: str
    feedback: Feedback | None = None
    answered_id: RecordId | None = None

    @property
    def is_gap(self) -> bool:
        """The document did not answer it: no good match, or "none of these", unless a reader said a
        result answered it."""
        return self.feedback == "none" or (self.no_match and self.feedback != "answered")


class QueryLog(Protocol):
    """What callers may use of a query log; both backends below offer exactly this."""

    location: str

    def record(
        self, result: SearchResult, generation: str, confidence: float | None = None, asked_at: datetime | None = None
    ) -> int: ...

    def feedback(self, row_id: int, answered: RecordId | None = None, *, none_of_these: bool = False) -> None: ...

    def clear_feedback(self, row_id: int) -> None: ...

    def entries(self, since: datetime | None = None) -> list[LogEntry]: ...

    def prune(self, now: datetime | None = None) -> int: ...

    def close(self) -> None: ...


def same_words(query: str) -> str:
    """One key for queries that differ only in case, spacing or end punctuation."""
    return " ".join(query.casefold().split()).rstrip("?.!")


def logging_enabled() -> bool:
    return os.environ.get(SWITCH_ENV, "").strip().lower() not in _OFF


def retention_days() -> int:
    """INDEXER_QUERY_LOG_DAYS, else 90."""
    text = os.environ.get(DAYS_ENV, "").strip()
    if not text:
        return DEFAULT_RETENTION_DAYS
    if not text.isdigit() or int(text) < 1:
        raise QueryLogError(f"{DAYS_ENV} must be a whole number of days, at least 1, not {text!r}")
    return int(text)


def utc_now() -> datetime:
    return datetime.now(UTC)


def open_query_log(store, days: int | None = None) -> QueryLog | None:
    """The log kept with `store` (a FaissStore or a PgStore), to record in; created on first use.
    None when logging is off."""
    return _log_of(store, days, create=True) if logging_enabled() else None


def existing_query_log(store, days: int | None = None) -> QueryLog:
    """The log kept with `store`, to read (also when logging is off); `QueryLogMissingError` when
    there is none."""
    return _log_of(store, days, create=False)


def _log_of(store, days: int | None, create: bool) -> QueryLog:
    days = retention_days() if days is None else days
    if hasattr(store, "index_dir"):
        return SqliteQueryLog(Path(store.index_dir) / LOG_FILE, days, create)
    return PgQueryLog(store.url, store.name, store.location, days, create)


def record_search(
    open_log: Callable[[], QueryLog | None],
    result: SearchResult,
    generation: str,
    confidence: float | None,
    notify: Callable[[str], None],
) -> int | None:
    """Log one search; its row id (for feedback), or None when logging is off or failed. A failure
    (opening or writing) is passed to `notify` as one line and never raised: a search must not depend
    on its log."""
    try:
        log = open_log()
        return None if log is None else log.record(result, generation, confidence)
    except QueryLogError as exc:
        notify(f"query log: {exc}")
        return None


def warn(message: str) -> None:
    logging.getLogger("indexer").warning(message)


class _SqlQueryLog:
    """The statements and row decoding both backends share; subclasses connect and translate errors.

    Statements use `?` placeholders (SQLite's); the PostgreSQL subclass turns them into `%s`.
    """

    location: str
    _name_filter = ""  # the PostgreSQL table holds several indexes' logs

    def __init__(self, days: int) -> None:
        self.days = days
        self._lock = threading.Lock()  # one connection, shared by the app's sessions (threads)
        self._conn: Any = None  # a sqlite3 or psycopg connection, opened on first use
        self._pruned_at = float("-inf")

    # ---- the interface ----

    def record(
        self, result: SearchResult, generation: str, confidence: float | None = None, asked_at: datetime | None = None
    ) -> int:
        shown = result.hits or result.nearest  # what the reader saw: greyed nearest entries when no match
        results = json.dumps([{"id": h.record.id, "score": round(float(h.score), 4)} for h in shown])
        row = self._run(
            f"INSERT INTO {self._table} (asked_at, query, results, no_match, confidence, generation"
            f"{self._name_column}) VALUES (?, ?, ?, ?, ?, ?{self._name_value}) RETURNING id",
            (
                self._time(asked_at or utc_now()),
                result.query,
                results,
                bool(result.no_match),
                None if confidence is None else float(confidence),
                str(generation),
                *self._name_params,
            ),
            fetch=True,
        )
        self._prune_if_due()
        return int(row[0][0])

    def feedback(self, row_id: int, answered: RecordId | None = None, *, none_of_these: bool = False) -> None:
        """Mark a logged search: `answered=<entry id>` ("this answered my question") or
        `none_of_these=True`. A new mark replaces the previous one."""
        if (answered is None) == (not none_of_these):
            raise QueryLogError("give feedback as either answered=<entry id> or none_of_these=True")
        kind: Feedback = "none" if none_of_these else "answered"
        self._set_feedback(row_id, kind, None if answered is None else json.dumps(answered))

    def clear_feedback(self, row_id: int) -> None:
        self._set_feedback(row_id, None, None)

    def entries(self, since: datetime | None = None) -> list[LogEntry]:
        """Logged searches, oldest first (all, or asked at or after `since`)."""
        self._prune_if_due()
        start = since or datetime(1970, 1, 1, tzinfo=UTC)
        rows = self._run(
            f"SELECT id, asked_at, query, results, no_match, confidence, generation, feedback, "
            f"answered_id FROM {self._table} WHERE asked_at >= ?{self._name_filter} ORDER BY id",
            (self._time(start), *self._name_params),
            fetch=True,
        )
        return [_entry(row) for row in rows]

    def prune(self, now: datetime | None = None) -> int:
        """Delete the entries older than the retention period; how many were deleted."""
        cutoff = (now or utc_now()) - timedelta(days=self.days)
        self._pruned_at = time.monotonic()
        return self._run(
            f"DELETE FROM {self._table} WHERE asked_at < ?{self._name_filter}", (self._time(cutoff), *self._name_params)
        )

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # ---- shared machinery ----

    _table = "queries"
    _name_column = _name_value = ""
    _name_params: tuple = ()

    def _set_feedback(self, row_id: int, kind: Feedback | None, answered_id: str | None) -> None:
        changed = self._run(
            f"UPDATE {self._table} SET feedback = ?, answered_id = ? WHERE id = ?{self._name_filter}",
            (kind, answered_id, int(row_id), *self._name_params),
        )
        if not changed:
            raise QueryLogError(f"no logged search with id {row_id} in {self.location}")

    def _prune_if_due(self) -> None:
        """Prune on a log's first use, then once a day (the app keeps one log open for weeks)."""
        if time.monotonic() - self._pruned_at > _PRUNE_EVERY_S:
            self.prune()

    def _run(self, statement: str, params: tuple, fetch: bool = False):
        """Rows when `fetch`, else the number of rows changed; backend errors become QueryLogError."""
        with self._lock, self._translated_errors():
            if self._conn is None:
                self._conn = self._connect()
            cursor = self._conn.execute(self._sql(statement), params)
            return cursor.fetchall() if fetch else cursor.rowcount

    def _sql(self, statement: str) -> str:
        return statement

    def _time(self, moment: datetime):
        return moment

    def _connect(self):
        raise NotImplementedError

    def _translated_errors(self) -> contextlib.AbstractContextManager:
        raise NotImplementedError


def _entry(row: tuple) -> LogEntry:
    row_id, asked_at, query, results, no_match, confidence, generation, feedback, answered_id = row
    results = json.loads(results)
    answered = None if answered_id is None else json.loads(answered_id)
    moment = asked_at if isinstance(asked_at, datetime) else datetime.fromisoformat(asked_at)
    return LogEntry(
        int(row_id),
        moment.astimezone(UTC),
        query,
        tuple((r["id"], float(r["score"])) for r in results),
        bool(no_match),
        None if confidence is None else float(confidence),
        generation,
        feedback,
        answered,
    )


class SqliteQueryLog(_SqlQueryLog):
    """The folder store's log: one SQLite file in WAL mode, safe for many processes and threads."""

    def __init__(self, path: Path, days: int = DEFAULT_RETENTION_DAYS, create: bool = True) -> None:
        super().__init__(days)
        self.path = Path(path)
        self.location = str(self.path)
        if not create and not self.path.is_file():
            raise QueryLogMissingError(
                f"no query log at {self.path}: searches are logged by the app, or by: python -m indexer search --log"
            )

    def _connect(self) -> sqlite3.Connection:
        # autocommit (isolation_level=None): each statement is its own short transaction
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        try:
            _switch_to_wal(conn)
            # in WAL mode: safe against a crashed process (not a power cut), and no fsync per insert
            conn.execute("PRAGMA synchronous=NORMAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise QueryLogError(f"query log {self.path} was written by a newer version of this tool; upgrade")
            if version < SCHEMA_VERSION:
                conn.executescript(_SQLITE_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    def _time(self, moment: datetime) -> str:
        # one fixed-width form, so text order is time order
        return moment.astimezone(UTC).isoformat(timespec="microseconds")

    @contextlib.contextmanager
    def _translated_errors(self) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            if "locked" in reason or "busy" in reason:
                raise QueryLogError(
                    f"{self.location} is locked by another process ({reason}); this search was not logged"
                ) from None
            damaged = "not a database" in reason or "malformed" in reason
            raise QueryLogError(
                f"{self.location} cannot be used ({reason}); searches go on without it"
                + (": move the file away to start a new log" if damaged else "")
            ) from None


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """PRAGMA journal_mode=WAL, retried until the busy timeout: when several connections create the
    log at once, SQLite answers this one "database is locked" at once instead of waiting (seen with
    8 threads on a loaded machine). Once the file is in WAL mode it is a no-op."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


_SQLITE_SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS queries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so feedback cannot land on another search
    asked_at    TEXT NOT NULL,                      -- ISO 8601, UTC
    query       TEXT NOT NULL,
    results     TEXT NOT NULL,                      -- JSON: [{{"id": ..., "score": ...}}, ...], best first
    no_match    INTEGER NOT NULL,
    confidence  REAL,
    generation  TEXT NOT NULL,
    feedback    TEXT CHECK (feedback IN ('answered', 'none')),
    answered_id TEXT                                -- JSON: the entry id, int or "file.md#12"
);
CREATE INDEX IF NOT EXISTS queries_asked_at ON queries (asked_at);
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
"""


class PgQueryLog(_SqlQueryLog):
    """The PostgreSQL store's log: table `indexer_query_log`, shared by the database's named indexes."""

    _table = PG_TABLE
    _name_filter = " AND index_name = ?"
    _name_column, _name_value = ", index_name", ", ?"

    def __init__(
        self, url: str, name: str, location: str, days: int = DEFAULT_RETENTION_DAYS, create: bool = True
    ) -> None:
        super().__init__(days)
        self.url, self.location = url, f"{location} (table {PG_TABLE})"
        self._name_params = (name,)
        self._create = create

    def _connect(self):
        import psycopg
        from psycopg.types.string import TextLoader

        conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        conn.adapters.register_loader("jsonb", TextLoader)  # JSON text, decoded by `_entry` as SQLite's is
        try:
            exists = conn.execute("SELECT to_regclass(%s)", (PG_TABLE,)).fetchone()[0] is not None
            if not exists and not self._create:
                raise QueryLogMissingError(
                    f"no query log in {self.location}: searches are logged by the app, "
                    "or by: python -m indexer search --log"
                )
            if not exists:
                with conn.transaction():  # two first searches at once would race CREATE … IF NOT EXISTS
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_SCHEMA_LOCK,))
                    conn.execute(_PG_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    @contextlib.contextmanager
    def _translated_errors(self) -> Iterator[None]:
        import psycopg

        try:
            yield
        except psycopg.Error as exc:
            if self._conn is not None and (self._conn.broken or self._conn.closed):
                self._conn = None  # the next call reconnects
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise QueryLogError(f"{self.location} cannot be used ({reason})") from None


_PG_SCHEMA_LOCK = 0x1D5E_0010  # beside postgres.py's advisory lock keys
_PG_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {PG_TABLE} (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    index_name  text NOT NULL,
    asked_at    timestamptz NOT NULL,
    query       text NOT NULL,
    results     jsonb NOT NULL,
    no_match    boolean NOT NULL,
    confidence  double precision,
    generation  text NOT NULL,
    feedback    text CHECK (feedback IN ('answered', 'none')),
    answered_id jsonb
);
CREATE INDEX IF NOT EXISTS {PG_TABLE}_asked_at ON {PG_TABLE} (index_name, asked_at);
"""


def feedback_queries(entries: list[LogEntry]) -> list[LabelledQuery]:
    """Labelled queries from the readers' feedback: "answered" → relevant [id], "none of these" →
    relevant [] (a query the document does not answer). A query asked several times keeps its
    latest feedback; queries without feedback are not labelled."""
    from indexer.analysis.evaluate import LabelledQuery

    latest: dict[str, LogEntry] = {}
    for entry in entries:  # oldest first: later feedback replaces earlier
        if entry.feedback is not None:
            latest[same_words(entry.query)] = entry
    return [
        LabelledQuery(
            e.query, [] if e.answered_id is None else [e.answered_id], "from-log", f"query log: search {e.id}"
        )
        for e in latest.values()
    ]
