"""The PostgreSQL store: the store-level behaviour of the FAISS store (both stores run the same tests),
dense results equal to FAISS on the dev queries, HNSW above its threshold, readers that keep their
generation, and rebuilds under concurrent readers with zero errors.

A real PostgreSQL 16 with pgvector (the `pgserver` package) starts once per session in a temp folder
and is stopped at the end. This file is also the worker script of the concurrency test
(`python tests/test_pgstore.py rebuild|query ...`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from urllib.parse import quote

import numpy as np
import psycopg
import pytest
from core_fixtures import CORPUS, ExplodingEncoder, FakeEncoder

from indexer.documents.parse import parse_corpus, source_files
from indexer.documents.record_table import RecordTable
from indexer.documents.records import Record
from indexer.errors import IndexCorruptError, IndexerError, IndexMissingError, IndexStaleError, IndexVersionError
from indexer.indexing.build import build, embedding_texts, ensure_index
from indexer.retrieval import search as search_module
from indexer.retrieval.lexical import LexicalIndex
from indexer.stores import postgres
from indexer.stores.disk import FaissStore, RowTable, current_path
from indexer.stores.postgres import FORMAT_VERSION, PgStore, give_build_memory, nearest_query
from indexer.stores.spec import open_store
from indexer.stores.vectors import best_inner_products

MODEL = "fake-model"
ROOT = Path(__file__).resolve().parents[1]
DEV_QUERIES = ROOT / "eval/dev_queries.jsonl"


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A throwaway PostgreSQL server. Its folder is not under pytest's tmp folder: as root, pgserver
    runs postgres as another user and opens the folder's parents to it, and every new pytest session
    closes pytest-of-root again (0700), which would lock a running server out of its data."""
    folder = Path(tempfile.mkdtemp(prefix="indexer-pgdata-"))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")  # pgserver's lock folder falls back to /tmp
        import pgserver

        server = pgserver.get_server(folder, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def fresh_pg_store(url: str, **options) -> PgStore:
    return PgStore(url, name=f"test-{uuid.uuid4().hex[:12]}", **options)


@pytest.fixture(params=["faiss", "postgresql"])
def new_store(request, tmp_path):
    """A factory of empty stores of one kind (each call a new index)."""

    def make():
        if request.param == "faiss":
            return FaissStore(tmp_path / f"index-{uuid.uuid4().hex[:8]}")
        return fresh_pg_store(request.getfixturevalue("pg_url"))

    return make


def edit_manifest(store, **changes) -> None:
    if isinstance(store, FaissStore):
        path = current_path(store.index_dir) / "manifest.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
        return
    with store.connect(autocommit=True) as conn:
        conn.execute(
            "UPDATE indexer_generations SET manifest = manifest || %s::jsonb WHERE index_name = %s AND is_current",
            (json.dumps(changes), store.name),
        )


def damage(store) -> None:
    """Lose one vector row behind the store's back."""
    if isinstance(store, FaissStore):
        (current_path(store.index_dir) / "rows.npy").write_text("{}")
        return
    with store.connect(autocommit=True) as conn:
        generation = conn.execute(
            "SELECT id FROM indexer_generations WHERE index_name = %s AND is_current", (store.name,)
        ).fetchone()[0]
        conn.execute(f"DELETE FROM indexer_rows_{generation} WHERE row_number = 7")


def current_generation(store: PgStore) -> int:
    loaded = store.load()
    loaded.close()
    return loaded.generation


def generations_left(store: PgStore, since: int) -> dict[int, int]:
    """generation id → number of its tables still in the database, for ids from `since` on, with the
    ids the catalog still lists for this store (so orphaned tables would show up too)."""
    with store.connect(autocommit=True) as conn:
        listed = {
            g: 0
            for (g,) in conn.execute(
                "SELECT id FROM indexer_generations WHERE index_name = %s AND id >= %s", (store.name, since)
            )
        }
        for (table,) in conn.execute("SELECT tablename FROM pg_tables WHERE tablename ~ '^indexer_(rows|records)_'"):
            generation = int(table.rsplit("_", 1)[1])
            if generation >= since:
                listed[generation] = listed.get(generation, 0) + 1
    return listed


# ---- the same store-level behaviour from both stores --------------------------------------------


def test_round_trip_answers_like_a_brute_force_oracle(new_store, fake_encoder):
    store = new_store()
    assert store.read_manifest() is None
    with pytest.raises(IndexMissingError):
        store.load()
    build([CORPUS], store, lambda: fake_encoder, MODEL)
    loaded = store.load()
    records = [r for report in parse_corpus(source_files([CORPUS])) for r in report.records]
    assert loaded.records == records and loaded.position_of[records[5].id] == 5
    manifest = loaded.manifest
    assert (manifest["record_count"], manifest["missing_count"], manifest["dimension"]) == (82, 10, 16)
    assert loaded.row_count == 154 and store.read_manifest()["built_at"] == manifest["built_at"]

    positions, fields, texts = embedding_texts(records)
    vectors = FakeEncoder().encode(texts)
    queries = FakeEncoder().encode(["what is overfitting", "gradient descent learning rate"])
    cosines = vectors @ queries.T
    expected_question = np.full(82, np.nan)
    expected_answer = np.full(82, np.nan)
    for row, (position, field) in enumerate(zip(positions, fields)):
        (expected_question if field == "question" else expected_answer)[position] = cosines[row].max()
    for chosen in (np.arange(82), np.array([40, 3, 31, 81])):
        question, answer = loaded.field_cosines(queries, chosen)
        np.testing.assert_allclose(question, expected_question[chosen], atol=1e-6)
        np.testing.assert_allclose(answer, expected_answer[chosen], atol=1e-6)  # NaN where missing, both
    nearest_rows = np.argsort(-cosines, axis=0, kind="stable")[:20].T.ravel()
    expected_nearest = sorted(np.asarray(positions)[nearest_rows].tolist())
    assert sorted(loaded.nearest_positions(queries, 20).tolist()) == expected_nearest
    each = [sorted(np.asarray(positions)[np.argsort(-cosines[:, i], kind="stable")[:20]].tolist()) for i in range(2)]
    assert [sorted(found.tolist()) for found in loaded.nearest_positions_each(queries, 20)] == each
    np.testing.assert_allclose(loaded.question_vector(40), vectors[40], atol=1e-7)
    entries = loaded.entry_vectors()
    assert entries.shape == (82, 16)
    np.testing.assert_allclose(np.linalg.norm(entries, axis=1), 1, atol=1e-6)


def test_stored_vectors_mean_unchanged_texts_are_not_embedded_again(new_store, corpus_copy, fake_encoder):
    store = new_store()
    build([corpus_copy], store, lambda: fake_encoder, MODEL)
    assert len(fake_encoder.encoded) == 154
    stored = store.load().stored_rows(store.read_manifest()["model_fingerprint"])
    assert stored is not None and len(stored.rows.keys) == len(stored.vectors) == 154
    assert store.load().stored_rows("another model") is None
    text = corpus_copy.read_text(encoding="utf-8")
    corpus_copy.write_text(
        text.replace("Backpropagation is a technique", "Backpropagation is a method"), encoding="utf-8"
    )
    fake_encoder.encoded.clear()
    summary = build([corpus_copy], store, lambda: fake_encoder, MODEL)
    assert len(fake_encoder.encoded) == summary.embedded == 1 and summary.reused == 153


def test_edited_source_or_other_model_makes_the_index_stale(new_store, corpus_copy, fake_encoder):
    store = new_store()
    build([corpus_copy], store, lambda: fake_encoder, MODEL)
    notices: list[str] = []
    ensure_index([corpus_copy], store, lambda: fake_encoder, MODEL, notify=notices.append)
    assert notices == []
    entry = "**80. What is saddle point?**\n\n*Solution*\n"
    corpus_copy.write_text(
        corpus_copy.read_text(encoding="utf-8").replace(entry, entry + "\nA flat point.\n"), encoding="utf-8"
    )
    loaded = ensure_index([corpus_copy], store, lambda: fake_encoder, MODEL, notify=notices.append)
    assert len(notices) == 1 and "source changed" in notices[0] and store.location in notices[0]
    assert loaded.manifest["missing_count"] == 9
    ensure_index([corpus_copy], store, lambda: fake_encoder, "other-model", notify=notices.append)
    assert "model" in notices[1] and store.read_manifest()["model"] == "other-model"


def test_manifest_from_a_newer_format_is_refused_not_overwritten(new_store, fake_encoder):
    store = new_store()
    build([CORPUS], store, lambda: fake_encoder, MODEL)
    edit_manifest(store, format_version=99)
    with pytest.raises(IndexVersionError, match="newer version"):
        ensure_index([CORPUS], store, lambda: fake_encoder, MODEL)
    with pytest.raises(IndexVersionError):
        store.load()


def test_damaged_index_is_detected_and_rebuilt_with_a_notice(new_store, fake_encoder):
    store = new_store()
    build([CORPUS], store, lambda: fake_encoder, MODEL)
    damage(store)
    with pytest.raises(IndexCorruptError, match="corrupt"):
        store.load()
    notices: list[str] = []
    assert len(ensure_index([CORPUS], store, lambda: fake_encoder, MODEL, notify=notices.append).records) == 82
    assert len(notices) == 1 and "corrupt" in notices[0]


def test_a_failed_build_leaves_the_previous_index_usable(new_store, tmp_path, fake_encoder):
    store = new_store()
    build([CORPUS], store, lambda: fake_encoder, MODEL)
    before = store.read_manifest()["built_at"]

    edited = tmp_path / "edited.md"
    edited.write_text(CORPUS.read_text(encoding="utf-8").replace("Deep Learning", "Deep Lerning"), encoding="utf-8")
    with pytest.raises(RuntimeError):
        build([edited], store, ExplodingEncoder, MODEL)
    assert store.read_manifest()["built_at"] == before and len(store.load().records) == 82


# ---- PostgreSQL only -----------------------------------------------------------------------------


def records_layout(store: PgStore) -> list[str]:
    """The columns of the current generation's records table."""
    with store.connect(autocommit=True) as conn:
        return [
            name
            for (name,) in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 ORDER BY attnum",
                (f"indexer_records_{current_generation(store)}",),
            )
        ]


