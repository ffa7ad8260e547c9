"""Rebuilds: what a build takes over from the previous generation gives the index a build from
scratch gives, and an edit only costs the entries it touched."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from core_fixtures import CORPUS

from indexer.documents.parse import parse_file
from indexer.indexing.build import build
from indexer.stores.disk import FaissStore, current_path

MODEL = "fake-model"


def state(store: FaissStore) -> tuple:
    """Everything a generation holds that a search reads, in comparable form."""
    loaded = store.load()
    lexical = loaded.lexical.to_arrays()
    return (
        list(loaded.records),
        loaded.rows.positions.tolist(),
        list(loaded.rows.fields),
        list(loaded.rows.keys),
        loaded.vectors.tobytes(),
        {name: array.tobytes() for name, array in lexical.items()},
    )


def edit_entries(source: Path) -> None:
    """Change an answer and a question, drop one entry, move one and repeat another."""
    records = parse_file(source).records
    lines = source.read_text(encoding="utf-8").split("\n")
    blocks = [lines[r.line - 1 : following.line - 1] for r, following in zip(records, records[1:])]
    head, tail = lines[: records[0].line - 1], lines[records[-1].line - 1 :]
    blocks[3] = [line.replace("a", "the") for line in blocks[3]]  # question and answer edited
    blocks[10] = blocks[10] + ["One more sentence.", ""]  # answer edited
    del blocks[20]
    blocks.insert(5, blocks.pop(30))
    blocks.append(blocks[40])
    source.write_text("\n".join(head + [line for block in blocks for line in block] + tail), encoding="utf-8")


def test_a_rebuild_after_edits_equals_a_build_from_scratch(tmp_path, corpus_copy, fake_encoder):
    store = FaissStore(tmp_path / "index")
    build([corpus_copy], store, lambda: fake_encoder, MODEL)
    edit_entries(corpus_copy)
    rebuilt = build([corpus_copy], store, lambda: fake_encoder, MODEL)
    scratch = FaissStore(tmp_path / "scratch")
    fresh = build([corpus_copy], scratch, lambda: fake_encoder, MODEL)
    assert state(store) == state(scratch)
    assert fresh.changed == fresh.records == 82  # 82 - 1 dropped + 1 repeated
    assert rebuilt.changed == 3  # two edited entries and the second copy of the repeated one


def test_an_unchanged_corpus_rebuilds_without_deriving_anything_again(tmp_path, fake_encoder, monkeypatch):
    import indexer.indexing.reuse

    store = FaissStore(tmp_path / "index")
    build([CORPUS], store, lambda: fake_encoder, MODEL)
    tokenised: list[str] = []
    original = indexer.indexing.reuse.entry_tokens
    monkeypatch.setattr(indexer.indexing.reuse, "entry_tokens", lambda q, a: tokenised.append(q) or original(q, a))
    before = state(store)
    summary = build([CORPUS], store, lambda: fake_encoder, MODEL)
    assert (summary.changed, summary.embedded, tokenised, summary.parsed) == (0, 0, [], ["unchanged"])
    assert state(store) == before


def test_another_model_re_embeds_everything_and_still_equals_a_build_from_scratch(tmp_path, corpus_copy, fake_encoder):
    store = FaissStore(tmp_path / "index")
    build([corpus_copy], store, lambda: fake_encoder, MODEL)
    edit_entries(corpus_copy)
    summary = build([corpus_copy], store, lambda: fake_encoder, "another-model")
    scratch = FaissStore(tmp_path / "scratch")
    build([corpus_copy], scratch, lambda: fake_encoder, "another-model")
    assert summary.embedded == store.load().row_count and summary.changed == 3
    assert state(store) == state(scratch)


def damage_arrays(store: FaissStore, name: str, change: Callable[[dict], None]) -> None:
    """Change the arrays of one `.npz` file of the current generation, with a checksum made to match: a
    cache that passes its checksum but does not hold together."""
    generation = current_path(store.index_dir)
    arrays = dict(np.load(generation / name))
    change(arrays)
    stream = io.BytesIO()
    np.savez(stream, **arrays)
    (generation / name).write_bytes(stream.getvalue())
    manifest = json.loads((generation / "manifest.json").read_text())
    manifest["files"][name]["sha256"] = hashlib.sha256(stream.getvalue()).hexdigest()
    (generation / "manifest.json").write_text(json.dumps(manifest))


def test_a_damaged_previous_lexical_index_is_rebuilt_from_the_records_not_a_crash(tmp_path, corpus_copy, fake_encoder):
    store = FaissStore(tmp_path / "index")
    build([corpus_copy], store, lambda: fake_encoder, MODEL)
    damage_arrays(store, "lexical.npz", lambda arrays: arrays.update(ids0=arrays["ids0"] + 1000))  # past the entries
    edit_entries(corpus_copy)
    build([corpus_copy], store, lambda: fake_encoder, MODEL)
    scratch = FaissStore(tmp_path / "scratch")
    build([corpus_copy], scratch, lambda: fake_encoder, MODEL)
    assert state(store) == state(scratch)


def parse_map_arrays(store: FaissStore) -> dict:
    parse_map = store.load().parse_map
    assert parse_map is not None
    return {name: array.tobytes() for name, array in parse_map.to_arrays().items()}


def test_an_answer_edit_reads_one_entry_again_and_equals_a_build_from_scratch(tmp_path, corpus_copy, fake_encoder):
    store = FaissStore(tmp_path / "index")
    build([corpus_copy], store, lambda: fake_encoder, MODEL)
    answer = store.load().records[40].answer
    text = corpus_copy.read_text(encoding="utf-8")
    corpus_copy.write_text(text.replace(answer, answer + "\n\nOne more paragraph.", 1), encoding="utf-8")
    fake_encoder.encoded.clear()
    rebuilt = build([corpus_copy], store, lambda: fake_encoder, MODEL)
    assert rebuilt.parsed == ["one entry read again"] and rebuilt.changed == rebuilt.embedded == 1
    assert len(fake_encoder.encoded) == 1 and fake_encoder.encoded[0].endswith(" One more paragraph.")
    scratch = FaissStore(tmp_path / "scratch")
    fresh = build([corpus_copy], scratch, lambda: fake_encoder, MODEL)
    assert fresh.parsed == ["parsed in full: the previous build left no map of it"]
    assert state(store) == state(scratch) and parse_map_arrays(store) == parse_map_arrays(scratch)
    assert rebuilt.to_dict()["sources"] == [{**fresh.to_dict()["sources"][0], "parsed": "one entry read again"}]


def test_a_parse_map_that_does_not_fit_means_a_full_parse_not_a_wrong_one(tmp_path, corpus_copy, fake_encoder):
    store = FaissStore(tmp_path / "index")
    build([corpus_copy], store, lambda: fake_encoder, MODEL)
    damage_arrays(store, "parse_map.npz", lambda arrays: arrays.update(blocks=arrays["blocks"][1:]))  # one short
    answer = store.load().records[40].answer
    text = corpus_copy.read_text(encoding="utf-8")
    corpus_copy.write_text(text.replace(answer, answer + " Edited.", 1), encoding="utf-8")
    rebuilt = build([corpus_copy], store, lambda: fake_encoder, MODEL)
    assert rebuilt.parsed == ["parsed in full: the previous build left no map of it"]
    scratch = FaissStore(tmp_path / "scratch")
    build([corpus_copy], scratch, lambda: fake_encoder, MODEL)
    assert state(store) == state(scratch)
