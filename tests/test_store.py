"""The index on disk: round trip, atomic generations, corruption and version checks, staleness."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from core_fixtures import CORPUS, ExplodingEncoder

from indexer.documents.record_table import RecordTable
from indexer.documents.records import Record
from indexer.errors import IndexCorruptError, IndexerError, IndexVersionError
from indexer.indexing.build import build, ensure_index
from indexer.retrieval.lexical import LexicalIndex
from indexer.stores import disk
from indexer.stores.disk import FORMAT_VERSION, FaissStore, RowTable, StoredIndex, current_path
from indexer.stores.vectors import (
    BATCH_PROBE_DIVISOR,
    FP16_SCAN_MIN_ROWS,
    exact_nearest_rows,
    ivf_nearest_rows,
    updated_ivf,
    vector_index,
)

MODEL = "fake-model"
FLAT_FILES = (
    "records.npy",
    "record_values.json",
    "record_texts.bin",
    "rows.npy",
    "vectors.npy",
    "lexical.npz",
    "parse_map.npz",
)


def make(store_dir: Path, source: Path, encoder) -> FaissStore:
    store = FaissStore(store_dir)
    build([source], store, lambda: encoder, MODEL)
    return store


def test_round_trip_keeps_records_vectors_and_manifest(tmp_path, fake_encoder):
    store = make(tmp_path / "index", CORPUS, fake_encoder)
    loaded = store.load()
    manifest = loaded.manifest
    assert len(loaded.records) == manifest["record_count"] == 82
    assert manifest["missing_count"] == 10 and manifest["link_only_count"] == 1
    assert manifest["model"] == MODEL and manifest["dimension"] == 16 and manifest["index_type"] == "flat"
    assert manifest["source_sha256"] == manifest["sources"][0]["sha256"]
    assert set(manifest["files"]) == set(FLAT_FILES)
    assert len(loaded.vectors) == manifest["question_vectors"] + manifest["answer_vectors"] == 82 + 72
    # row table: every record has its question row, answered ones an answer row, missing ones none
    assert (loaded.question_row >= 0).all()
    assert [r.id for r, row in zip(loaded.records, loaded.answer_row) if row < 0] == [
        31,
        32,
        33,
        34,
        35,
        45,
        48,
        52,
        58,
        80,
    ]


def test_a_rebuild_swaps_generations_and_keeps_only_two(tmp_path, fake_encoder):
    store = make(tmp_path / "index", CORPUS, fake_encoder)
    first = current_path(store.index_dir).resolve()
    for _ in range(3):
        build([CORPUS], store, lambda: fake_encoder, MODEL)
    generations = [p for p in store.index_dir.iterdir() if p.name.startswith("build-")]
    assert current_path(store.index_dir).resolve() != first
    assert len(generations) == 2


def test_leftover_temp_folders_are_removed_by_the_next_build(tmp_path, fake_encoder):
    store = make(tmp_path / "index", CORPUS, fake_encoder)
    (store.index_dir / "build-killed.tmp").mkdir()
    (store.index_dir / "build-killed.tmp" / "vectors.faiss").write_bytes(b"half")
    build([CORPUS], store, lambda: fake_encoder, MODEL)
    assert not (store.index_dir / "build-killed.tmp").exists()


def test_a_failed_build_leaves_the_previous_index_usable(tmp_path, fake_encoder):
    store = make(tmp_path / "index", CORPUS, fake_encoder)
    before = store.load().manifest["built_at"], current_path(store.index_dir)
    broken = tmp_path / "broken.md"
    broken.write_text("no entries here")
    with pytest.raises(IndexerError):
        build([broken], store, lambda: fake_encoder, MODEL)

    edited = tmp_path / "edited.md"
    edited.write_text(CORPUS.read_text(encoding="utf-8").replace("Deep Learning", "Deep Lerning"), encoding="utf-8")
    with pytest.raises(RuntimeError):
        build([edited], store, ExplodingEncoder, MODEL)
    assert (store.load().manifest["built_at"], current_path(store.index_dir)) == before
    assert len(store.load().records) == 82


@pytest.mark.parametrize("name", FLAT_FILES)
@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_damaged_index_files_are_detected(tmp_path, fake_encoder, name, damage):
    store = make(tmp_path / "index", CORPUS, fake_encoder)
    path = current_path(store.index_dir) / name
    data = path.read_bytes()
    if damage == "flip":
        path.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    elif damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:
        path.unlink()
    with pytest.raises(IndexCorruptError, match="corrupt"):
        store.load()


def hashed_files(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the size of every buffer the store hashes from now on."""
    sizes: list[int] = []
    real = disk.hashlib.sha256

    def counting(data=b""):
        sizes.append(len(data))
        return real(data)

    monkeypatch.setattr(disk.hashlib, "sha256", counting)
    return sizes


def test_a_fresh_build_loads_without_hashing_its_files_and_a_copy_is_hashed(tmp_path, fake_encoder, monkeypatch):
    store = make(tmp_path / "index", CORPUS, fake_encoder)
    hashed = hashed_files(monkeypatch)
    assert len(store.load().records) == 82 and hashed == []  # the build's stamps vouch for every file
    generation = current_path(store.index_dir)
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copytree(generation, copy / generation.name)  # other inodes: the stamps vouch for nothing
    (copy / "current").symlink_to(generation.name)
    assert len(FaissStore(copy).load().records) == 82 and len(hashed) == len(FLAT_FILES)