def to_jsonb_records(store: PgStore, format_version: int) -> None:
    """Rewrite the current generation's records as formats 1-3 kept them: one jsonb row per record."""
    generation = current_generation(store)
    records = list(store.load().records)
    with store.connect(autocommit=True) as conn, conn.transaction():
        conn.execute(f"DROP TABLE indexer_records_{generation}")
        conn.execute(f"CREATE TABLE indexer_records_{generation} (position int PRIMARY KEY, record jsonb NOT NULL)")
        for position, record in enumerate(records):
            conn.execute(
                f"INSERT INTO indexer_records_{generation} VALUES (%s, %s)", (position, json.dumps(record.to_dict()))
            )
        conn.execute(
            "UPDATE indexer_generations SET manifest = (manifest - 'files') || %s::jsonb WHERE id = %s",
            (json.dumps({"format_version": format_version}), generation),
        )


@pytest.mark.parametrize("old_format", [2, 3])
def test_an_index_of_the_jsonb_layout_is_read_and_rebuilt_from_its_cached_vectors(pg_url, fake_encoder, old_format):
    store = fresh_pg_store(pg_url)
    build([CORPUS], store, lambda: fake_encoder, MODEL)
    records = list(store.load().records)
    assert records_layout(store) == ["file", "part", "bytes"]
    to_jsonb_records(store, old_format)
    old = store.load()  # formats 1-3: read, so the rebuild below reuses its vectors
    assert (
        records_layout(store) == ["position", "record"]
        and old.records == records
        and not isinstance(old.records, RecordTable)
    )
    old.close()
    notices: list[str] = []
    upgraded = ensure_index([CORPUS], store, ExplodingEncoder, MODEL, notify=notices.append)  # no encoding allowed
    assert len(notices) == 1 and "older version" in notices[0]
    assert upgraded.manifest["format_version"] == FORMAT_VERSION == 4 and upgraded.records == records
    assert records_layout(store) == ["file", "part", "bytes"] and isinstance(upgraded.records, RecordTable)


