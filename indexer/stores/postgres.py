"""The PostgreSQL + pgvector store: the same interface as `store.FaissStore`, with the index in a database.

    store = PgStore("postgresql://user@host/db")          # the index named "default"
    store = PgStore("postgresql://user@host/db#uploads")  # another index in the same database

Tables (created by the first build, after `CREATE EXTENSION IF NOT EXISTS vector`):

    indexer_generations   id, index_name, manifest (jsonb), is_current, lexical (the lexical index's
                          arrays, as store.py writes them to lexical.npz): one row per complete build
    indexer_records_<id>  (file, part) → bytes: the records as the folder store writes them (tables.py:
                          records.npy, record_values.json, record_texts.bin), each file in parts of
                          at most 64 MiB (bytea holds at most 1 GB), stored uncompressed; from
                          `ivf_min_rows` rows also an inverted file of the vectors (ivf.faiss) and
                          each row's record position (row_positions.npy), searched in the client
    indexer_rows_<id>     row → (record position, field, text key, embedding vector(dimension));
                          an HNSW index (vector_ip_ops) when the build has at least `hnsw_min_rows` rows

A build creates and fills a generation's tables and moves `is_current` in ONE transaction, so readers
see the old generation or the new one, never part of one, and a killed build leaves nothing behind.
A loaded index (`PgStoredIndex`) keeps one connection holding a shared advisory lock on its generation;
a build drops an old generation only when it can take that lock exclusively, so an open reader keeps
answering from the generation it loaded. One build at a time per index name (an advisory lock).

Vector contract as in store.py: normalised float32 vectors, score = inner product = cosine. pgvector's
`<#>` is the NEGATIVE inner product (so ascending order is best first).

Records live in the client (search, lexical matching and display need them); vectors stay in the
database: nearest rows and the cosines of candidate entries are SQL queries. From `ivf_min_rows` rows
(50,000 entries) a build also stores an inverted file of the vectors (half-precision codes, ~0.75 KB a
row) beside the records; a loaded index starts reading it on a thread of its own at its second search
(or a batch), and once it is in, nearest rows come from it, in the client. On near-duplicate-heavy vectors pgvector's
HNSW found 0.43 of the exact top 10 at 100,000 entries and 0.54 at a million, and its IVFFlat needed an
eighth of the rows scanned for 0.98 (docs/benchmarks.md). Until the file is in, nearest rows come from
HNSW (exact below `hnsw_min_rows`).

A load reads the record files in one SELECT and holds them as a `RecordTable` (columns, texts decoded
when shown), as the folder store does: a jsonb row per record (formats 1-3) took ~12 s to read at a
million entries. It checks their sizes and shapes; `verify` (`info`) also their sha256, and the inverted
file's (which its read checks too). This module does not choose between stores (stores.py) and imports
psycopg only when a PgStore is used.

Format 4 is this store's own: the folder store's files did not change (it stays at 3). A generation
of formats 1-3 is still read, so the build that replaces it (an older format: stale) reuses its vectors.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import re
import threading
import weakref
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.types.json import Jsonb

from indexer.background import started, started_unawaited
from indexer.documents.records import Record, RecordId, field_values
from indexer.errors import IndexCorruptError, IndexerError, IndexMissingError, IndexStaleError
from indexer.retrieval.lexical import LexicalIndex
from indexer.stores.base import RowOrigins, StoredRows
from indexer.stores.disk import RowTable, check_format, lexical_blob, lexical_from_blob
from indexer.stores.tables import RECORD_FILES, record_files, records_from_files
from indexer.stores.vectors import (
    best_inner_products,
    ivf_nearest_rows,
    list_count,
    nan_where_absent,
    set_probes,
    vector_index,
)

if TYPE_CHECKING:
    import faiss

    from indexer.documents.incremental import ParseMap

FORMAT_VERSION = 4  # formats 1-3 held a jsonb row per record
READABLE_FORMATS = (1, 2, 3, 4)
RECORDS_AS_FILES = 4  # the first format whose records table holds the record files
RECORD_PART_BYTES = 64 * 2**20  # bytea holds at most 1 GB; smaller parts spare the server's memory

DEFAULT_NAME = "default"
# Exact nearest rows cost ~0.6 ms per 1k rows (29 ms at 50k, 56 ms at 100k) and HNSW ~2 ms, but HNSW
# adds ~0.5 s per 1k rows to every build and loses a few % recall; search.py scans everything below
# 20k rows anyway. Measured with bench/pgstore.py.
HNSW_MIN_ROWS = 50_000
# pgvector's default ef_search (40) missed a query's whole cluster now and then: at 100k entries
# (bench/pgmillion.py) recall@10 0.934 (cluster mates 0.975) at 40, 0.963 (1.000) at 100, p50 5.6 → 10 ms.
# A connection configured higher keeps its value (docs/storage.md; at a million entries even 1000 is short).
HNSW_EF_SEARCH = 100
HNSW_MAX_EF_SEARCH = 1000  # pgvector's limit; a deeper query is answered exactly
# The graph builds 2-3x faster while it fits in maintenance_work_mem (50k rows: 49 s against 112 s with
# the default 64MB). It takes ~2.25 KB a row at 384-d, so 1 GB holds ~470k rows (235k entries); a
# connection configured higher keeps its value (docs/storage.md: a million entries need ~5 GB).
HNSW_BUILD_MEMORY = "1GB"
# A load reads the lexical index on a second connection, beside the records, from this many records on.
# The server reads a bytea from its TOAST table at ~250 MB/s: at a million entries (~100 MB each) the
# load fell from ~1.75 to ~1.25 s. At 100,000 (~10 MB each) it was 0.10 s either way, and below that a
# second connection (a TLS handshake, over a network) would cost more than it saves (docs/benchmarks.md).
LEXICAL_APART_RECORDS = 100_000
# A set of positions scored for many queries keeps its vectors in the client up to this size: the spread
# sample every query's mean cosine is taken on (search.py: 500 entries). At a million entries its two SQL
# scorings (the query's, its leftover words') were ~10 of a text query's 37 ms.
KEPT_POSITIONS = 1_000
# From this many rows a generation also keeps an inverted file of its vectors (vectors.py: half-precision
# codes, √rows lists, an eighth of them probed: the folder store's, recall@10 1.000 at a million entries),
# searched in the client once a load has read it (~150 MB at 100,000 entries).
IVF_MIN_ROWS = 100_000
IVF_FILE, ROW_POSITIONS_FILE = "ivf.faiss", "row_positions.npy"  # raw little-endian int32 (no .npy header)
VECTOR_FILES = (IVF_FILE, ROW_POSITIONS_FILE)
# A batch of this many nearest-row searches (`missing`'s hints, a batch search) waits for the inverted file
# rather than asking the database once each, for at most IVF_WAIT_S (then the database answers).
IVF_WAIT_MIN_QUERIES = 64
IVF_WAIT_S = 300.0
_GENERATIONS = "indexer_generations"
_LOCK_BUILD, _LOCK_READ, _LOCK_SCHEMA = 0x1D5E_0001, 0x1D5E_0002, 0x1D5E_0003  # advisory lock namespaces


class PgStore:
    """One named index in a PostgreSQL database with pgvector. Same methods as `FaissStore`."""

    format_version = FORMAT_VERSION

    def __init__(
        self,
        url: str,
        name: str | None = None,
        hnsw_min_rows: int = HNSW_MIN_ROWS,
        ivf_min_rows: int = IVF_MIN_ROWS,
        read_ivf: bool = True,
    ) -> None:
        """`ivf_min_rows`: builds from this many rows keep an inverted file; `read_ivf` False: loads leave
        it unread, so nearest rows always come from the database (what bench/pgmillion.py compares with)."""
        base, _, fragment = url.partition("#")
        self.url = base
        self.name = name or fragment or DEFAULT_NAME
        self.hnsw_min_rows = hnsw_min_rows
        self.ivf_min_rows = ivf_min_rows
        self.read_ivf = read_ivf
        self.location = re.sub(r"//([^:/@]*):[^@/]+@", r"//\1:***@", base) + (
            f"#{self.name}" if self.name != DEFAULT_NAME else ""
        )

    def connect(self, autocommit: bool = False) -> psycopg.Connection:
        try:
            return psycopg.connect(self.url, autocommit=autocommit, connect_timeout=10)
        except psycopg.Error as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]  # later lines are hints
            raise IndexerError(f"cannot connect to PostgreSQL at {self.location}: {reason}") from None

    def read_manifest(self) -> dict | None:
        """The current generation's manifest, or None when there is no index yet."""
        with self.connect(autocommit=True) as conn:
            row = _current(conn, self.name)
        return None if row is None else check_format(row[1], self.location, FORMAT_VERSION)

    def load(self) -> PgStoredIndex:
        return PgStoredIndex(self)

    def verify(self) -> None:
        """Hash the record files and the inverted file against the manifest (a load checks the records'
        sizes and shapes, and the counts); the rows and vectors are the database's to keep."""
        loaded = self.load()
        try:
            loaded.verify_record_files()
        finally:
            loaded.close()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One build at a time per index name; a second build waits for the first to finish."""
        with self.connect(autocommit=True) as conn:
            key = (_LOCK_BUILD, _int32(self.name))
            conn.execute("SELECT pg_advisory_lock(%s, %s)", key)
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", key)

    def write(
        self,
        records: Sequence[Record],
        rows: RowTable,
        vectors: np.ndarray,
        manifest: dict,
        lexical: LexicalIndex,
        *,
        parse_map: ParseMap | None = None,
        origins: RowOrigins | None = None,
    ) -> None:
        """Write a new generation and make it current in one transaction. Call with `lock()` held. The
        parse map and row origins are not used: this store keeps no map, and pgvector builds its own index."""
        dimension = int(manifest["dimension"])
        if vectors.shape != (len(rows.fields), dimension):
            raise ValueError(f"vectors {vectors.shape} do not match {len(rows.fields)} rows of {dimension}")
        index_type = "hnsw" if len(rows.fields) >= self.hnsw_min_rows else "flat"
        files: dict[str, bytes | memoryview] = {**record_files(records)}
        about_ivf: dict[str, dict] = {}
        if len(rows.fields) >= self.ivf_min_rows:
            serialized, lists = _inverted_file(vectors, dimension)
            about_ivf = {"ivf": {"lists": lists}}
            files[IVF_FILE] = serialized.data  # a view, not copied into bytes: ~1.5 GB at a million
            files[ROW_POSITIONS_FILE] = rows.positions.astype("<i4").tobytes()
        manifest = {
            **manifest,
            **about_ivf,
            "format_version": FORMAT_VERSION,
            "index_type": index_type,
            "store": "postgresql",
            "files": {
                name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)} for name, data in files.items()
            },
        }
        with self.connect(autocommit=True) as conn:
            _ensure_schema(conn, self.location)
            register_vector(conn)
            with conn.transaction():
                generation = _one(
                    conn.execute(
                        sql.SQL(
                            "INSERT INTO {} (index_name, manifest, lexical) VALUES (%s, %s, %s) RETURNING id"
                        ).format(sql.Identifier(_GENERATIONS)),
                        (self.name, Jsonb(manifest), lexical_blob(lexical)),
                    )
                )[0]
                records_table, rows_table = _tables(generation)
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE {} (file text, part int, bytes bytea NOT NULL, PRIMARY KEY (file, part))"
                    ).format(records_table)
                )
                # uncompressed: every load reads all of it, and pglz would cost more time than the disk it saves
                conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN bytes SET STORAGE EXTERNAL").format(records_table))
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE {} (row_number int PRIMARY KEY, position int NOT NULL, field text NOT NULL, "
                        "key text NOT NULL, embedding vector({}) NOT NULL)"
                    ).format(rows_table, sql.Literal(dimension))
                )
                with conn.cursor().copy(
                    sql.SQL("COPY {} FROM STDIN WITH (FORMAT BINARY)").format(records_table)
                ) as copy:
                    copy.set_types(["text", "int4", "bytea"])
                    for name, data in files.items():
                        for part, start in enumerate(range(0, max(len(data), 1), RECORD_PART_BYTES)):
                            copy.write_row((name, part, memoryview(data)[start : start + RECORD_PART_BYTES]))
                # FREEZE (the table is this transaction's own): pages are marked all-visible as they are
                # filled, so the count every load makes can read the (position, field) index alone
                with conn.cursor().copy(
                    sql.SQL("COPY {} FROM STDIN WITH (FORMAT BINARY, FREEZE)").format(rows_table)
                ) as copy:
                    copy.set_types(["int4", "int4", "text", "text", "vector"])
                    for row, (position, field, key) in enumerate(zip(rows.positions.tolist(), rows.fields, rows.keys)):
                        copy.write_row((row, position, field, key, vectors[row]))
                conn.execute(sql.SQL("CREATE INDEX ON {} (position, field)").format(rows_table))
                if index_type == "hnsw":
                    give_build_memory(conn)
                    conn.execute(sql.SQL("CREATE INDEX ON {} USING hnsw (embedding vector_ip_ops)").format(rows_table))
                # two statements: the one-current unique index is checked row by row, so a single UPDATE
                # that happens to set the new row before clearing the old one would violate it
                conn.execute(
                    sql.SQL("UPDATE {} SET is_current = false WHERE index_name = %s AND is_current").format(
                        sql.Identifier(_GENERATIONS)
                    ),
                    (self.name,),
                )
                conn.execute(
                    sql.SQL("UPDATE {} SET is_current = true WHERE id = %s").format(sql.Identifier(_GENERATIONS)),
                    (generation,),
                )  # visible to readers at this transaction's commit
            # FREEZE marks only the pages it filled from empty; VACUUM marks the rest (it skips those),
            # and ANALYZE gives the planner the table's size (outside the transaction: VACUUM cannot
            # run in one). The count every load makes, at 300,000 entries: 141 → 83-93 ms (the write
            # takes 1-3 s longer, of 14-18 s).
            with contextlib.suppress(psycopg.Error):  # the generation is committed: a failure here only
                conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(rows_table))  # slows its loads' count
            _drop_unused_generations(conn, self.name)


def _inverted_file(vectors: np.ndarray, dimension: int) -> tuple[np.ndarray, int]:
    """The inverted file of `vectors` serialized (uint8, FAISS's format), and its list count. Trained anew
    by every build (the folder store updates its previous one); the index itself is freed on return."""
    import faiss

    ivf = vector_index(vectors, "ivf", dimension)
    return faiss.serialize_index(ivf), list_count(ivf)


def give_build_memory(conn: psycopg.Connection) -> None:
    """Raise maintenance_work_mem to HNSW_BUILD_MEMORY for the current transaction (as SET LOCAL does),
    unless the session was given more."""
    conn.execute(
        "SELECT set_config('maintenance_work_mem', %s, true) "
        "WHERE pg_size_bytes(current_setting('maintenance_work_mem')) < pg_size_bytes(%s)",
        (HNSW_BUILD_MEMORY, HNSW_BUILD_MEMORY),
    )


def _int32(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big", signed=True)


def _tables(generation: int) -> tuple[sql.Identifier, sql.Identifier]:
    return sql.Identifier(f"indexer_records_{generation}"), sql.Identifier(f"indexer_rows_{generation}")


def _ensure_schema(conn: psycopg.Connection, location: str) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_SCHEMA,))  # concurrent CREATE … IF NOT EXISTS race
        try:
            with conn.transaction():
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as exc:
            raise IndexerError(
                f"the pgvector extension is not available in the database at {location} "
                f"({str(exc).strip().splitlines()[0]}); install pgvector on the server "
                "(https://github.com/pgvector/pgvector) or have an administrator run: CREATE EXTENSION vector"
            ) from None
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                "index_name text NOT NULL, manifest jsonb NOT NULL, is_current boolean NOT NULL DEFAULT false, "
                "created_at timestamptz NOT NULL DEFAULT now())"
            ).format(sql.Identifier(_GENERATIONS))
        )
        conn.execute(
            sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS indexer_one_current ON {} (index_name) WHERE is_current").format(
                sql.Identifier(_GENERATIONS)
            )
        )
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS lexical bytea").format(  # format 1 had none
                sql.Identifier(_GENERATIONS)
            )
        )


def _one(cursor: psycopg.Cursor) -> tuple:
    """The row of a query that always returns exactly one (an aggregate, a function call, RETURNING of
    one insert): psycopg types every fetchone() as Optional."""
    row = cursor.fetchone()
    assert row is not None
    return row


def _current(conn: psycopg.Connection, name: str) -> tuple[int, dict] | None:
    """(generation id, manifest) of the current generation, or None when there is none."""
    if _one(conn.execute("SELECT to_regclass(%s)", (_GENERATIONS,)))[0] is None:
        return None
    return conn.execute(
        sql.SQL("SELECT id, manifest FROM {} WHERE index_name = %s AND is_current").format(
            sql.Identifier(_GENERATIONS)
        ),
        (name,),
    ).fetchone()


def _drop_unused_generations(conn: psycopg.Connection, name: str) -> None:
    """Drop the old generations no open reader holds (readers hold a shared lock on theirs)."""
    old = conn.execute(
        sql.SQL("SELECT id FROM {} WHERE index_name = %s AND NOT is_current").format(sql.Identifier(_GENERATIONS)),
        (name,),
    ).fetchall()
    for (generation,) in old:
        if not _one(conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (_LOCK_READ, generation)))[0]:
            continue  # still read by someone: a later build drops it
        try:
            with conn.transaction():
                for table in _tables(generation):
                    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE id = %s").format(sql.Identifier(_GENERATIONS)), (generation,)
                )
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_LOCK_READ, generation))


class PgStoredIndex:
    """A loaded generation: manifest and records in memory, vectors queried in the database (nearest rows
    in the client's copy of the inverted file once it is read).

    Offers what search.py and build.py use of `store.StoredIndex`. Safe to share between threads (one
    query at a time on its connection); reconnects once when the connection drops. `close()` releases
    the generation for the next build to drop; so does garbage collection.
    """

    def __init__(self, store: PgStore) -> None:
        self.location = store.location
        self._store = store
        self._lock = threading.Lock()
        self._settings: tuple | None = None
        self._kept_vectors: dict[bytes, list[tuple[np.ndarray, np.ndarray]]] = {}
        self._ivf_read: _InvertedFileRead | None = None
        self._conn = store.connect(autocommit=True)
        self._closer = weakref.finalize(self, self._conn.close)
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        self.generation, self.manifest = self._hold_current()
        if self.manifest["format_version"] not in READABLE_FORMATS:
            raise IndexStaleError(f"index at {self.location} has an old format ({self.manifest['format_version']})")
        self._records_table, self._rows_table = _tables(self.generation)
        try:
            apart = self._lexical_apart() if self.manifest.get("record_count", 0) >= LEXICAL_APART_RECORDS else None
            self.records = self._stored_records()
            self.lexical = apart.result() if apart else _stored_lexical(self._conn, self.generation)
            questions, total = _one(
                self._conn.execute(
                    sql.SQL("SELECT count(*) FILTER (WHERE field = 'question'), count(*) FROM {}").format(
                        self._rows_table
                    )
                )
            )
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn, TypeError, KeyError, ValueError) as exc:
            raise IndexCorruptError(f"index at {self.location} is corrupt: {type(exc).__name__}; rebuild it") from None
        expected = (
            self.manifest.get("record_count"),
            self.manifest.get("question_vectors"),
            self.manifest.get("question_vectors", 0) + self.manifest.get("answer_vectors", 0),
        )
        if (len(self.records), questions, total) != expected:
            raise IndexCorruptError(
                f"index at {self.location} is corrupt: counts do not match the manifest; rebuild it"
            )
        self.path = f"{self.location}@{self.generation}"  # names the loaded generation, like StoredIndex.path
        self.hnsw = self.manifest.get("index_type") == "hnsw"
        self._row_count = int(total)
        self.ef_search = min(HNSW_MAX_EF_SEARCH, max(HNSW_EF_SEARCH, self._configured_ef_search()))
        if self._store.read_ivf and all(name in self.manifest.get("files", {}) for name in VECTOR_FILES):
            self._ivf_read = _InvertedFileRead(self._store, self._records_table, self.manifest, self._row_count)

    def client_ivf(self, wait: bool = False) -> ClientIvf | None:
        """The inverted file searched in the client once it is read (the second call starts the read, or a
        first that waits; `wait`: block until it ends, at most `IVF_WAIT_S`); None before, or without one."""
        return self._ivf_read.get(wait) if self._ivf_read is not None else None

    @functools.cached_property
    def position_of(self) -> dict[RecordId, int]:
        """Record id → position, made on first use from the ids alone."""
        ids = field_values(self.records, "id")
        return dict(zip(ids, range(len(ids))))

    def _stored_records(self) -> Sequence[Record]:
        """The generation's records: a `RecordTable` over its record files (format 4), checked against the
        manifest's sizes; or, from formats 1-3, a Record per jsonb row (read once, by the build that
        replaces the generation and reuses its vectors)."""
        if self.manifest["format_version"] < RECORDS_AS_FILES:
            query = sql.SQL("SELECT record FROM {} ORDER BY position").format(self._records_table)
            return [Record.from_dict(r) for (r,) in self._conn.execute(query)]
        files = self._record_files()
        if any(len(data) != self.manifest["files"][name]["bytes"] for name, data in files.items()):
            raise ValueError("a record file does not have the size the manifest gives")
        return records_from_files(files)

    def _record_files(self) -> dict[str, bytes]:
        """File name → bytes of the generation's record files, each joined from its parts (one SELECT)."""
        parts: dict[str, list[bytes]] = {name: [] for name in RECORD_FILES}
        query = sql.SQL("SELECT file, part, bytes FROM {} WHERE file = ANY(%s) ORDER BY file, part").format(
            self._records_table
        )
        for name, part, data in self._conn.execute(query, (list(RECORD_FILES),), binary=True):
            if name not in parts or part != len(parts[name]):
                raise ValueError("the record files' parts are not the ones written")
            parts[name].append(data)
        return {name: b"".join(chunks) for name, chunks in parts.items()}

    def verify_record_files(self) -> None:
        """IndexCorruptError when a record file's (or the inverted file's) bytes are not those the build
        hashed (format 4), each file read a part at a time and hashed as it comes, as the inverted file's
        read checks it."""
        if self.manifest["format_version"] < RECORDS_AS_FILES:
            return
        names = [*RECORD_FILES, *(VECTOR_FILES if all(n in self.manifest["files"] for n in VECTOR_FILES) else ())]
        try:
            with self._lock:
                _stored_files(self._conn, self._records_table, self.manifest, names, keep=False)
        except ValueError as exc:
            raise IndexCorruptError(f"index at {self.location} is corrupt: {exc}; rebuild it") from None

    def _configured_ef_search(self) -> int:
        """hnsw.ef_search as the connection was configured (`?options=-c hnsw.ef_search=400` in the URL,
        ALTER DATABASE … SET), or 0 when it was not."""
        value = _one(self._conn.execute("SELECT current_setting('hnsw.ef_search', true)"))[0]
        return int(value) if value and value.isdigit() else 0

    def _lexical_apart(self) -> Future[LexicalIndex | None]:
        """The generation's lexical index, read on a connection of its own while this one reads the records."""

        def read() -> LexicalIndex | None:
            with self._store.connect(autocommit=True) as conn:
                return _stored_lexical(conn, self.generation)

        return started(read)

    def _hold_current(self) -> tuple[int, dict]:
        """Find the current generation and hold it (a shared lock) so no build drops it while we read."""
        for _ in range(5):
            current = _current(self._conn, self._store.name)
            if current is None:
                raise IndexMissingError(f"no index at {self.location}; run: python -m indexer build")
            if self._hold(current[0]):
                register_vector(self._conn)
                return current[0], check_format(current[1], self.location, FORMAT_VERSION)
        raise IndexerError(f"index at {self.location} keeps changing while it is opened; try again")

    def _hold(self, generation: int) -> bool:
        self._conn.execute("SELECT pg_advisory_lock_shared(%s, %s)", (_LOCK_READ, generation))
        # a build may have dropped it just before we locked; now that we hold it, it stays
        if self._conn.execute(
            sql.SQL("SELECT 1 FROM {} WHERE id = %s").format(sql.Identifier(_GENERATIONS)), (generation,)
        ).fetchone():
            return True
        self._conn.execute("SELECT pg_advisory_unlock_shared(%s, %s)", (_LOCK_READ, generation))
        return False

    def _reconnect(self) -> None:
        self.close()
        self._conn = self._store.connect(autocommit=True)
        self._closer = weakref.finalize(self, self._conn.close)
        self._settings = None
        if not self._hold(self.generation):
            raise IndexStaleError(f"index at {self.location} was rebuilt while the connection was lost; reopen it")
        register_vector(self._conn)

    def is_current(self) -> bool:
        """Always: the generation is held (a shared lock) while this object lives, no build rewrites or
        drops a held generation, and the database keeps its rows consistent. A newer build is picked
        up when the source changes, as with the folder store."""
        return True

    def close(self) -> None:
        if self._ivf_read is not None:
            self._ivf_read.stop()
        self._closer()

    def _query(
        self, query: sql.Composed, params: tuple = (), hnsw_depth: int | None = None, binary: bool = False
    ) -> list[tuple]:
        """Run one query on the held connection, reconnecting once if the server dropped it."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    self._apply_settings(hnsw_depth)
                    return self._conn.execute(query, params, binary=binary).fetchall()
                except psycopg.OperationalError:
                    if attempt == 2 or not self._conn.broken and not self._conn.closed:
                        raise
                    self._reconnect()
        raise AssertionError("unreachable")

    def _apply_settings(self, hnsw_depth: int | None) -> None:
        """An HNSW scan returns at most ef_search rows, so ef_search must cover the depth asked for;
        past pgvector's limit the index is bypassed and the answer is exact."""
        if not self.hnsw or hnsw_depth is None:
            return
        if hnsw_depth <= HNSW_MAX_EF_SEARCH:
            settings = (max(self.ef_search, hnsw_depth), True)
        else:
            settings = (self.ef_search, False)
        if settings != self._settings:
            self._conn.execute(
                f"SET hnsw.ef_search = {settings[0]}; SET enable_indexscan = {'on' if settings[1] else 'off'}"
            )
            self._settings = settings

    # ---- what search needs from a store (see store.StoredIndex) ----

    @property
    def row_count(self) -> int:
        return self._row_count

    def field_cosines(self, query_vectors: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best question and answer cosines over the query vectors for these record positions
        (answer is NaN where there is none), computed in the database."""
        query_vectors = np.asarray(query_vectors, dtype=np.float32)
        best = sql.SQL("-LEAST({})").format(
            sql.SQL(", ").join(sql.SQL("embedding <#> %s") for _ in range(len(query_vectors)))
        )
        wanted, slot = np.unique(np.asarray(positions, dtype=np.int64), return_inverse=True)
        everything = len(wanted) == len(self.records)  # the exhaustive path: no filter to evaluate
        found = self._query(
            sql.SQL("SELECT position, field = 'question', {} FROM {}{}").format(
                best, self._rows_table, sql.SQL("" if everything else " WHERE position = ANY(%s)")
            ),
            (*query_vectors, *(() if everything else (wanted.tolist(),))),
        )
        cosines = np.full((2, len(wanted)), np.nan, dtype=np.float32)  # not one per record: 8 MB at a million
        if found:
            position, is_question, cosine = (np.asarray(column) for column in zip(*found))
            cosines[np.where(is_question.astype(bool), 0, 1), np.searchsorted(wanted, position)] = cosine
        return cosines[0][slot], cosines[1][slot]

    def field_cosines_each(
        self, query_vector_sets: Sequence[np.ndarray], positions: np.ndarray
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """`field_cosines` of each set of query vectors, scored in the client as the folder store scores
        them, on the positions' vectors fetched once (and kept, for a set of at most `KEPT_POSITIONS`)."""
        if not query_vector_sets:
            return []
        wanted, slot = np.unique(np.asarray(positions, dtype=np.int64), return_inverse=True)
        question, answer = (
            nan_where_absent(best_inner_products(vectors, query_vector_sets), present)[:, slot]
            for vectors, present in self._field_vectors(wanted)
        )
        return list(zip(question, answer))

    def _field_vectors(self, wanted: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """For the question rows, then the answer rows, of these distinct positions: the vectors of those
        that have one, and which have one. The last two small sets are kept: every query scores the same
        spread sample (search.mean_dense_score) twice, and a batch over a section also the section's."""
        key = wanted.tobytes()
        kept = self._kept_vectors
        if key in kept:
            return kept[key]
        found = self._query(
            sql.SQL("SELECT position, field = 'question', embedding FROM {} WHERE position = ANY(%s)").format(
                self._rows_table
            ),
            (wanted.tolist(),),
            binary=True,
        )
        vectors = np.zeros((2, len(wanted), int(self.manifest["dimension"])), dtype=np.float32)
        present = np.zeros((2, len(wanted)), dtype=bool)
        for position, is_question, vector in found:
            field, slot = (0 if is_question else 1), int(np.searchsorted(wanted, position))
            vectors[field, slot], present[field, slot] = vector.to_numpy(), True
        fields = [(vectors[field][present[field]], present[field]) for field in (0, 1)]
        if len(wanted) <= KEPT_POSITIONS:  # a new dict, swapped in whole: threads may share this index
            self._kept_vectors = {**dict(list(kept.items())[-1:]), key: fields}
        return fields

    def field_cosines_paired(self, query_vectors: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See `LoadedIndex.field_cosines_paired` (one query each, in the database)."""
        question = np.full(positions.shape, np.nan, dtype=np.float32)
        answer = np.full(positions.shape, np.nan, dtype=np.float32)
        for i, (vector, chosen) in enumerate(zip(query_vectors, positions)):
            valid = chosen >= 0
            if valid.any():  # no round trip for a query left without candidates
                question[i, valid], answer[i, valid] = self.field_cosines(vector[None, :], chosen[valid])
        return question, answer

    def nearest_positions(self, query_vectors: np.ndarray, depth: int) -> np.ndarray:
        """Record positions owning the `depth` nearest rows of any query vector: from the inverted file in
        the client once it is read, else through the HNSW index when the generation has one, else exact."""
        ivf = self.client_ivf()
        if ivf is not None:
            _, rows = ivf.index.search(np.ascontiguousarray(query_vectors, dtype=np.float32), depth)
            return ivf.positions[rows[rows >= 0]]  # FAISS pads with -1 when it finds fewer
        found = [
            self._query(nearest_query(self._rows_table), (vector, depth), hnsw_depth=depth)
            for vector in np.asarray(query_vectors, dtype=np.float32)
        ]
        return np.asarray([position for rows in found for (position,) in rows], dtype=np.int64)

    def nearest_positions_each(self, query_vectors: np.ndarray, depth: int) -> list[np.ndarray]:
        """Per query vector, the positions owning its `depth` nearest rows: batched over the inverted file as
        the folder store batches them (for `IVF_WAIT_MIN_QUERIES` or more, waited for: a database query
        each takes ~15 ms at a million entries), else one query each."""
        ivf = self.client_ivf(wait=len(query_vectors) >= IVF_WAIT_MIN_QUERIES)
        if ivf is None:
            return [self.nearest_positions(vector[None, :], depth) for vector in np.asarray(query_vectors)]
        queries = np.ascontiguousarray(query_vectors, dtype=np.float32)
        rows = ivf_nearest_rows(ivf.index, None, queries, min(depth, self._row_count))  # read from its codes
        return [ivf.positions[found[found >= 0]] for found in rows]

    def question_vector(self, position: int) -> np.ndarray:
        ((vector,),) = self._query(
            sql.SQL("SELECT embedding FROM {} WHERE position = %s AND field = 'question'").format(self._rows_table),
            (int(position),),
        )
        return vector.to_numpy()

    def _all_rows(self, columns: str) -> list[tuple]:
        return self._query(sql.SQL("SELECT {} FROM {} ORDER BY row_number").format(sql.SQL(columns), self._rows_table))

    def entry_vectors(self) -> np.ndarray:
        """One normalised vector per record: the mean of its question and answer vectors (the question
        alone when the answer is missing), for topics and near-duplicates."""
        vectors = np.zeros((len(self.records), int(self.manifest["dimension"])), dtype=np.float32)
        for position, vector in self._all_rows("position, embedding"):
            vectors[position] += vector.to_numpy()
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def stored_rows(self, model_fp: str) -> StoredRows | None:
        """The rows and their vectors, for the next build with the same model (read from the database)."""
        if self.manifest.get("model_fingerprint") != model_fp:
            return None
        found = self._all_rows("position, field, key, embedding")
        rows = RowTable(
            np.array([row[0] for row in found], dtype=np.int32), [row[1] for row in found], [row[2] for row in found]
        )
        vectors = np.array([row[3].to_numpy() for row in found], dtype=np.float32).reshape(len(found), -1)
        return StoredRows(rows, vectors, *rows.record_rows(len(self.records)))

    parse_map = None  # not kept here: every build over this store parses its sources in full


@dataclass(frozen=True)
class ClientIvf:
    """An inverted file of a generation's vectors, searched in the client, and each row's record position."""

    index: faiss.Index
    positions: np.ndarray  # int64, one per row


class _Stopped(Exception):
    """The read was stopped: the index that wanted it was closed."""


class _InvertedFileRead:
    """The read of a generation's inverted file on a daemon thread, started when nearest rows are asked for
    a second time, or for a batch (a load that never searches, as `info` or a build's look at the previous
    generation, reads nothing; nor does a one-off `search`, whose one query the read slowed from 0.23 to
    1.1 s at a million entries), and stopped by `stop()`. It holds no reference to the loaded index, so
    garbage collection can close that while the read runs; its connection is its own."""

    def __init__(self, store: PgStore, records_table: sql.Identifier, manifest: dict, row_count: int) -> None:
        self._store, self._records_table, self._manifest, self._row_count = store, records_table, manifest, row_count
        self._stopped = threading.Event()
        self._starting = threading.Lock()
        self._future: Future[ClientIvf | None] | None = None
        self._asked = False

    def get(self, wait: bool) -> ClientIvf | None:
        with self._starting:
            if self._future is None and not self._stopped.is_set() and (self._asked or wait):
                self._future = started_unawaited(self._read)
            self._asked = True
            future = self._future
        if future is None or not (wait or future.done()):
            return None
        try:
            return future.result(timeout=IVF_WAIT_S)
        except TimeoutError:  # a stalled server: the database answers meanwhile
            return None

    def stop(self) -> None:
        """Stop the read (at its next part) and let go of what it read."""
        self._stopped.set()
        with self._starting:
            self._future = None

    def _read(self) -> ClientIvf | None:
        """The inverted file and row positions; None (and one warning) when they cannot be read whole."""
        import faiss

        try:
            with self._store.connect(autocommit=True) as conn:
                files = _stored_files(conn, self._records_table, self._manifest, VECTOR_FILES, self._stopped)
            ivf = set_probes(faiss.deserialize_index(np.frombuffer(files[IVF_FILE], dtype=np.uint8)))
            positions = np.frombuffer(files[ROW_POSITIONS_FILE], dtype="<i4").astype(np.int64)
            if ivf.ntotal != self._row_count or len(positions) != self._row_count:
                raise ValueError("the inverted file does not hold the generation's rows")
            return ClientIvf(ivf, positions)
        except _Stopped:
            return None
        except Exception as exc:  # any failure (MemoryError for ~1.5 GB included) leaves search to the database
            if not self._stopped.is_set():
                reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
                logging.getLogger("indexer").warning(
                    "index at %s: its inverted file cannot be read (%s); nearest rows come from the database",
                    self._store.location,
                    reason,
                )
            return None


def _stored_files(
    conn: psycopg.Connection,
    records_table: sql.Identifier,
    manifest: dict,
    names: Sequence[str],
    stopped: threading.Event | None = None,
    keep: bool = True,
) -> dict[str, bytearray]:
    """Files stored in parts in the records table, each assembled in one buffer of the size the manifest
    gives (`keep` False: only checked), hashed as the parts arrive. One part per query: psycopg holds a
    whole result in the client, which for the inverted file of a million entries would be ~1.5 GB more.
    ValueError when a file is not whole or fails its sha256; `_Stopped` once `stopped` is set."""
    files = {name: bytearray(int(manifest["files"][name]["bytes"]) if keep else 0) for name in names}
    filled, digests = dict.fromkeys(names, 0), {name: hashlib.sha256() for name in names}
    parts = conn.execute(
        sql.SQL("SELECT file, part FROM {} WHERE file = ANY(%s) ORDER BY file, part").format(records_table),
        (list(names),),
    ).fetchall()
    expected = dict.fromkeys(names, 0)
    for name, part in parts:
        if stopped is not None and stopped.is_set():
            raise _Stopped
        (data,) = _one(
            conn.execute(
                sql.SQL("SELECT bytes FROM {} WHERE file = %s AND part = %s").format(records_table),
                (name, part),
                binary=True,
            )
        )
        end = filled[name] + len(data)
        if part != expected[name] or end > int(manifest["files"][name]["bytes"]):
            raise ValueError(f"{name}'s parts are not the ones written")
        if keep:
            files[name][filled[name] : end] = data
        digests[name].update(data)
        filled[name], expected[name] = end, part + 1
    for name in names:
        entry = manifest["files"][name]
        if filled[name] != int(entry["bytes"]) or digests[name].hexdigest() != entry["sha256"]:
            raise ValueError(f"{name} fails its checksum")
    return files


def _stored_lexical(conn: psycopg.Connection, generation: int) -> LexicalIndex | None:
    """A generation's saved lexical index; None for one written before they were saved (format 1).
    Fetched in binary: as text a bytea comes as hex, twice its size, which took 0.26-0.40 s instead of
    0.07-0.12 s for the 30 MB of 100,000 entries (and ~9x that at a million)."""
    try:
        row = conn.execute(
            sql.SQL("SELECT lexical FROM {} WHERE id = %s").format(sql.Identifier(_GENERATIONS)),
            (generation,),
            binary=True,
        ).fetchone()
        if row is None:  # the generation's row is gone: a TypeError, which `_open` reports as corruption
            raise TypeError("no row for the generation")
        (blob,) = row
    except psycopg.errors.UndefinedColumn:
        return None
    return None if blob is None else lexical_from_blob(bytes(blob))


def nearest_query(rows_table: sql.Composable) -> sql.Composed:
    """Rows nearest one vector: `<#>` is the negative inner product, so ascending is best first."""
    return sql.SQL("SELECT position FROM {} ORDER BY embedding <#> %s LIMIT %s").format(rows_table)