def test_a_copied_index_is_hashed_once_and_then_trusted_until_a_file_changes(tmp_path, fake_encoder, monkeypatch):
    store = make(tmp_path / "index", CORPUS, fake_encoder)
    copy = tmp_path / "copy"
    shutil.copytree(store.index_dir, copy, symlinks=True)  # a restored backup: other inodes
    hashed = hashed_files(monkeypatch)
    first = FaissStore(copy).load()
    assert len(hashed) == len(FLAT_FILES) and first.is_current()  # found whole, its stamps recorded...
    assert len(FaissStore(copy).load().records) == 82 and len(hashed) == len(FLAT_FILES)  # ...so not hashed again
    assert not [p.name for p in current_path(copy).iterdir() if p.name.startswith(".")]  # no temporary left
    path = current_path(copy) / "record_texts.bin"
    data = path.read_bytes()
    path.write_bytes(data[:10] + bytes([data[10] ^ 0xFF]) + data[11:])  # a write after the new stamps
    with pytest.raises(IndexCorruptError, match="record_texts.bin"):
        FaissStore(copy).load()


def test_a_copy_whose_stamps_cannot_be_written_is_still_loaded_and_hashed_each_time(
    tmp_path, fake_encoder, monkeypatch
):
    store = make(tmp_path / "index", CORPUS, fake_encoder)
    copy = tmp_path / "copy"
    shutil.copytree(store.index_dir, copy, symlinks=True)
    monkeypatch.setattr(disk.os, "replace", lambda *args: (_ for _ in ()).throw(PermissionError("read-only")))
    hashed = hashed_files(monkeypatch)
    for _ in range(2):
        assert len(FaissStore(copy).load().records) == 82
    assert len(hashed) == 2 * len(FLAT_FILES)
    assert not [p.name for p in current_path(copy).iterdir() if p.name.startswith(".")]  # its temporary removed


def test_a_write_that_keeps_size_and_mtime_is_still_detected(tmp_path, fake_encoder):
    store = make(tmp_path / "index", CORPUS, fake_encoder)
    path = current_path(store.index_dir) / "record_texts.bin"
    before = path.stat()
    data = path.read_bytes()
    path.write_bytes(data[:10] + bytes([data[10] ^ 0xFF]) + data[11:])  # at once: within one clock tick
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime set back; ctime cannot be
    with pytest.raises(IndexCorruptError, match="record_texts.bin"):
        store.load()


@pytest.mark.parametrize("stamps", ["missing", "not JSON", "a list", "a stamp malformed"])
def test_without_usable_stamps_every_file_is_hashed(tmp_path, fake_encoder, monkeypatch, stamps):
    store = make(tmp_path / "index", CORPUS, fake_encoder)
    written = current_path(store.index_dir) / disk.WRITTEN_FILE
    if stamps == "missing":
        written.unlink()
    else:
        good = json.loads(written.read_text())
        written.write_text(
            {"not JSON": "{", "a list": "[]", "a stamp malformed": json.dumps({**good, "vectors.npy": ["x"]})}[stamps]
        )
    hashed = hashed_files(monkeypatch)
    assert len(store.load().records) == 82
    assert len(hashed) == (1 if stamps == "a stamp malformed" else len(FLAT_FILES))


def test_stamps_not_older_than_written_json_are_not_trusted(tmp_path, fake_encoder, monkeypatch):
    # A file changed in the same clock tick as written.json was written could keep its stamped ctime.
    store = make(tmp_path / "index", CORPUS, fake_encoder)
    written = current_path(store.index_dir) / disk.WRITTEN_FILE
    ctimes = [stamp[2] for stamp in json.loads(written.read_text()).values()]
    os.utime(written, ns=(max(ctimes), max(ctimes)))  # as if written in the same tick as the last file
    hashed = hashed_files(monkeypatch)
    assert len(store.load().records) == 82 and len(hashed) == ctimes.count(max(ctimes)) >= 1
    os.utime(written, ns=(min(ctimes), min(ctimes)))  # ... or before any of them
    assert len(store.load().records) == 82 and len(hashed) == ctimes.count(max(ctimes)) + len(FLAT_FILES)


def test_no_stamps_are_written_when_the_clock_does_not_pass_the_files_ctime(tmp_path, monkeypatch):
    monkeypatch.setattr(disk.time, "sleep", lambda seconds: None)
    disk._write_stamps(tmp_path, {"vectors.npy": [1, 1, 2**62, 1]})  # a ctime far in the future
    assert not (tmp_path / disk.WRITTEN_FILE).exists()
    disk._write_stamps(tmp_path, {"vectors.npy": [1, 1, 1, 1]})
    assert (tmp_path / disk.WRITTEN_FILE).exists()


def test_a_generation_is_read_with_its_own_manifest_while_a_build_swaps_current(tmp_path, corpus_copy, fake_encoder):
    store = make(tmp_path / "index", corpus_copy, fake_encoder)
    first = current_path(store.index_dir)
    edited = corpus_copy.read_text(encoding="utf-8").replace("Deep Learning involves", "Deep Learning also involves")
    corpus_copy.write_text(edited, encoding="utf-8")
    build([corpus_copy], store, lambda: fake_encoder, MODEL)  # same entries, another answer and source hash
    assert current_path(store.index_dir) != first
    loaded = disk._load_generation(store.index_dir, first)  # as a load that resolved `current` just before
    assert loaded.manifest == json.loads((first / "manifest.json").read_text())
    assert not loaded.is_current()  # so the reader loads the new generation on its next check


