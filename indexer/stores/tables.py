"""A generation's records and row table as files, and back: all it holds besides vectors and lexical index.

Format 3 (written): four files that load as views of their bytes; no text is decoded until asked for.

    records.npy          one row per record: its short fields (`record_table.SHORT_FIELDS`) as int64, and where
                         its long fields (`record_table.TEXT_FIELDS`) end in record_texts.bin
    record_values.json   per short field: null when its column holds the values themselves (ints: ids,
                         lines), else the distinct values its column indexes (statuses, sections, sources)
    record_texts.bin     the long fields of every record, UTF-8, back to back; decoded per record on demand
    rows.npy             one row per vector: record position, field code (0 question, 1 answer), and the
                         embedding-cache key of its text (by which the next build reuses the vector)

The PostgreSQL store keeps the first three (`RECORD_FILES`, `record_files` and `records_from_files`) as
bytea in its database; its rows are a table there.

Formats 2 and 1 (read, so that the next build can reuse their vectors): the records as one JSON table
(`records.json`) or a JSON object per line (`records.jsonl`), the rows in `rows.json`.

Integrity is store.py's job: every buffer handed to a reader here has passed its checksum. Readers check
shapes and raise ValueError, KeyError or TypeError on anything that does not fit; store.py reports those
as a corrupt index.
"""

from __future__ import annotations

import functools
import io
import json
import math
import re
import struct
import zipfile
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from indexer.documents.record_table import SHORT_FIELDS, TEXT_FIELDS, Buffer, RecordTable
from indexer.documents.records import Record

RECORDS, RECORD_VALUES, RECORD_TEXTS, ROWS = "records.npy", "record_values.json", "record_texts.bin", "rows.npy"
RECORD_FILES = (RECORDS, RECORD_VALUES, RECORD_TEXTS)  # the records alone
TABLE_FILES = (*RECORD_FILES, ROWS)  # format 3
OLD_RECORD_FILES = ("records.json", "records.jsonl")  # formats 2 and 1
OLD_ROW_FILE = "rows.json"
ROW_FIELDS = ("question", "answer")  # the field codes of rows.npy
_TEXT_ENDS = tuple(f"{name}_end" for name in TEXT_FIELDS)
_INT64 = (-(2**63), 2**63)


@dataclass(frozen=True)
class RowTable:
    """Row i of the vector index is field `fields[i]` ("question"/"answer") of `records[positions[i]]`."""

    positions: np.ndarray  # int32, record position per row
    fields: Sequence[str]  # a list; a numpy array of str when loaded
    keys: Sequence[str]  # embedding-cache key of the text behind each row; a numpy array of str when loaded

    def answer_mask(self) -> np.ndarray:
        return np.asarray(self.fields) != "question"

    def record_rows(self, records: int) -> tuple[np.ndarray, np.ndarray]:
        """Per record position, its question row and its answer row (-1 for none)."""
        answer = self.answer_mask()
        row_numbers = np.arange(len(answer), dtype=np.int64)
        question_row = np.full(records, -1, dtype=np.int64)
        answer_row = np.full(records, -1, dtype=np.int64)
        question_row[self.positions[~answer]] = row_numbers[~answer]
        answer_row[self.positions[answer]] = row_numbers[answer]
        return question_row, answer_row

    @classmethod
    def from_json(cls, data: dict) -> RowTable:
        """As formats 1 and 2 stored it: {"record": [...], "field": [...], "key": [...]}."""
        return cls(np.asarray(data["record"], dtype=np.int32), list(data["field"]), list(data["key"]))


def table_files(records: Sequence[Record], rows: RowTable) -> dict[str, bytes]:
    """File name → bytes of the records and the row table, in format 3."""
    keys = np.asarray(rows.keys, dtype=str)
    row_rows = np.empty(len(keys), dtype=[("record", "<i4"), ("field", "u1"), ("key", keys.dtype)])
    row_rows["record"], row_rows["field"], row_rows["key"] = rows.positions, rows.answer_mask(), keys
    return {**record_files(records), ROWS: npy_bytes(row_rows)}


def record_files(records: Sequence[Record]) -> dict[str, bytes]:
    """`RECORD_FILES` name → bytes of the records."""
    table = records if isinstance(records, RecordTable) else RecordTable.from_records(records)
    columns, texts, offsets = table.columns()
    values, codes = zip(*(_encode_column(columns[name]) for name in SHORT_FIELDS))
    record_rows = np.empty(len(table), dtype=[(name, "<i8") for name in SHORT_FIELDS + _TEXT_ENDS])
    for name, column in zip(SHORT_FIELDS, codes):
        record_rows[name] = column
    for f, name in enumerate(_TEXT_ENDS):
        record_rows[name] = offsets[1 + f :: len(TEXT_FIELDS)]
    return {
        RECORDS: npy_bytes(record_rows),
        RECORD_VALUES: json.dumps(dict(zip(SHORT_FIELDS, values)), ensure_ascii=False).encode(),
        RECORD_TEXTS: bytes(texts),
    }