def test_a_jsonb_records_table_under_a_format_4_manifest_is_corrupt(pg_url, fake_encoder):
    store = fresh_pg_store(pg_url)
    build([CORPUS], store, lambda: fake_encoder, MODEL)
    to_jsonb_records(store, FORMAT_VERSION)
    with pytest.raises(IndexCorruptError, match="corrupt"):
        store.load()


def unusual_records() -> list[Record]:
    return [
        Record(
            1,
            "Qu'est-ce que l'été ? 🌞",
            "Réponse — naïve: 日本語, עברית, Ελληνικά",
            "ok",
            3,
            "Section é",
            "a.md",
            "**1. Q?**",
        ),
        Record(2, "What is missing?", "", "missing", 7, "", "a.md", ""),
        Record(
            3, "Only a link?", "[see](https://example.org/ü)", "link_only", 9, "Section é", "b.md", "3. Only a link?"
        ),
        Record(4, "", "x" * 300 + "é" * 200 + "\r\n\x00\t", "ok", 2**40, "Ω" * 50, "b.md", "🌞" * 40),
        Record(5, "Empty answer, status ok?", "", "ok", 0),
    ]


def write_records(store: PgStore, records: list[Record]) -> tuple[np.ndarray, np.ndarray]:
    """Write these records with random unit vectors; the (question row, answer row or -1) of each
    record, and the vectors."""
    answered = [i for i, r in enumerate(records) if r.answer]
    positions = np.asarray(list(range(len(records))) + answered, dtype=np.int32)
    fields = ["question"] * len(records) + ["answer"] * len(answered)
    vectors = np.random.default_rng(0).standard_normal((len(positions), 16), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    manifest = {
        "dimension": 16,
        "record_count": len(records),
        "question_vectors": len(records),
        "answer_vectors": len(answered),
    }
    with store.lock():
        store.write(
            records,
            RowTable(positions, fields, [f"k{i}" for i in range(len(positions))]),
            vectors,
            manifest,
            LexicalIndex.from_records(records),
        )
    answer_row = np.full(len(records), -1)
    answer_row[answered] = len(records) + np.arange(len(answered))
    return np.stack([np.arange(len(records)), answer_row], axis=1), vectors


def test_records_round_trip_through_the_record_files_in_parts(pg_url, monkeypatch):
    monkeypatch.setattr(postgres, "RECORD_PART_BYTES", 100)  # so the texts span several parts
    records = unusual_records()
    store = fresh_pg_store(pg_url)
    write_records(store, records)
    loaded = store.load()
    assert isinstance(loaded.records, RecordTable) and loaded.records == records
    assert [loaded.records[i] for i in (4, 0, 3)] == [records[4], records[0], records[3]]
    assert loaded.position_of == {1: 0, 2: 1, 3: 2, 4: 3, 5: 4} and loaded.row_count == 8
    with store.connect(autocommit=True) as conn:
        parts = dict(
            conn.execute(f"SELECT file, count(*) FROM indexer_records_{loaded.generation} GROUP BY file").fetchall()
        )
    assert parts["record_texts.bin"] == -(-loaded.manifest["files"]["record_texts.bin"]["bytes"] // 100) > 5
    store.verify()


def test_a_large_index_reads_its_lexical_index_on_a_second_connection_to_the_same_effect(pg_url, monkeypatch):
    records = unusual_records()
    store = fresh_pg_store(pg_url)
    write_records(store, records)
    opened: list[bool] = []
    connect = PgStore.connect
    monkeypatch.setattr(PgStore, "connect", lambda self, **kw: opened.append(True) or connect(self, **kw))
    alone = store.load()
    assert len(opened) == 1  # below the threshold: one connection reads everything
    monkeypatch.setattr(postgres, "LEXICAL_APART_RECORDS", len(records))
    apart = store.load()
    assert len(opened) == 3  # the held connection, and one that read the lexical index beside it
    assert apart.lexical is not None and alone.lexical is not None
    for name, array in alone.lexical.to_arrays().items():
        assert np.array_equal(apart.lexical.to_arrays()[name], array), name
    assert apart.records == records
    alone.close()
    apart.close()
    with store.connect(autocommit=True) as conn:  # the generation's row without its lexical index: corrupt
        conn.execute("UPDATE indexer_generations SET lexical = 'not an index' WHERE id = %s", (apart.generation,))
    with pytest.raises(IndexCorruptError, match="is corrupt"):
        store.load()


def test_positions_scored_for_many_queries_are_scored_in_the_client_from_vectors_fetched_once(pg_url, monkeypatch):
    records = unusual_records()  # records 2 and 5 (positions 1 and 4) have no answer row
    store = fresh_pg_store(pg_url)
    rows, vectors = write_records(store, records)
    loaded = store.load()
    rng = np.random.default_rng(3)
    sets = [rng.standard_normal((count, 16), dtype=np.float32) for count in (1, 2, 1)]
    positions = np.array([4, 0, 0, 3, 1, 3])  # out of order, repeated
    queries: list[str] = []
    run = loaded._query
    monkeypatch.setattr(
        loaded, "_query", lambda query, *args, **kw: queries.append(str(query)) or run(query, *args, **kw)
    )
    scored = loaded.field_cosines_each(sets, positions)
    assert len(queries) == 1
    for query_vectors, (question, answer) in zip(sets, scored):  # and what the database computes
        in_sql = loaded.field_cosines(query_vectors, positions)
        np.testing.assert_allclose(question, in_sql[0], atol=1e-6)
        np.testing.assert_allclose(answer, in_sql[1], atol=1e-6)  # NaN where the database has NaN
        assert np.isnan(answer[[0, 4]]).all() and not np.isnan(answer[[1, 2, 3, 5]]).any()
    queries.clear()
    sample = np.unique(positions)  # sorted and distinct, as search.py's spread sample: the same rows, kept
    for field, got in enumerate(zip(*loaded.field_cosines_each(sets, sample))):
        chosen = rows[sample, field]  # what the folder store computes from the same rows, to the bit
        expected = np.full((len(sets), len(sample)), np.nan, dtype=np.float32)
        expected[:, chosen >= 0] = best_inner_products(vectors[chosen[chosen >= 0]], sets)
        assert np.array_equal(np.array(got), expected, equal_nan=True)
    assert queries == []
    loaded.field_cosines_each(sets, np.array([2]))
    again = loaded.field_cosines_each(sets, positions)
    assert len(queries) == 1  # the first set's vectors were kept beside the second's
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1], equal_nan=True) for a, b in zip(scored, again))
    monkeypatch.setattr(postgres, "KEPT_POSITIONS", 3)
    loaded.field_cosines_each(sets, np.array([0, 1, 2, 3]))
    loaded.field_cosines_each(sets, np.array([0, 1, 2, 3]))
    assert len(queries) == 3  # a set larger than KEPT_POSITIONS is fetched every time
    assert loaded.field_cosines_each([], positions) == []
    loaded.close()


