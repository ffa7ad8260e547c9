"""`RecordTable`: a loaded index's records held as columns, read-only, as a generation's files give them
(stores/tables.py); a `Record` is made only when one is asked for. Short fields are lists, the long
texts one UTF-8 buffer (bytes or a read-only file mapping) decoded per record."""

from __future__ import annotations

import mmap
import operator
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

import numpy as np

from indexer.documents.records import Record

SHORT_FIELDS = ("id", "status", "line", "section", "source")  # a list per field
TEXT_FIELDS = ("question", "answer", "question_raw")  # one UTF-8 buffer, decoded per record
assert sorted(SHORT_FIELDS + TEXT_FIELDS) == sorted(Record.__dataclass_fields__), "RecordTable must hold every field"
Buffer = bytes | mmap.mmap  # bytes, or a file mapped read-only
Texts = Buffer | memoryview  # what a table's texts may be: a part of a table views its whole table's buffer


class RecordTable(Sequence[Record]):
    """Records held as columns, read-only; a `Record` is made the first time it is asked for, then kept.

    The short fields are lists; the long texts are one UTF-8 buffer (bytes, or a memory-mapped file)
    where text j is `texts[offsets[j]:offsets[j + 1]]` and record i's `TEXT_FIELDS` are texts 3i, 3i+1,
    3i+2. So opening 100,000 records makes no Record and decodes no answer, and a query that shows three
    entries decodes three. `column()` reads one field of every record without making Records.

    >>> table = RecordTable.from_records([Record(1, "What?", "That.", "ok", 3)])
    >>> table[-1].answer, table.column("line"), len(table)
    ('That.', [3], 1)
    """

    def __init__(self, columns: dict[str, list], texts: Texts, offsets: np.ndarray) -> None:
        count = len(columns["id"])
        if (
            any(not isinstance(columns[name], list) or len(columns[name]) != count for name in SHORT_FIELDS)
            or offsets.dtype != np.int64
            or offsets.shape != (len(TEXT_FIELDS) * count + 1,)
            or offsets[0] != 0
            or offsets[-1] != len(texts)
            or (np.diff(offsets) < 0).any()
        ):
            raise ValueError("the record columns do not line up")
        self._columns = {name: columns[name] for name in SHORT_FIELDS}
        self._texts = texts
        self._offsets = offsets
        self._made: list[Record | None] = [None] * count

    @classmethod
    def from_records(cls, records: Iterable[Record]) -> RecordTable:
        """The table of these records, which it keeps as made (iterating it makes none again)."""
        records = list(records)
        columns = {name: [getattr(r, name) for r in records] for name in SHORT_FIELDS}
        encoded = [getattr(r, name).encode() for r in records for name in TEXT_FIELDS]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(text) for text in encoded], out=offsets[1:])
        table = cls(columns, b"".join(encoded), offsets)
        table._made = list(records)
        return table

    @classmethod
    def joined(cls, tables: Sequence[RecordTable]) -> RecordTable:
        """One table of the records of `tables`, in order: their columns and texts put end to end."""
        if len(tables) == 1:
            return tables[0]
        columns = {name: [value for table in tables for value in table._columns[name]] for name in SHORT_FIELDS}
        starts = np.cumsum([0] + [len(table._texts) for table in tables[:-1]]).tolist()
        ends = [table._offsets[1:] + start for table, start in zip(tables, starts)]
        offsets = np.concatenate([np.zeros(1, dtype=np.int64), *ends])
        joined = cls(columns, b"".join(table._texts for table in tables), offsets)
        joined._made = [record for table in tables for record in table._made]
        return joined

    def part(self, start: int, stop: int) -> RecordTable:
        """Records `start` to `stop` (exclusive) as a table viewing this one's texts (no copy)."""
        first, last = self._offsets[len(TEXT_FIELDS) * start], self._offsets[len(TEXT_FIELDS) * stop]
        part = RecordTable(
            {name: self._columns[name][start:stop] for name in SHORT_FIELDS},
            memoryview(self._texts)[first:last],
            self._offsets[len(TEXT_FIELDS) * start : len(TEXT_FIELDS) * stop + 1] - first,
        )
        part._made = self._made[start:stop]
        return part

    def with_column(self, name: str, values: list) -> RecordTable:
        """The same records with another value of one short field (`SHORT_FIELDS`) each."""
        return RecordTable({**self._columns, name: values}, self._texts, self._offsets)

    def columns(self) -> tuple[dict[str, list], Texts, np.ndarray]:
        """(short fields, text buffer, offsets): what `RecordTable(...)` takes, for writing to disk."""
        return self._columns, self._texts, self._offsets

    def column(self, name: str) -> list:
        """One field of every record, in order (a new list)."""
        if name in self._columns:
            return list(self._columns[name])
        f = TEXT_FIELDS.index(name)
        offsets = self._offsets.tolist()
        return [self._decode(offsets[j], offsets[j + 1]) for j in range(f, len(offsets) - 1, len(TEXT_FIELDS))]

    def __len__(self) -> int:
        return len(self._made)

    @overload
    def __getitem__(self, index: int) -> Record: ...

    @overload
    def __getitem__(self, index: slice) -> list[Record]: ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = operator.index(index)  # numpy integers too
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("record index out of range")
        record = self._made[i]
        if record is None:
            first = len(TEXT_FIELDS) * i
            record = self._made[i] = self._make(i, self._offsets[first : first + len(TEXT_FIELDS) + 1].tolist())
        return record

    def __iter__(self) -> Iterator[Record]:
        offsets = None
        for i, record in enumerate(self._made):
            if record is None:
                if offsets is None:  # one list for the pass: a numpy slice per record costs more than its texts
                    offsets = self._offsets.tolist()
                first = len(TEXT_FIELDS) * i
                record = self._made[i] = self._make(i, offsets[first : first + len(TEXT_FIELDS) + 1])
            yield record

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]  # equal to lists, which are unhashable

    def __repr__(self) -> str:
        return f"RecordTable({len(self)} records)"

    def _make(self, i: int, bounds: list[int]) -> Record:
        """Record i, given where its texts start and end: `offsets[3i:3i + 4]`. Spelled out, not looped
        over the field names: making every record of a big index is a third faster."""
        columns, decode = self._columns, self._decode
        return Record(
            id=columns["id"][i],
            status=columns["status"][i],
            line=columns["line"][i],
            section=columns["section"][i],
            source=columns["source"][i],
            question=decode(bounds[0], bounds[1]),
            answer=decode(bounds[1], bounds[2]),
            question_raw=decode(bounds[2], bounds[3]),
        )

    def _decode(self, start: int, end: int) -> str:
        # a buffer that passed its checksum is what a build encoded; "replace" only keeps a hand-edited
        # one from raising mid-query
        return str(self._texts[start:end], "utf-8", "replace")
