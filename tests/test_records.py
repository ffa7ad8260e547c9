"""RecordTable: a read-only sequence of Records held as columns, made on access, equal to the list it holds."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from core_fixtures import CORPUS

from indexer.documents.record_table import RecordTable
from indexer.documents.records import Record, field_values
from indexer.documents.selection import missing_answers, section_positions
from indexer.indexing.build import build
from indexer.stores.disk import FaissStore

RECORDS = [
    Record(1, "What is a GAN?", "Two networks **compete**.", "ok", 3, "Deep learning", "a.md", "**1. What is a GAN?**"),
    Record(2, "什么是过拟合？ 🤔", "", "missing", 9, "", "a.md", "2. 什么是过拟合？ 🤔"),
    Record("b.md#7", "Ünïcödé?", "Ja — ñ\n\n```\ncode\n```", "link_only", 1, "Deep learning", "b.md", ""),
]


def test_a_table_is_a_sequence_equal_to_its_records():
    table = RecordTable.from_records(RECORDS)
    assert len(table) == 3 and table == RECORDS and RECORDS == table and list(table) == RECORDS
    assert table[0] == RECORDS[0] and table[-1] == RECORDS[-1] and table[np.int64(1)] == RECORDS[1]
    assert table[1:] == RECORDS[1:] and table[::-1] == RECORDS[::-1] and table[5:] == []
    assert RECORDS[2] in table and table.index(RECORDS[1]) == 1
    assert table != RECORDS[:2] and table != RECORDS[::-1]
    with pytest.raises(IndexError):
        table[3]
    with pytest.raises(IndexError):
        table[-4]


def test_a_record_is_made_once_and_kept():
    table = RecordTable.from_records(RECORDS)
    assert table[2] is table[2] is list(table)[2]


def test_columns_read_one_field_without_making_records():
    table = RecordTable(*RecordTable.from_records(RECORDS).columns())  # as loaded: no Record made yet
    assert table.column("id") == [1, 2, "b.md#7"] and table.column("answer") == [r.answer for r in RECORDS]
    assert field_values(table, "section") == field_values(RECORDS, "section") == ["Deep learning", "", "Deep learning"]
    assert table._made == [None, None, None]
    assert missing_answers(table) == [RECORDS[1]] and table._made[0] is None
    assert section_positions(table, "deep LEARNING").tolist() == [0, 2]


def test_tables_are_cut_joined_and_relabelled_without_decoding_their_texts():
    table = RecordTable(*RecordTable.from_records(RECORDS).columns())
    moved = table.part(1, 3).with_column("line", [40, 50])
    joined = RecordTable.joined([table.part(0, 1), moved])
    assert list(joined) == [RECORDS[0], replace(RECORDS[1], line=40), replace(RECORDS[2], line=50)]
    assert table._made == [None, None, None]  # the parts view its texts: nothing was made from them
    assert RecordTable.joined([RecordTable.from_records(RECORDS[:1]), table.part(1, 3)]) == RECORDS


def test_columns_that_do_not_line_up_are_refused():
    columns, texts, offsets = RecordTable.from_records(RECORDS).columns()
    with pytest.raises(ValueError):
        RecordTable({**columns, "line": [3, 9]}, texts, offsets)
    with pytest.raises(ValueError):
        RecordTable(columns, texts + b"x", offsets)
    with pytest.raises(ValueError):
        RecordTable(columns, texts, offsets[::-1].copy())


def test_a_loaded_index_makes_only_the_records_a_search_shows(tmp_path, fake_encoder):
    from indexer.engine import QAIndex

    store = FaissStore(tmp_path / "index")
    build([CORPUS], store, lambda: fake_encoder, "fake-model")
    loaded = store.load()
    assert isinstance(loaded.records, RecordTable) and loaded.records._made.count(None) == 82
    QAIndex(loaded, "fake-model", lambda model: fake_encoder).search("what is overfitting", k=3)
    assert 82 - loaded.records._made.count(None) <= 3