def test_the_database_scores_repeated_positions_once_each_and_all_of_them(pg_url):
    records = unusual_records()
    store = fresh_pg_store(pg_url)
    rows, vectors = write_records(store, records)
    loaded = store.load()
    query = np.random.default_rng(4).standard_normal((1, 16), dtype=np.float32)
    for positions in ([0, 0, 1, 2, 3], [0, 0, 2, 3, 4], [4, 3, 2, 1, 0]):  # as many as records, not all of them
        question, answer = loaded.field_cosines(query, np.array(positions))
        expected = (vectors[rows[positions, 0]] @ query.T)[:, 0]
        np.testing.assert_allclose(question, expected, atol=1e-6)
        assert np.isnan(answer).tolist() == [rows[p, 1] < 0 for p in positions]
    loaded.close()


def damage_record_file(store: PgStore, how: str) -> None:
    generation = current_generation(store)
    changes = {
        "truncated texts": "SET bytes = substring(bytes from 1 for length(bytes) - 1) WHERE file = 'record_texts.bin'",
        "junk records.npy": "SET bytes = decode(repeat('ab', length(bytes)), 'hex') WHERE file = 'records.npy'",
        "junk values": "SET bytes = overlay(bytes placing '\\x7b7b'::bytea from 1) WHERE file = 'record_values.json'",
        "a text end moved": "SET bytes = overlay(bytes placing '\\xff'::bytea from length(bytes) - 2) "
        "WHERE file = 'records.npy'",
        "a missing part": "SET part = 7 WHERE file = 'record_values.json'",
        "a part more": None,
    }
    with store.connect(autocommit=True) as conn:
        if changes[how] is None:
            conn.execute(f"INSERT INTO indexer_records_{generation} VALUES ('record_texts.bin', 1, 'more')")
        else:
            assert conn.execute(f"UPDATE indexer_records_{generation} {changes[how]}").rowcount == 1


@pytest.mark.parametrize(
    "how",
    ["truncated texts", "junk records.npy", "junk values", "a text end moved", "a missing part", "a part more"],
)
def test_a_damaged_record_file_is_reported_corrupt_and_rebuilt(pg_url, fake_encoder, how):
    store = fresh_pg_store(pg_url)
    build([CORPUS], store, lambda: fake_encoder, MODEL)
    damage_record_file(store, how)
    with pytest.raises(IndexCorruptError, match="corrupt"):
        store.load()
    with pytest.raises(IndexCorruptError, match="corrupt"):
        store.verify()
    notices: list[str] = []
    assert len(ensure_index([CORPUS], store, lambda: fake_encoder, MODEL, notify=notices.append).records) == 82
    assert len(notices) == 1 and "corrupt" in notices[0]


def test_a_changed_text_byte_loads_but_fails_verify(pg_url, fake_encoder):
    """A load checks the record files' sizes and shapes; `verify` (the `info` command) hashes them."""
    store = fresh_pg_store(pg_url)
    build([CORPUS], store, lambda: fake_encoder, MODEL)
    generation = current_generation(store)
    with store.connect(autocommit=True) as conn:
        conn.execute(
            f"UPDATE indexer_records_{generation} SET bytes = overlay(bytes placing '?'::bytea from 10) "
            "WHERE file = 'record_texts.bin'"
        )
    assert len(store.load().records) == 82
    with pytest.raises(IndexCorruptError, match="record_texts.bin fails its checksum"):
        store.verify()


def test_open_store_picks_the_store_from_the_spec(tmp_path, pg_url):
    assert isinstance(open_store(tmp_path / "index"), FaissStore)
    store = open_store(pg_url + "#uploads-1")
    assert isinstance(store, PgStore) and store.name == "uploads-1" and store.location.endswith("#uploads-1")
    assert PgStore("postgresql://me:secret@db.example/qa").location == "postgresql://me:***@db.example/qa"