def test_verify_hashes_what_the_stamps_vouch_for_and_info_reports_it(tmp_path, fake_encoder, capsys):
    # Damage the stamps cannot see (a failing disk changes bytes without a write): forged here by
    # stamping the damaged file again.
    store = make(tmp_path / "index", CORPUS, fake_encoder)
    generation = current_path(store.index_dir)
    zero_body_in_place(generation / "vectors.npy")
    stamps = json.loads((generation / disk.WRITTEN_FILE).read_text())
    stamps["vectors.npy"] = disk.file_stamp(os.stat(generation / "vectors.npy"))
    disk._write_stamps(generation, stamps)
    store.load()  # trusted: that is the stamps' bargain
    with pytest.raises(IndexCorruptError, match="vectors.npy"):
        store.verify()
    from indexer.cli import main

    assert main(["info", "--store", str(store.index_dir), "--source", str(CORPUS), "--model", MODEL]) == 0
    assert "corrupt" in capsys.readouterr().out


def test_corrupt_index_is_rebuilt_with_a_notice(tmp_path, fake_encoder):
    store = make(tmp_path / "index", CORPUS, fake_encoder)
    (current_path(store.index_dir) / "record_values.json").write_text("{}")
    notices: list[str] = []
    loaded = ensure_index([CORPUS], store, lambda: fake_encoder, MODEL, notify=notices.append)
    assert len(loaded.records) == 82
    assert len(notices) == 1 and "corrupt" in notices[0]


def zero_body_in_place(path: Path) -> None:
    """Overwrite all but the first 128 bytes (an .npy header) with zeros: same size, same inode."""
    with open(path, "r+b") as fh:
        fh.seek(128)
        fh.write(bytes(path.stat().st_size - 128))


def test_a_loaded_index_knows_when_its_files_change_or_a_new_generation_replaces_it(tmp_path, fake_encoder):
    store = make(tmp_path / "index", CORPUS, fake_encoder)
    loaded = store.load()
    assert loaded.is_current()
    zero_body_in_place(loaded.path / "vectors.npy")  # damage no build would do: files are never rewritten
    assert not loaded.is_current()
    with pytest.raises(IndexCorruptError, match="vectors.npy"):
        store.load()  # loading again is what reports (or, through ensure_index, rebuilds) it
    rebuilt = ensure_index([CORPUS], store, lambda: fake_encoder, MODEL)
    assert rebuilt.is_current() and rebuilt.path != loaded.path
    build([CORPUS], store, lambda: fake_encoder, MODEL)
    assert not rebuilt.is_current()  # a newer generation is current now


def test_edited_source_makes_the_index_stale_and_it_is_rebuilt(tmp_path, corpus_copy, fake_encoder):
    store = make(tmp_path / "index", corpus_copy, fake_encoder)
    notices: list[str] = []
    assert ensure_index([corpus_copy], store, lambda: fake_encoder, MODEL, notify=notices.append)
    assert notices == []  # fresh: not rebuilt
    text = corpus_copy.read_text(encoding="utf-8")
    corpus_copy.write_text(
        text.replace(
            "**80. What is saddle point?**\n\n*Solution*\n",
            "**80. What is saddle point?**\n\n*Solution*\n\nA flat critical point.\n",
        ),
        encoding="utf-8",
    )
    loaded = ensure_index([corpus_copy], store, lambda: fake_encoder, MODEL, notify=notices.append)
    assert len(notices) == 1 and "source changed" in notices[0]
    assert loaded.manifest["missing_count"] == 9


def test_another_model_makes_the_index_stale(tmp_path, fake_encoder):
    store = make(tmp_path / "index", CORPUS, fake_encoder)
    notices: list[str] = []
    ensure_index([CORPUS], store, lambda: fake_encoder, "other-model", notify=notices.append)
    assert "model" in notices[0]
    assert store.load().manifest["model"] == "other-model"


def test_manifest_from_a_newer_format_is_refused_not_overwritten(tmp_path, fake_encoder):
    store = make(tmp_path / "index", CORPUS, fake_encoder)
    manifest_path = current_path(store.index_dir) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = 99
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexVersionError, match="newer version"):
        ensure_index([CORPUS], store, lambda: fake_encoder, MODEL)
    assert json.loads(manifest_path.read_text())["format_version"] == 99


def test_build_never_writes_the_source(tmp_path, corpus_copy, fake_encoder):
    before = corpus_copy.read_bytes(), os.stat(corpus_copy).st_mtime_ns
    make(tmp_path / "index", corpus_copy, fake_encoder)
    assert (corpus_copy.read_bytes(), os.stat(corpus_copy).st_mtime_ns) == before


def test_unchanged_texts_are_not_embedded_again(tmp_path, corpus_copy, fake_encoder):
    store = make(tmp_path / "index", corpus_copy, fake_encoder)
    assert len(fake_encoder.encoded) == 154
    text = corpus_copy.read_text(encoding="utf-8")
    corpus_copy.write_text(
        text.replace("Backpropagation is a technique", "Backpropagation is a method"), encoding="utf-8"
    )
    fake_encoder.encoded.clear()
    summary = build([corpus_copy], store, lambda: fake_encoder, MODEL)
    assert len(fake_encoder.encoded) == summary.embedded == 1
    assert "Backpropagation is a method" in fake_encoder.encoded[0]
    assert summary.reused == 153