def records_from_files(files: Mapping[str, Buffer]) -> RecordTable:
    """The records from the bytes `record_files` made; ValueError, KeyError or TypeError when they do not fit."""
    return _record_table(npy_view(files[RECORDS], ndim=1), _json(files[RECORD_VALUES]), files[RECORD_TEXTS])


def _encode_column(values: list) -> tuple[list | None, np.ndarray]:
    """(None, the values) for a column of int64-sized ints; else (its distinct values, indexes into them)."""
    if all(type(v) is int and _INT64[0] <= v < _INT64[1] for v in values):
        return None, np.asarray(values, dtype=np.int64)
    distinct = list(dict.fromkeys(values))
    index = {value: i for i, value in enumerate(distinct)}
    return distinct, np.fromiter((index[v] for v in values), np.int64, len(values))


def _decode_column(distinct: list | None, codes: np.ndarray) -> list:
    if distinct is None:
        return codes.tolist()
    if not isinstance(distinct, list) or (len(codes) and not 0 <= codes.min() <= codes.max() < len(distinct)):
        raise ValueError("a record column indexes values it does not have")
    return [distinct[code] for code in codes.tolist()]


def _record_table(rows: np.ndarray, values: dict, texts: Buffer) -> RecordTable:
    if (
        rows.dtype.names != SHORT_FIELDS + _TEXT_ENDS
        or any(rows.dtype[name] != np.int64 for name in rows.dtype.names)
        or not isinstance(values, dict)
    ):
        raise ValueError("records.npy does not hold the record fields")
    offsets = np.zeros(len(TEXT_FIELDS) * len(rows) + 1, dtype=np.int64)
    for f, name in enumerate(_TEXT_ENDS):
        offsets[1 + f :: len(TEXT_FIELDS)] = rows[name]
    return RecordTable({name: _decode_column(values[name], rows[name]) for name in SHORT_FIELDS}, texts, offsets)


def _row_table(rows: np.ndarray) -> RowTable:
    if (
        rows.dtype.names != ("record", "field", "key")
        or rows.dtype["record"] != np.int32
        or rows.dtype["field"] != np.uint8
        or rows.dtype["key"].kind != "U"
        or (rows["field"] > 1).any()
    ):
        raise ValueError("rows.npy does not hold (record position, field code, key) rows")
    # numpy arrays of str stand in for the sequences (read only by length, index and iteration)
    return RowTable(
        np.ascontiguousarray(rows["record"]), np.array(ROW_FIELDS)[rows["field"]], cast(Sequence[str], rows["key"])
    )


def _json(data: Buffer) -> Any:
    return json.loads(bytes(data))


def _old_records(data: Buffer, name: str) -> list[Record]:
    if name == "records.jsonl":
        return [Record.from_dict(json.loads(line)) for line in bytes(data).decode().splitlines()]
    table = _json(data)
    if table["fields"] == list(Record.__dataclass_fields__):
        return [Record(*row) for row in table["rows"]]
    return [Record.from_dict(dict(zip(table["fields"], row))) for row in table["rows"]]


# file name -> what its verified bytes become; `tables_from` puts them together
TABLE_READERS: dict[str, Callable[[Buffer], object]] = {
    RECORDS: lambda data: npy_view(data, ndim=1),
    RECORD_VALUES: _json,
    RECORD_TEXTS: lambda data: data,  # decoded per record, on demand
    ROWS: lambda data: _row_table(npy_view(data, ndim=1)),
    **{name: functools.partial(_old_records, name=name) for name in OLD_RECORD_FILES},
    OLD_ROW_FILE: lambda data: RowTable.from_json(_json(data)),
}


def has_tables(listed: Container[str], format_version: int) -> bool:
    """Whether a generation's file list holds the record and row files its format needs."""
    if format_version >= 3:
        return all(name in listed for name in TABLE_FILES)
    return OLD_ROW_FILE in listed and any(name in listed for name in OLD_RECORD_FILES)


def tables_from(read: dict[str, object]) -> tuple[Sequence[Record], RowTable]:
    """(records, row table) from what `TABLE_READERS` made of a generation's files."""
    if RECORDS in read:
        # what TABLE_READERS made of each file: casts, since that dict holds a different type per name
        records = _record_table(
            cast(np.ndarray, read[RECORDS]), cast(dict, read[RECORD_VALUES]), cast(Buffer, read[RECORD_TEXTS])
        )
        return records, cast(RowTable, read[ROWS])
    old_records = next(cast(list[Record], read[name]) for name in OLD_RECORD_FILES if name in read)
    return old_records, cast(RowTable, read[OLD_ROW_FILE])