def test_faiss_store_never_imports_psycopg():
    code = (
        "import sys; from indexer.stores.spec import open_store; open_store('index'); print('psycopg' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "False"


def test_unreachable_server_is_a_one_line_error():
    with pytest.raises(IndexerError, match="cannot connect to PostgreSQL at postgresql://nobody@127.0.0.1:9/qa"):
        PgStore("postgresql://nobody@127.0.0.1:9/qa").read_manifest()


def test_a_database_without_pgvector_rights_says_what_to_do(pg_url, fake_encoder):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE ROLE plain LOGIN")
        conn.execute("CREATE DATABASE plain_db OWNER plain")
    url = pg_url.replace("postgres:@/postgres", "plain:@/plain_db")
    with pytest.raises(IndexerError, match="pgvector extension is not available .*CREATE EXTENSION vector"):
        build([CORPUS], PgStore(url), lambda: fake_encoder, MODEL)


def test_an_open_reader_keeps_its_generation_until_it_closes(pg_url, corpus_copy, fake_encoder):
    store = fresh_pg_store(pg_url)
    build([corpus_copy], store, lambda: fake_encoder, MODEL)
    reader = store.load()
    query = fake_encoder.encode(["what is overfitting"])
    before = reader.field_cosines(query, np.arange(82))
    corpus_copy.write_text(
        corpus_copy.read_text(encoding="utf-8").replace("overfitting", "over-fitting"), encoding="utf-8"
    )
    for _ in range(3):
        build([corpus_copy], store, lambda: fake_encoder, MODEL)
    current = current_generation(store)
    assert current != reader.generation
    np.testing.assert_array_equal(reader.field_cosines(query, np.arange(82))[0], before[0])
    assert reader.is_current()  # a held generation stays valid: the app need not reload it (the source stamp does)
    assert not np.array_equal(store.load().field_cosines(query, np.arange(82))[0], before[0])  # the edit shows
    assert generations_left(store, reader.generation) == {reader.generation: 2, current: 2}
    reader.close()
    build([corpus_copy], store, lambda: fake_encoder, MODEL)
    assert generations_left(store, reader.generation) == {current_generation(store): 2}


def test_a_reader_reconnects_when_its_connection_drops_and_says_when_its_generation_is_gone(pg_url, fake_encoder):
    store = fresh_pg_store(pg_url)
    build([CORPUS], store, lambda: fake_encoder, MODEL)
    reader = store.load()
    query = fake_encoder.encode(["what is overfitting"])
    before = reader.field_cosines(query, np.arange(82))

    def drop_reader_connection() -> None:
        with store.connect(autocommit=True) as conn:
            ((pid,),) = conn.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ShareLock' "
                "AND objid = %s AND objsubid = 2",
                (reader.generation,),
            ).fetchall()
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))

    drop_reader_connection()
    np.testing.assert_array_equal(reader.field_cosines(query, np.arange(82))[0], before[0])
    drop_reader_connection()  # then a build drops its generation, no longer held
    build([CORPUS], store, lambda: fake_encoder, MODEL)
    with pytest.raises(IndexStaleError, match="rebuilt while the connection was lost; reopen it"):
        reader.field_cosines(query, np.arange(82))