def test_a_folder_of_files_is_one_corpus_and_an_edit_re_embeds_only_that_file(tmp_path, fake_encoder):
    folder = tmp_path / "kb"
    folder.mkdir()
    fixtures = Path(__file__).parent / "fixtures"
    for name in ("bold_unnumbered.md", "headings.md", "table.csv"):
        (folder / name).write_bytes((fixtures / name).read_bytes())
    store = FaissStore(tmp_path / "index")
    build([folder], store, lambda: fake_encoder, MODEL)
    records = store.load().records
    assert {r.id for r in records} >= {"bold_unnumbered.md#1", "headings.md#4", "table.csv#7"}
    assert {Path(r.source).name for r in records} == {"bold_unnumbered.md", "headings.md", "table.csv"}
    (folder / "table.csv").write_text("id,question,answer\n7,What is CSV?,Comma separated values\n")
    fake_encoder.encoded.clear()
    summary = build([folder], store, lambda: fake_encoder, MODEL)
    assert fake_encoder.encoded == ["Comma separated values"]
    assert summary.records == len(records) - 1  # the empty CSV row is gone
    assert summary.embedded == 1 and summary.reused == store.load().row_count - 1


def test_editing_one_entry_of_ten_thousand_re_embeds_only_that_entry(tmp_path, fake_encoder):
    from docgen import generate

    doc = generate(5, style="bold_numbered", entries=10_000)
    source = tmp_path / "big.md"
    source.write_bytes(doc.data)
    store = FaissStore(tmp_path / "index")
    first = build([source], store, lambda: fake_encoder, MODEL)
    assert first.records == 10_000 and first.reused == 0
    text = source.read_text(encoding="utf-8")
    edited = store.load().records[5000]
    assert edited.status == "ok"
    source.write_text(text.replace(edited.answer, edited.answer + " One more sentence.", 1), encoding="utf-8")
    fake_encoder.encoded.clear()
    second = build([source], store, lambda: fake_encoder, MODEL)
    assert second.embedded == 1 and fake_encoder.encoded[0].endswith("One more sentence.")
    assert second.reused == first.embedded - 1


def test_the_stored_lexical_index_answers_like_one_built_from_the_records(tmp_path, fake_encoder):
    loaded = make(tmp_path / "index", CORPUS, fake_encoder).load()
    fresh = LexicalIndex.from_records(loaded.records)
    assert loaded.lexical is not None and loaded.lexical.terms == fresh.terms
    for query in ("vanishng gradents", "what is a GAN", "you only look once", "kubernetes"):
        stored, built = loaded.lexical.match(query), fresh.match(query)
        assert stored.terms == built.terms and stored.corrected == built.corrected
        assert np.array_equal(stored.scores, built.scores) and np.array_equal(stored.coverage, built.coverage)


def test_an_hnsw_generation_round_trips_its_vectors(tmp_path, fake_encoder):
    store = FaissStore(tmp_path / "index")
    build([CORPUS], store, lambda: fake_encoder, MODEL, index_type="hnsw")
    loaded = store.load()
    assert "vectors.faiss" in loaded.manifest["files"] and "vectors.npy" not in loaded.manifest["files"]
    assert loaded.faiss_index.hnsw.efSearch == 256
    expected = fake_encoder.encode([loaded.records[0].question])[0]
    assert np.allclose(loaded.vectors[loaded.question_row[0]], expected, atol=1e-6)