_NPY_MAGIC = b"\x93NUMPY\x01\x00"  # format version 1.0: what np.save writes for any array under 4 GiB of header
_NPY_FIELD = r"\(\s*'([^']*)'\s*,\s*'([^']*)'\s*\)"  # one (name, dtype) pair of a structured dtype
_NPY_ENTRY = re.compile(
    r"\s*'(descr|fortran_order|shape)'\s*:\s*('[^']*'|True|False|\(\s*(?:\d+\s*,\s*)*(?:\d+\s*)?\)"
    rf"|\[\s*(?:{_NPY_FIELD}\s*,\s*)*(?:{_NPY_FIELD}\s*)?\])\s*(,|(?=}}))"
)


def npy_view(data: Buffer | memoryview, dtype: type | None = None, ndim: int | None = None) -> np.ndarray:
    """A read-only view of the array in a `.npy` file's bytes (no copy); ValueError unless the bytes hold
    a whole C-order array (of `dtype` with `ndim` dimensions, when given) that needs no unpickling."""
    shape, fortran_order, stored, offset = _npy_header(data)
    if (dtype is not None and stored != np.dtype(dtype)) or fortran_order or (ndim is not None and len(shape) != ndim):
        raise ValueError("the .npy file does not hold the array expected")
    return np.frombuffer(data, dtype=stored, count=math.prod(shape), offset=offset).reshape(shape)


def _npy_header(data: Buffer | memoryview) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran order, dtype, data offset) from a version 1.0 `.npy` header. Read here rather than
    by numpy, which evaluates the header with Python's own parser: in CPython 3.11 that parser is not
    thread-safe (two threads loading files at once failed with "AST constructor recursion depth
    mismatch"), and indexes are loaded on two threads."""
    if bytes(data[:8]) != _NPY_MAGIC or len(data) < 10:
        raise ValueError("not a version 1.0 .npy file")
    offset = 10 + struct.unpack("<H", data[8:10])[0]
    try:
        header = bytes(data[10:offset]).decode("ascii").strip()
    except UnicodeDecodeError:
        raise ValueError("the .npy header is damaged") from None
    entries, position = {}, 1
    while header.startswith("{") and (match := _NPY_ENTRY.match(header, position)):
        entries[match[1]], position = match[2], match.end()
    if header[position:].strip() != "}" or entries.keys() != {"descr", "fortran_order", "shape"}:
        raise ValueError("the .npy header is damaged")
    try:
        descr = entries["descr"]
        stored = np.dtype(re.findall(_NPY_FIELD, descr) if descr.startswith("[") else descr.strip("'"))
    except (TypeError, ValueError):
        raise ValueError("the .npy header names no dtype numpy knows") from None
    shape = tuple(int(size) for size in re.findall(r"\d+", entries["shape"]))
    return shape, entries["fortran_order"] == "True", stored, offset


def npy_bytes(array: np.ndarray) -> bytes:
    """What `np.save` writes, with one copy of the data instead of three (30 ms for 10k entries' vectors)."""
    array = np.ascontiguousarray(array)
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, np.lib.format.header_data_from_array_1_0(array))
    return b"".join((stream.getvalue(), array.reshape(-1).view(np.uint8).data))


def npz_views(data: Buffer) -> dict[str, np.ndarray]:
    """The arrays of an uncompressed `.npz` (np.savez) as views of its bytes: no copy and no CRC pass
    (the caller has checked a sha256 over all of it), except a copy of each array the zip left unaligned."""
    arrays = {}
    try:
        # an mmap has the file methods ZipFile uses (read, seek, tell) but is not typed as IO[bytes]
        source = io.BytesIO(data) if isinstance(data, bytes) else data
        with zipfile.ZipFile(source) as archive:  # type: ignore[arg-type]
            members = archive.infolist()
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ValueError(f"not a zip file: {exc}") from None
    for info in members:
        if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
            raise ValueError(f"{info.filename} is not an uncompressed .npy member")
        header = data[info.header_offset : info.header_offset + 30]  # the member's local header
        if len(header) < 30:
            raise ValueError(f"{info.filename} lies outside the file")
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        start = info.header_offset + 30 + name_length + extra_length
        array = npy_view(memoryview(data)[start : start + info.file_size])
        arrays[info.filename[:-4]] = array if array.flags.aligned else array.copy()
    return arrays