def synthetic(entries: int, dimension: int = 16) -> tuple[list[Record], RowTable, np.ndarray, dict]:
    vectors = np.random.default_rng(0).standard_normal((2 * entries, dimension), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    records = [Record(i, f"question {i}", f"answer {i}", "ok", i) for i in range(entries)]
    positions = np.tile(np.arange(entries, dtype=np.int32), 2)
    rows = RowTable(positions, ["question"] * entries + ["answer"] * entries, [f"k{i}" for i in range(2 * entries)])
    return (
        records,
        rows,
        vectors,
        {"dimension": dimension, "record_count": entries, "question_vectors": entries, "answer_vectors": entries},
    )


@pytest.mark.parametrize("hnsw_min_rows", [0, 10**6])
def test_hnsw_index_is_built_above_the_threshold_and_used(pg_url, hnsw_min_rows):
    records, rows, vectors, manifest = synthetic(2500)
    store = fresh_pg_store(pg_url, hnsw_min_rows=hnsw_min_rows)
    with store.lock():
        store.write(records, rows, vectors, manifest, LexicalIndex.from_records(records))
    loaded = store.load()
    hnsw = hnsw_min_rows == 0
    assert loaded.manifest["index_type"] == ("hnsw" if hnsw else "flat") and loaded.hnsw == hnsw
    table = f"indexer_rows_{loaded.generation}"
    query = np.random.default_rng(1).standard_normal((20, 16), dtype=np.float32)
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    with store.connect(autocommit=True) as conn:
        indexes = [d for (d,) in conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", (table,))]
        assert any("USING hnsw (embedding vector_ip_ops)" in d for d in indexes) == hnsw
        plan = "\n".join(
            line
            for (line,) in conn.execute(
                psycopg.sql.SQL("EXPLAIN ") + nearest_query(psycopg.sql.Identifier(table)), (str(query[0].tolist()), 20)
            )
        )
        assert ("Index Scan using" in plan) == hnsw, plan
    oracle = rows.positions[np.argsort(-(vectors @ query.T), axis=0)[:20].T]
    found = [loaded.nearest_positions(q[None, :], 20) for q in query]
    recall = np.mean([len(set(f.tolist()) & set(o.tolist())) / len(set(o.tolist())) for f, o in zip(found, oracle)])
    assert recall >= (0.95 if hnsw else 1.0)
    # deeper than pgvector's ef_search limit: answered exactly, never cut short
    deep = loaded.nearest_positions(query[:1], 1200)
    assert sorted(deep.tolist()) == sorted(rows.positions[np.argsort(-(vectors @ query[0]))[:1200]].tolist())


def test_the_rows_are_written_all_visible_so_a_load_counts_them_from_the_index_alone(pg_url):
    records, rows, vectors, manifest = synthetic(2500)
    store = fresh_pg_store(pg_url)
    with store.lock():
        store.write(records, rows, vectors, manifest, LexicalIndex.from_records(records))
    table = f"indexer_rows_{store.load().generation}"
    with store.connect(autocommit=True) as conn:
        pages, visible = conn.execute(
            "SELECT relpages, relallvisible FROM pg_class WHERE relname = %s", (table,)
        ).fetchone()
        assert pages > 0 and visible == pages  # COPY ... FREEZE, then the build's VACUUM: every page
        conn.execute("SET enable_seqscan = off")  # a table this small is scanned whole otherwise
        plan = "\n".join(
            line
            for (line,) in conn.execute(
                psycopg.sql.SQL(
                    "EXPLAIN (ANALYZE) SELECT count(*) FILTER (WHERE field = 'question'), count(*) FROM {}"
                ).format(psycopg.sql.Identifier(table))
            )
        )
    assert "Index Only Scan" in plan and "Heap Fetches: 0" in plan, plan


def with_options(url: str, options: str) -> str:
    return url + "&options=" + quote(options)


def test_hnsw_scans_search_at_least_100_deep_or_what_the_connection_asks(pg_url):
    records, rows, vectors, manifest = synthetic(500)
    store = fresh_pg_store(pg_url, hnsw_min_rows=0)
    with store.lock():
        store.write(records, rows, vectors, manifest, LexicalIndex.from_records(records))
    query = vectors[:1]

    def ef_search_after(loaded, depth: int) -> str:
        loaded.nearest_positions(query, depth)
        return loaded._conn.execute("SHOW hnsw.ef_search").fetchone()[0]

    loaded = store.load()
    assert loaded.ef_search == 100  # pgvector's default is 40
    assert [ef_search_after(loaded, depth) for depth in (20, 300, 20)] == ["100", "300", "100"]
    asks_more = PgStore(with_options(pg_url, "-c hnsw.ef_search=400"), store.name).load()
    assert asks_more.ef_search == 400 and ef_search_after(asks_more, 20) == "400"
    asks_less = PgStore(with_options(pg_url, "-c hnsw.ef_search=10"), store.name).load()
    assert asks_less.ef_search == 100 and ef_search_after(asks_less, 20) == "100"


@pytest.mark.parametrize(("configured", "during_the_build"), [("1MB", "1GB"), ("2GB", "2GB")])
def test_an_hnsw_build_gets_1gb_of_maintenance_work_mem_unless_the_session_has_more(
    pg_url, monkeypatch, configured, during_the_build
):
    with psycopg.connect(with_options(pg_url, f"-c maintenance_work_mem={configured}")) as conn:
        give_build_memory(conn)  # in the transaction psycopg opened
        assert conn.execute("SHOW maintenance_work_mem").fetchone()[0] == during_the_build
        conn.rollback()
        assert conn.execute("SHOW maintenance_work_mem").fetchone()[0] == configured  # this transaction only
    # the build itself: at 1MB pgvector would say the graph outgrew it (5,000 16-d rows need ~3 MB)
    store = fresh_pg_store(with_options(pg_url, f"-c maintenance_work_mem={configured}"), hnsw_min_rows=0)
    notices: list[str] = []
    connect = store.connect

    def connect_and_listen(autocommit: bool = False) -> psycopg.Connection:
        conn = connect(autocommit)
        conn.add_notice_handler(lambda notice: notices.append(notice.message_primary))
        return conn

    monkeypatch.setattr(store, "connect", connect_and_listen)
    records, rows, vectors, manifest = synthetic(2500)
    with store.lock():
        store.write(records, rows, vectors, manifest, LexicalIndex.from_records(records))
    assert store.load().hnsw and not [n for n in notices if "maintenance_work_mem" in n], notices


# ---- dense results equal FAISS on the dev queries (real model) ----------------------------------


@pytest.fixture(scope="module")
def real_pair(real_index, pg_url):
    """The real-model FAISS index and a PostgreSQL copy of the same records and vectors, as QAIndex objects."""
    from indexer.engine import QAIndex

    stored = real_index.stored
    pair = {}
    # at 154 rows the planner rightly prefers a sort to the HNSW index; the hnsw copy forbids that
    forced = with_options(pg_url, "-c enable_seqscan=off")
    for kind, url, threshold in (("exact", pg_url, 10**6), ("hnsw", forced, 0)):
        store = fresh_pg_store(url, hnsw_min_rows=threshold)
        with store.lock():
            store.write(stored.records, stored.rows, stored.vectors, stored.manifest, stored.lexical)
        loaded = store.load()
        with store.connect(autocommit=True) as conn:
            plan = " ".join(
                line
                for (line,) in conn.execute(
                    psycopg.sql.SQL("EXPLAIN ")
                    + nearest_query(psycopg.sql.Identifier(f"indexer_rows_{loaded.generation}")),
                    (str(stored.vectors[0].tolist()), 20),
                )
            )
        assert ("Index Scan using" in plan) == (kind == "hnsw"), plan
        pair[kind] = QAIndex(loaded, real_index.model, encoder_factory=lambda model: real_index.encoder)
    return real_index, pair


@pytest.mark.parametrize("store_kind", ["exact", "hnsw"])
@pytest.mark.parametrize("path", ["exhaustive", "candidates"])
@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_search_results_equal_faiss_on_the_dev_queries(real_pair, monkeypatch, store_kind, path, mode):
    faiss_qa, pg = real_pair
    pg_qa = pg[store_kind]
    if path == "candidates":
        monkeypatch.setattr(search_module, "_EXHAUSTIVE_ROWS", 0)  # nearest rows come from the store
    queries = [json.loads(line)["query"] for line in DEV_QUERIES.read_text().splitlines() if line.strip()]
    assert len(queries) == 42
    for encoded in faiss_qa.encode(queries):
        expected = faiss_qa.search_encoded(encoded, k=10, min_score=-1.0, mode=mode)
        got = pg_qa.search_encoded(encoded, k=10, min_score=-1.0, mode=mode)
        assert [h.record.id for h in got.nearest] == [h.record.id for h in expected.nearest], encoded.text
        np.testing.assert_allclose([h.score for h in got.nearest], [h.score for h in expected.nearest], atol=1e-4)
        assert got.no_match == expected.no_match
    # related() goes through question_vector and the same candidate search
    assert [h.record.id for h in pg_qa.related(17)] == [h.record.id for h in faiss_qa.related(17)]
    missing = [record.id for record in faiss_qa.missing()]
    assert [[h.record.id for h in hints] for hints in pg_qa.hints_many(missing)] == [
        [h.record.id for h in hints] for hints in faiss_qa.hints_many(missing)
    ]


# ---- rebuilds under concurrent readers -----------------------------------------------------------

QUERIES = ["what is overfitting", "how does gradient descent work", "batch normalization", "precision recall"]


def edited_corpus(folder: Path) -> Path:
    """The corpus with one more entry, so readers can tell the two versions apart by their counts."""
    path = folder / "edited.md"
    path.write_text(
        CORPUS.read_text(encoding="utf-8") + "\n**83. What is a concurrency test?**\n\n*Solution*\n\n"
        "One process rebuilds while another reads.\n",
        encoding="utf-8",
    )
    return path


def top_hits(loaded, vectors: np.ndarray) -> list[list]:
    answers = []
    for vector in vectors:
        query = vector[None, :]
        hits = search_module.score_entries(loaded, query, search_module.candidate_positions(loaded, query, 5))
        answers.append([[h.record.id, round(h.score, 4)] for h in hits[:5]])
    return answers


def test_readers_see_only_complete_indexes_while_another_process_rebuilds(pg_url, tmp_path, fake_encoder):
    versions = {82: CORPUS, 83: edited_corpus(tmp_path)}
    vectors = FakeEncoder().encode(QUERIES)
    expected = {}
    for count, source in versions.items():  # what a complete index of each version answers (FAISS)
        faiss_store = FaissStore(tmp_path / f"faiss-{count}")
        build([source], faiss_store, lambda: FakeEncoder(), MODEL)
        expected[count] = top_hits(faiss_store.load(), vectors)
    store = fresh_pg_store(pg_url)
    build([CORPUS], store, lambda: fake_encoder, MODEL)
    first = current_generation(store)
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    done = tmp_path / "rebuilds-done"
    worker = [sys.executable, __file__, pg_url, store.name]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    reader = subprocess.Popen(
        worker + ["query", str(tmp_path / "expected.json"), str(done)], stdout=subprocess.PIPE, text=True, env=env
    )
    time.sleep(1.5)  # let the reader start querying first
    rebuilder = subprocess.run(
        worker + ["rebuild", str(CORPUS), str(versions[83]), str(done)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    report = json.loads(reader.communicate(timeout=60)[0])
    print(report)
    assert rebuilder.returncode == 0, rebuilder.stderr
    assert json.loads(rebuilder.stdout)["builds"] >= 10
    assert report["errors"] == [] and reader.returncode == 0
    assert report["loads"] >= 10 and report["queries"] >= 100
    assert set(report["versions"]) == {"82", "83"} and report["generations"] >= 5
    assert len(generations_left(store, first)) > 1  # generations held by the reader during the last build stay
    build([CORPUS], store, lambda: fake_encoder, MODEL)
    assert generations_left(store, first) == {current_generation(store): 2}  # the next build drops them


def _rebuild(url: str, name: str, source_a: str, source_b: str, done: str) -> None:
    builds = 0
    try:
        for i in range(12):
            store = PgStore(url, name, hnsw_min_rows=0 if i % 3 == 0 else 10**6)  # HNSW in some generations
            build([Path(source_b if i % 2 == 0 else source_a)], store, lambda: FakeEncoder(), MODEL)
            builds += 1
            time.sleep(0.1)
    finally:
        Path(done).touch()
    print(json.dumps({"builds": builds}))


def _query(url: str, name: str, expected_path: str, done: str) -> None:
    """Open the current index over and over and search it, and keep searching one index opened at the
    start; every answer must be exactly what a complete index of its version answers."""
    expected = json.loads(Path(expected_path).read_text())
    vectors = FakeEncoder().encode(QUERIES)
    store = PgStore(url, name)
    errors: list[str] = []
    loads = queries = 0
    versions, generations = set(), set()
    pinned = store.load()
    search_module._EXHAUSTIVE_ROWS = 100  # half the searches go through the store's nearest rows

    def check(loaded) -> None:
        nonlocal queries
        version = str(len(loaded.records))
        if version not in expected or loaded.manifest["record_count"] != len(loaded.records):
            errors.append(f"generation {loaded.generation}: {len(loaded.records)} records")
            return
        versions.add(version)
        for exhaustive in (10**6, 100):
            search_module._EXHAUSTIVE_ROWS = exhaustive
            if top_hits(loaded, vectors) != expected[version]:
                errors.append(f"generation {loaded.generation} (version {version}) answered differently")
            queries += len(QUERIES)

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        finished = Path(done).exists()
        try:
            loaded = store.load()
            loads += 1
            generations.add(loaded.generation)
            check(loaded)
            loaded.close()
            check(pinned)
        except Exception as exc:  # any error counts; the test expects none
            errors.append(f"{type(exc).__name__}: {exc}")
        if finished:
            break
    pinned.close()
    print(
        json.dumps(
            {
                "errors": errors[:20],
                "loads": loads,
                "queries": queries,
                "versions": sorted(versions),
                "generations": len(generations),
            }
        )
    )


def write_synthetic(store: PgStore, entries: int) -> tuple[RowTable, np.ndarray]:
    records, rows, vectors, manifest = synthetic(entries)
    with store.lock():
        store.write(records, rows, vectors, manifest, LexicalIndex.from_records(records))
    return rows, vectors


def exact_positions(rows: RowTable, vectors: np.ndarray, query: np.ndarray, depth: int) -> list[int]:
    return sorted(rows.positions[np.argsort(-(vectors @ query))[:depth]].tolist())


def unstored_queries(vectors: np.ndarray, count: int) -> np.ndarray:
    queries = vectors[:count] @ np.eye(vectors.shape[1], dtype=np.float32)[::-1]  # not stored rows
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


IVF_WARNING = "inverted file cannot be read"


def test_above_its_threshold_an_inverted_file_is_kept_and_nearest_rows_come_from_it_in_the_client(pg_url, monkeypatch):
    monkeypatch.setattr(postgres, "RECORD_PART_BYTES", 64 * 1024)  # the inverted file (~0.2 MB) in parts
    store = fresh_pg_store(pg_url, ivf_min_rows=0)
    rows, vectors = write_synthetic(store, 2500)
    with store.connect(autocommit=True) as conn:
        query = f"SELECT count(*) FROM indexer_records_{current_generation(store)} WHERE file = 'ivf.faiss'"
        assert conn.execute(query).fetchone()[0] > 2
    loaded = store.load()
    ivf = loaded.client_ivf(wait=True)
    assert ivf is not None and ivf.index.ntotal == 5000 and loaded.manifest["ivf"] == {"lists": 64}
    asked = np.arange(0, 5000, 97)  # stored rows as queries: each row's own record comes first
    monkeypatch.setattr(loaded, "_query", lambda *args, **kwargs: pytest.fail("a nearest-row query went to SQL"))
    for row in asked:
        assert loaded.nearest_positions(vectors[row][None, :], 1).tolist() == [rows.positions[row]]
    each = loaded.nearest_positions_each(vectors[asked], 5)  # batched, as `missing` asks for hints
    assert all(rows.positions[row] in found and len(found) == 5 for row, found in zip(asked, each))
    loaded.close()


def test_a_load_reads_the_inverted_file_only_once_it_is_searched_and_the_database_answers_until_then(
    pg_url, monkeypatch
):
    from concurrent.futures import Future

    store = fresh_pg_store(pg_url, ivf_min_rows=0)
    rows, vectors = write_synthetic(store, 2500)
    reads: list[object] = []
    monkeypatch.setattr(postgres, "started_unawaited", lambda work: reads.append(work) or Future())  # never ends
    loaded = store.load()
    loaded.verify_record_files()
    assert reads == []  # a load that does not search (`info`, a build's look at its previous index) reads nothing
    for i, query in enumerate(unstored_queries(vectors, 3)):  # exact (no HNSW at this size), as without one
        assert sorted(loaded.nearest_positions(query[None, :], 20).tolist()) == exact_positions(
            rows, vectors, query, 20
        )
        assert len(reads) == (0 if i == 0 else 1)  # not for a one-off search; from the second, once
    assert loaded.client_ivf() is None  # not in yet
    loaded.close()


@pytest.mark.parametrize("damage", ["a flipped byte", "a missing part"])
def test_a_damaged_inverted_file_leaves_search_to_the_database_with_one_warning_and_fails_verify(
    pg_url, caplog, monkeypatch, damage
):
    monkeypatch.setattr(postgres, "RECORD_PART_BYTES", 64 * 1024)
    store = fresh_pg_store(pg_url, ivf_min_rows=0)
    rows, vectors = write_synthetic(store, 2500)
    change, reason = {
        "a flipped byte": (
            "SET bytes = overlay(bytes placing '\\xff'::bytea from 200) WHERE file = 'ivf.faiss' AND part = 0",
            "ivf.faiss fails its checksum",
        ),
        "a missing part": (
            "SET part = 99 WHERE file = 'ivf.faiss' AND part = 1",
            "ivf.faiss's parts are not the ones written",
        ),
    }[damage]
    with store.connect(autocommit=True) as conn:
        assert conn.execute(f"UPDATE indexer_records_{current_generation(store)} {change}").rowcount == 1
    loaded = store.load()  # the records are whole
    loaded.client_ivf()
    assert loaded.client_ivf(wait=True) is None
    for query in unstored_queries(vectors, 3):
        assert sorted(loaded.nearest_positions(query[None, :], 10).tolist()) == exact_positions(
            rows, vectors, query, 10
        )
    assert [r.getMessage() for r in caplog.records if IVF_WARNING in r.getMessage()] == [
        f"index at {store.location}: its inverted file cannot be read ({reason}); nearest rows come from the database"
    ]
    loaded.close()
    with pytest.raises(IndexCorruptError, match="ivf.faiss"):
        store.verify()


def test_an_unexpected_failure_of_the_read_leaves_search_to_the_database(pg_url, caplog, monkeypatch):
    store = fresh_pg_store(pg_url, ivf_min_rows=0)
    rows, vectors = write_synthetic(store, 2500)

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(postgres, "_stored_files", out_of_memory)
    loaded = store.load()
    loaded.client_ivf()
    assert loaded.client_ivf(wait=True) is None
    query = unstored_queries(vectors, 1)[0]
    for _ in range(2):  # every search, not only the first
        assert sorted(loaded.nearest_positions(query[None, :], 10).tolist()) == exact_positions(
            rows, vectors, query, 10
        )
    assert len([r for r in caplog.records if "(MemoryError)" in r.getMessage()]) == 1
    loaded.close()


def test_closing_an_index_stops_its_read_and_lets_go_of_it(pg_url, caplog):
    import gc
    import weakref

    store = fresh_pg_store(pg_url, ivf_min_rows=0)
    write_synthetic(store, 2500)
    loaded = store.load()
    loaded.client_ivf(), loaded.client_ivf()  # the read starts
    loaded.close()
    assert loaded.client_ivf(wait=True) is None  # stopped, or read and let go
    other = store.load()
    other.client_ivf(), other.client_ivf()
    gone = weakref.ref(other)
    del other
    gc.collect()
    assert gone() is None  # the read holds no reference to the index: it can be collected meanwhile
    assert IVF_WARNING not in caplog.text


def test_a_store_told_not_to_read_the_inverted_file_answers_from_the_database(pg_url):
    store = fresh_pg_store(pg_url, ivf_min_rows=0)
    rows, vectors = write_synthetic(store, 2500)
    loaded = PgStore(store.url, store.name, read_ivf=False).load()
    query = unstored_queries(vectors, 1)[0]
    assert sorted(loaded.nearest_positions(query[None, :], 20).tolist()) == exact_positions(rows, vectors, query, 20)
    assert "ivf.faiss" in loaded.manifest["files"] and loaded.client_ivf(wait=True) is None
    loaded.close()


def test_below_its_threshold_no_inverted_file_is_kept(pg_url):
    store = fresh_pg_store(pg_url)  # 5,000 rows: under the default threshold
    write_synthetic(store, 2500)
    loaded = store.load()
    assert "ivf" not in loaded.manifest and "ivf.faiss" not in loaded.manifest["files"]
    assert loaded.client_ivf(wait=True) is None
    loaded.close()


if __name__ == "__main__":
    url, name, role, *rest = sys.argv[1:]
    (_rebuild if role == "rebuild" else _query)(url, name, *rest)