def _downgrade(generation: Path, format_version: int) -> None:
    """Rewrite a generation the way an older format stored it. Format 2: the records as one JSON table,
    the rows in rows.json. Format 1: also a record dict per line, vectors in a FAISS file, no lexical index."""
    import faiss

    manifest = json.loads((generation / "manifest.json").read_text())
    loaded = FaissStore(generation.parent).load()
    fields = list(Record.__dataclass_fields__)
    rows = {
        "record": loaded.rows.positions.tolist(),
        "field": list(map(str, loaded.rows.fields)),
        "key": list(loaded.rows.keys),
    }
    blobs = {
        "records.json": json.dumps(
            {"fields": fields, "rows": [[getattr(r, f) for f in fields] for r in loaded.records]}
        ).encode(),
        "rows.json": json.dumps(rows).encode(),
    }
    gone = ["records.npy", "record_values.json", "record_texts.bin", "rows.npy"]
    if format_version == 1:
        vectors = np.load(generation / "vectors.npy")
        blobs["vectors.faiss"] = faiss.serialize_index(vector_index(vectors, "flat", vectors.shape[1])).tobytes()
        blobs["records.jsonl"] = "".join(json.dumps(r.to_dict()) + "\n" for r in loaded.records).encode()
        del blobs["records.json"], manifest["lexical_version"]
        gone += ["vectors.npy", "lexical.npz"]
    for name in gone:
        (generation / name).unlink()
        del manifest["files"][name]
    for name, blob in blobs.items():
        (generation / name).write_bytes(blob)
        manifest["files"][name] = {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
    manifest["format_version"] = format_version
    (generation / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("format_version", [1, 2])
def test_an_older_format_is_readable_and_upgraded_without_embedding_again(tmp_path, fake_encoder, format_version):
    store = make(tmp_path / "index", CORPUS, fake_encoder)
    before = store.load()
    _downgrade(current_path(store.index_dir), format_version)
    old = store.load()
    assert isinstance(old.records, list) and old.records == before.records
    assert np.array_equal(old.vectors, before.vectors) and (old.lexical is None) == (format_version == 1)
    assert np.array_equal(old.question_row, before.question_row) and np.array_equal(old.answer_row, before.answer_row)
    assert old.position_of == before.position_of and list(old.stored_rows(MODEL).rows.keys) == list(
        before.stored_rows(MODEL).rows.keys
    )
    notices: list[str] = []
    upgraded = ensure_index([CORPUS], store, ExplodingEncoder, MODEL, notify=notices.append)  # no encoding allowed
    assert len(notices) == 1 and "older version" in notices[0]
    assert upgraded.manifest["format_version"] == FORMAT_VERSION == 3 and upgraded.lexical is not None
    assert isinstance(upgraded.records, RecordTable) and upgraded.records == before.records
    assert np.array_equal(upgraded.vectors, before.vectors)


def test_large_flat_indexes_scan_half_precision_copies_and_find_the_exact_neighbours(tmp_path):
    rng = np.random.default_rng(3)
    rows = FP16_SCAN_MIN_ROWS
    vectors = rng.standard_normal((rows, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    records = [Record(i, f"q{i}", "", "missing", i) for i in range(rows)]
    table = RowTable(np.arange(rows, dtype=np.int32), ["question"] * rows, [""] * rows)
    stored = StoredIndex({"record_count": rows}, records, table, vectors, None, tmp_path)
    queries = vectors[:20] + 0.1 * rng.standard_normal((20, 16)).astype(np.float32)
    # search asks for 2k + 10 candidates to score the top k exactly: they must hold the exact top k
    found = [set(stored.nearest_positions(q[None, :], 2 * 10 + 10).tolist()) for q in queries]
    assert type(stored.faiss_index).__name__ == "IndexScalarQuantizer"
    exact = [set(np.argsort(-(vectors @ q))[:10].tolist()) for q in queries]
    assert all(e <= f for f, e in zip(found, exact))


def test_an_ivf_generation_stores_exact_vectors_and_an_inverted_file(tmp_path, fake_encoder):
    import faiss

    store = FaissStore(tmp_path / "index")
    build([CORPUS], store, lambda: fake_encoder, MODEL, index_type="ivf")
    loaded = store.load()
    assert {"vectors.npy", "ivf.faiss"} <= set(loaded.manifest["files"])
    assert type(loaded.faiss_index).__name__ == "IndexIVFScalarQuantizer" and loaded.faiss_index.nprobe >= 1
    expected = fake_encoder.encode([loaded.records[0].question])[0]
    assert np.array_equal(loaded.vectors[loaded.question_row[0]], expected)  # full precision kept for scores
    path = current_path(store.index_dir) / "ivf.faiss"
    lists = faiss.downcast_InvertedLists(loaded.faiss_index.invlists)
    assert type(lists).__name__ == "OnDiskInvertedLists" and lists.prefetch_nthread == 0  # mapped, not copied
    copied = faiss.read_index(str(path))
    copied.nprobe = loaded.faiss_index.nprobe
    queries = np.ascontiguousarray(loaded.vectors[:20])
    assert np.array_equal(copied.search(queries, 5)[1], loaded.faiss_index.search(queries, 5)[1])
    data = path.read_bytes()
    path.write_bytes(data[:200] + bytes([data[200] ^ 0xFF]) + data[201:])
    with pytest.raises(IndexCorruptError, match="ivf.faiss fails its checksum"):
        store.load()


def test_an_inverted_file_over_clustered_vectors_finds_the_exact_neighbours(tmp_path):
    rng = np.random.default_rng(5)
    centers = rng.standard_normal((200, 32)).astype(np.float32)
    vectors = centers[rng.integers(0, 200, 40_000)] + 0.5 * rng.standard_normal((40_000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = vector_index(vectors, "ivf", 32)
    queries = vectors[:50] + 0.2 * rng.standard_normal((50, 32)).astype(np.float32)
    _, found = index.search(queries, 2 * 10 + 10)  # the depth search.py asks for, for the top 10
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    assert np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found.tolist(), exact.tolist())]) >= 0.98


def ivf_lists(index) -> list[list[tuple[int, bytes]]]:
    """What an inverted file holds: per list, its (id, code) pairs in id order."""
    import faiss

    invlists = faiss.extract_index_ivf(index).invlists
    found = []
    for lst in range(invlists.nlist):
        size = invlists.list_size(lst)
        ids = faiss.rev_swig_ptr(invlists.get_ids(lst), size).tolist() if size else []
        codes = faiss.rev_swig_ptr(invlists.get_codes(lst), size * invlists.code_size).tobytes() if size else b""
        pairs = [(i, codes[k * invlists.code_size : (k + 1) * invlists.code_size]) for k, i in enumerate(ids)]
        found.append(sorted(pairs))
    return found


def filled_again(index, vectors: np.ndarray):
    """The same trained inverted file emptied and given `vectors`: what an update must hold."""
    import faiss

    again = faiss.clone_index(index)
    again.reset()
    again.add(np.ascontiguousarray(vectors))
    return again


def test_an_updated_inverted_file_holds_what_adding_every_row_to_it_gives():
    import faiss

    vectors, _ = _clustered(5000, 16, seed=11)
    rng = np.random.default_rng(12)
    # rows removed and others inserted, rows taken over twice, new vectors
    origin = np.delete(np.arange(5000), rng.choice(5000, 40, replace=False))
    origin = np.insert(origin, rng.choice(len(origin), 30), -1)
    origin[rng.choice(np.flatnonzero(origin >= 0), 5)] = origin[origin >= 0][7]
    new_vectors = vectors[np.maximum(origin, 0)]
    new_vectors[origin < 0] = _clustered(100, 16, seed=13)[0][: int((origin < 0).sum())]
    index = vector_index(vectors, "ivf", 16)
    updated = updated_ivf(faiss.clone_index(index), new_vectors, origin)
    assert updated.ntotal == len(origin)
    assert ivf_lists(updated) == ivf_lists(filled_again(index, new_vectors))


def _clustered(rows: int, dimension: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors in clusters, and 60 queries near some of them."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((100, dimension)).astype(np.float32)
    vectors = centers[rng.integers(0, 100, rows)] + 0.5 * rng.standard_normal((rows, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, vectors[:60] + 0.2 * rng.standard_normal((60, dimension)).astype(np.float32)


def test_a_batch_of_exact_nearest_rows_equals_a_brute_force_scan():
    vectors, queries = _clustered(3000, 16, seed=8)
    found = exact_nearest_rows(vectors, queries, 30, block=7)  # blocks that do not divide the batch
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :30]
    assert [set(f) for f in found.tolist()] == [set(e) for e in exact.tolist()]


def test_a_batch_over_an_inverted_file_probing_every_list_is_exact_but_for_half_precision():
    vectors, queries = _clustered(6000, 16, seed=9)
    index = vector_index(vectors, "ivf", 16)
    index.nprobe = index.nlist * BATCH_PROBE_DIVISOR  # the batch probes nprobe / divisor lists: here all
    found = ivf_nearest_rows(index, vectors, queries, 30)
    scores = queries @ vectors.T
    exact = np.argsort(-scores, axis=1)[:, :30]
    # the lists keep half-precision copies: a row may trade places with one whose score is within their error
    thirtieth = np.take_along_axis(scores, exact[:, -1:], axis=1)
    for row_scores, rows, bar in zip(scores, found, thirtieth[:, 0]):
        assert len(set(rows.tolist())) == 30 and (row_scores[rows] >= bar - 2e-3).all()
    assert np.mean([len(set(f) & set(e)) for f, e in zip(found.tolist(), exact.tolist())]) >= 29.5
    # the rows come from the lists' own codes: the vectors passed in are not read
    assert (ivf_nearest_rows(index, np.zeros_like(vectors), queries, 30) == found).all()


def test_a_batch_over_an_inverted_file_split_between_threads_gives_what_one_thread_gives(monkeypatch):
    from indexer.stores import vectors as vector_module

    vectors, queries = _clustered(6000, 16, seed=9)
    index = vector_index(vectors, "ivf", 16)
    monkeypatch.setattr(vector_module, "usable_cores", lambda: 4)
    threaded = ivf_nearest_rows(index, vectors, np.repeat(queries, 20, axis=0), 30)  # 1,200 queries: 2 workers
    monkeypatch.setattr(vector_module, "_BATCH_WORKERS_MIN_QUERIES", 10**9)
    alone = ivf_nearest_rows(index, vectors, np.repeat(queries, 20, axis=0), 30)
    assert [set(f) for f in threaded.tolist()] == [set(a) for a in alone.tolist()]


def test_a_batch_over_an_inverted_file_of_full_precision_rows_reads_the_vectors_and_is_exact():
    import faiss

    vectors, queries = _clustered(6000, 16, seed=9)
    index = faiss.index_factory(16, "IVF16,Flat", faiss.METRIC_INNER_PRODUCT)
    index.train(vectors)
    index.add(vectors)
    index.nprobe = 16 * BATCH_PROBE_DIVISOR
    found = ivf_nearest_rows(index, vectors, queries, 30)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :30]
    assert [set(f) for f in found.tolist()] == [set(e) for e in exact.tolist()]


@pytest.mark.parametrize("block", [5, 16_384])  # in blocks of queries, or all at once
def test_paired_field_cosines_equal_each_query_scored_alone(tmp_path, corpus_copy, fake_encoder, monkeypatch, block):
    monkeypatch.setattr(disk, "_PAIRED_QUERIES", block)
    store = FaissStore(tmp_path / "index")
    build([corpus_copy], store, lambda: fake_encoder, MODEL)
    loaded = store.load()
    rng = np.random.default_rng(3)
    count = len(loaded.records)
    positions = rng.integers(-1, count, (12, 9))  # -1: padding
    queries = loaded.entry_vectors()[rng.integers(0, count, 12)]
    question, answer = loaded.field_cosines_paired(queries, positions)
    unanswered = np.asarray([not record.has_answer for record in loaded.records])
    assert unanswered[positions[positions >= 0]].any()  # the draw holds entries without an answer
    for query, chosen, q_row, a_row in zip(queries, positions, question, answer):
        valid = chosen >= 0
        alone_q, alone_a = loaded.field_cosines(query[None, :], chosen[valid])
        assert np.isnan(q_row[~valid]).all() and np.isnan(a_row[~valid]).all()
        np.testing.assert_allclose(q_row[valid], alone_q, atol=1e-6)
        np.testing.assert_allclose(a_row[valid], alone_a, atol=1e-6)  # NaN where the entry has no answer


def test_a_batch_over_an_inverted_file_finds_the_nearest_rows_a_single_search_finds():
    vectors, queries = _clustered(40_000, 32, seed=5)
    index = vector_index(vectors, "ivf", 32)
    found = ivf_nearest_rows(index, vectors, queries, 2 * 10 + 10)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    assert np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found.tolist(), exact.tolist())]) >= 0.98


def test_a_rebuild_updates_the_inverted_file_and_trains_it_again_once_many_rows_changed(
    tmp_path, corpus_copy, fake_encoder
):
    import faiss

    store = FaissStore(tmp_path / "index")
    build([corpus_copy], store, lambda: fake_encoder, MODEL, index_type="ivf")
    trained = faiss.read_index(str(current_path(store.index_dir) / "ivf.faiss"))
    records = store.load().records
    text = corpus_copy.read_text(encoding="utf-8")
    corpus_copy.write_text(text.replace(records[40].answer, records[40].answer + " Edited.", 1), encoding="utf-8")
    build([corpus_copy], store, lambda: fake_encoder, MODEL, index_type="ivf")
    loaded = store.load()
    assert loaded.manifest["ivf"] == {"lists": 2, "changed_rows": 2}  # the edited answer's row out, its new one in
    updated = faiss.read_index(str(current_path(store.index_dir) / "ivf.faiss"))
    assert ivf_lists(updated) == ivf_lists(filled_again(trained, loaded.vectors))
    text = corpus_copy.read_text(encoding="utf-8")
    for record in list(loaded.records)[:10]:  # 10 answers more: 22 rows changed since training, over 10 %
        text = text.replace(record.answer, record.answer + " Edited.", 1)
    corpus_copy.write_text(text, encoding="utf-8")
    build([corpus_copy], store, lambda: fake_encoder, MODEL, index_type="ivf")
    assert store.load().manifest["ivf"] == {"lists": 2, "changed_rows": 0}  # trained anew


def test_a_rebuild_that_takes_the_vectors_and_inverted_file_over_leaves_the_previous_generation_as_it_was(
    tmp_path, corpus_copy, fake_encoder
):
    # the rebuild writes the edited row into a copy-on-write mapping of vectors.npy and updates the inverted
    # file in memory: neither may reach the previous generation's files, which a failed write falls back on
    store = FaissStore(tmp_path / "index")
    build([corpus_copy], store, lambda: fake_encoder, MODEL, index_type="ivf")
    previous = current_path(store.index_dir)
    assert previous is not None
    digests = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in previous.iterdir()}
    records = store.load().records
    text = corpus_copy.read_text(encoding="utf-8")
    corpus_copy.write_text(text.replace(records[40].answer, records[40].answer + " Edited.", 1), encoding="utf-8")
    build([corpus_copy], store, lambda: fake_encoder, MODEL, index_type="ivf")
    assert current_path(store.index_dir) != previous and store.load().manifest["ivf"]["changed_rows"] == 2
    assert {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in previous.iterdir()} == digests


def _rewrite(generation: Path, name: str, data: bytes, **manifest_changes) -> None:
    """Replace a generation's file and make the manifest vouch for it, as a deliberate edit would."""
    manifest = json.loads((generation / "manifest.json").read_text())
    (generation / name).write_bytes(data)
    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest.update(manifest_changes)
    (generation / "manifest.json").write_text(json.dumps(manifest))


def _npy(array: np.ndarray) -> bytes:
    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    stream = io.BytesIO()
    np.savez(stream, **arrays)
    return stream.getvalue()


@pytest.mark.parametrize(
    "damage",
    [
        "not a zip",
        "empty",
        "truncated zip",
        "compressed",
        "an array missing",
        "postings past the entries",
        "starts going back",
        "a term count short",
        "trigrams past the spellings",
    ],
)
def test_a_lexical_index_that_passes_its_checksum_but_is_damaged_is_reported_corrupt(tmp_path, fake_encoder, damage):
    store = make(tmp_path / "index", CORPUS, fake_encoder)
    generation = current_path(store.index_dir)
    data = (generation / "lexical.npz").read_bytes()
    arrays = dict(np.load(generation / "lexical.npz"))
    compressed = io.BytesIO()
    np.savez_compressed(compressed, **arrays)
    changed = {
        "postings past the entries": ("ids0", arrays["ids0"] + 1000),
        "starts going back": ("starts1", arrays["starts1"][::-1].copy()),
        "a term count short": ("containing", arrays["containing"][:-1]),
        "trigrams past the spellings": ("gram_words", arrays["gram_words"] + 10_000),
    }
    _rewrite(
        generation,
        "lexical.npz",
        {
            "not a zip": b"PK garbage",
            "empty": b"",
            "truncated zip": data[:300],
            "compressed": compressed.getvalue(),
            "an array missing": _npz({k: v for k, v in arrays.items() if k != "ids0"}),
            **{name: _npz({**arrays, key: value}) for name, (key, value) in changed.items()},
        }[damage],
    )
    with pytest.raises(IndexCorruptError, match="corrupt"):
        store.load()


def test_a_manifest_whose_dimension_disagrees_with_the_faiss_file_is_refused_not_over_read(tmp_path, fake_encoder):
    store = make(tmp_path / "index", CORPUS, fake_encoder)
    generation = current_path(store.index_dir)
    _downgrade(generation, 1)
    manifest = json.loads((generation / "manifest.json").read_text())
    (generation / "manifest.json").write_text(json.dumps({**manifest, "dimension": 4096}))
    with pytest.raises(IndexCorruptError, match="corrupt"):
        store.load()


@pytest.mark.parametrize("files", [["records.json"], {"records.json": "sha"}])
def test_a_malformed_file_table_in_the_manifest_is_reported_corrupt(tmp_path, fake_encoder, files):
    store = make(tmp_path / "index", CORPUS, fake_encoder)
    path = current_path(store.index_dir) / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "files": files}))
    with pytest.raises(IndexCorruptError, match="corrupt"):
        store.load()


def _damaged_tables(generation: Path) -> dict[str, dict[str, bytes]]:
    """Damage to format 3's table files that passes the checksum (the manifest vouches for it)."""
    records, rows = np.load(generation / "records.npy"), np.load(generation / "rows.npy")
    values = json.loads((generation / "record_values.json").read_text())
    texts = (generation / "record_texts.bin").read_bytes()

    def changed(array: np.ndarray, field: str, index: int, value) -> bytes:
        array = array.copy()
        array[field][index] = value
        return _npy(array)

    def without(array: np.ndarray, field: str) -> np.ndarray:
        kept = [name for name in array.dtype.names if name != field]
        return np.array([tuple(row) for row in array[kept]], dtype=[(name, array.dtype[name]) for name in kept])

    return {
        "records.npy": {
            "not npy": b"\x93NUMPY garbage",
            "empty": b"",
            "truncated": _npy(records)[:-8],
            "a damaged header": _npy(records).replace(b"{'descr'", b"((descr'", 1),
            "a field missing": _npy(without(records, "status")),
            "one record short": _npy(records[:-1]),
            "a text end past the texts": changed(records, "question_raw_end", -1, len(texts) + 1),
            "text ends going back": changed(records, "answer_end", 0, 0),
            "a code beyond its values": changed(records, "status", 0, 99),
            "a negative code": changed(records, "status", 0, -1),
            "a pickled array": _npy(np.array([{"id": 1}] * len(records), dtype=object)),
            "lines as floats": _npy(
                records.astype(
                    [(name, float if name == "line" else records.dtype[name]) for name in records.dtype.names]
                )
            ),
        },
        "record_values.json": {
            "not json": b"{",
            "a list": b"[]",
            "a field missing": json.dumps({k: v for k, v in values.items() if k != "status"}).encode(),
            "values not a list": json.dumps({**values, "status": "ok"}).encode(),
            "too few values": json.dumps({**values, "status": values["status"][:1]}).encode(),
        },
        "record_texts.bin": {"shorter than its offsets": texts[:-1], "longer than its offsets": texts + b"x"},
        "rows.npy": {
            "positions beyond the records": changed(rows, "record", 0, 10_000),
            "a field code of 2": changed(rows, "field", 0, 2),
            "plain numbers": _npy(rows["record"].copy()),
            "positions as int64": _npy(rows.astype([("record", "<i8"), ("field", "u1"), ("key", rows.dtype["key"])])),
            "a key missing": _npy(rows[:-1]),
            "keys as numbers": _npy(
                np.array(
                    [(r, f, 0) for r, f, _ in rows.tolist()], dtype=[("record", "<i4"), ("field", "u1"), ("key", "<i8")]
                )
            ),
        },
    }


TABLE_DAMAGES = [
    (name, damage)
    for name, damages in {
        "records.npy": [
            "not npy",
            "empty",
            "truncated",
            "a damaged header",
            "a field missing",
            "one record short",
            "a text end past the texts",
            "text ends going back",
            "a code beyond its values",
            "a negative code",
            "a pickled array",
            "lines as floats",
        ],
        "record_values.json": ["not json", "a list", "a field missing", "values not a list", "too few values"],
        "record_texts.bin": ["shorter than its offsets", "longer than its offsets"],
        "rows.npy": [
            "positions beyond the records",
            "a field code of 2",
            "plain numbers",
            "positions as int64",
            "a key missing",
            "keys as numbers",
        ],
    }.items()
    for damage in damages
]


@pytest.mark.parametrize("name, damage", TABLE_DAMAGES)
def test_table_files_that_pass_their_checksum_but_are_damaged_are_reported_corrupt(
    tmp_path, fake_encoder, name, damage
):
    store = make(tmp_path / "index", CORPUS, fake_encoder)
    generation = current_path(store.index_dir)
    _rewrite(generation, name, _damaged_tables(generation)[name][damage])
    with pytest.raises(IndexCorruptError, match="corrupt"):
        store.load()


def test_row_positions_beyond_the_records_in_an_older_format_are_reported_corrupt(tmp_path, fake_encoder):
    store = make(tmp_path / "index", CORPUS, fake_encoder)
    generation = current_path(store.index_dir)
    _downgrade(generation, 2)
    rows = json.loads((generation / "rows.json").read_text())
    rows["record"][0] = 10_000
    _rewrite(generation, "rows.json", json.dumps(rows).encode())
    with pytest.raises(IndexCorruptError, match="corrupt"):
        store.load()
