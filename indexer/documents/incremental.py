"""A rebuild's parse: a Markdown source is read again only where an edit changed it, when that gives
exactly what a full parse gives; anything else is parsed in full.

A build keeps a map of each Markdown source (`FileMap`, saved with the generation). Every entry owns a
block of lines, from its first line to the next entry's (the last one to the end of the text), and the
map holds per block: a digest of its lines, a digest of its skeleton (`skeleton`), the entry's number and
where its lines went; per source: the digest of the lines before the first entry, the front matter's
length, the entry style, what was not taken and the count of every place. The next build splits the new
text at the same lines and compares digests from both ends (whole groups of blocks first). When only one
block changed and its skeleton is the one the map holds, only that entry is read again (its answer and
status, where its lines went); every entry after it moves by the lines added or removed, and every other
record is taken over as it was.

Why that is exact. Every decision the parser makes across the document (the entry style, the title, which
lines are entries, shared shapes, sections, the heading level of entries, what is reported as not taken,
numbers and so ids) reads a block's lines only through its skeleton. The skeleton keeps every line that
is not plain text or code (headings, bold lines, Q:/A: lines, setext underlines) as written; of a plain
or code line, what the parser asks of it (blank or not, a solution marker, a separator, in code a line
that looks like an entry); of a run of plain and blank lines, whether it has a non-blank line and whether
its last line is blank: past such lines the parser only looks for the next non-blank line, and before a
bold line at the line above it. A block is classified alone exactly as in the whole text: a fence is
never open where an entry starts, so the block is read with the next entry's first line after it, which
must come out as an entry line (no fence left open; that line is no setext heading, whose underline
would need the line above it); and an entry that is itself a setext heading must follow a blank line.
The entry's own reading (`markdown.collect_entry`) and where its lines go read no line outside its block.

Parsed in full instead, with the reason: a source the map does not hold, an edit before the first entry
(title, front matter, preamble), edits in two blocks or more, an added or removed entry, a changed question
line or heading, a fence opened or closed, a line that looks like an entry, a block with lines reported as
not taken (but for a page footer or other prose the last answer hands to the document: its reason, "prose
after the last entry", is the block's own). tests/test_incremental.py checks on many random edits that
both ways give the same records, report and map.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from indexer.documents.line_digests import (
    DIGEST_BYTES,
    digest,
    digest_rows,
    encoded,
    line_tokens,
    lines_of,
    short_hash,
    skeleton,
)
from indexer.documents.lines import FRONT_MATTER_LINES, Line, classify_lines, front_matter_length
from indexer.documents.markdown import (
    MarkdownParse,
    collect_entry,
    skipped_candidates,
)
from indexer.documents.parse import (
    Known,
    ParseReport,
    document_numbers,
    id_prefixes,
    parse_text,
    read_source_text,
    with_id_prefix,
    without_cycle_collection,
)
from indexer.documents.places import PLACES, place_lines, prose_not_taken
from indexer.documents.record_table import RecordTable
from indexer.documents.records import Record

PARSE_MAP_VERSION = 1  # raise it when the map's meaning (or GROUP) changes: older maps are then not used
_PLACE_CODE = {place: code for code, place in enumerate(PLACES)}


@dataclass(frozen=True)
class FileMap:
    """What a later build needs to re-read only the entry an edit touched (one Markdown source)."""

    source: str  # as the records name it
    id_prefix: str  # what its records' ids start with ("" alone, "name.md#" in a corpus of several files)
    lines: int  # lines in its text (newlines + 1)
    front_matter: int
    style: str
    head: bytes  # digest of the lines before the first entry
    skipped: list[tuple[int, str]]  # the parse report's, in full
    places: dict[str, int]  # the parse report's
    blocks: np.ndarray  # (entries, DIGEST_BYTES) uint8: digest of each entry's block of lines
    groups: np.ndarray  # (⌈entries / GROUP⌉, DIGEST_BYTES) uint8: digest of the lines of GROUP blocks at a time
    skeletons: np.ndarray  # (entries, DIGEST_BYTES) uint8: digest of each block's skeleton
    numbers: np.ndarray  # (entries,) int32: each entry's number, -1 for none
    block_places: np.ndarray  # (entries, len(PLACES)) int32: each block's non-blank lines per place


_ENTRY_KINDS = frozenset({"heading", "bold", "q"})  # what an entry's first line is, ATX heading or not
GROUP = 256  # blocks per group digest: an unchanged text is compared in ~400 digests at 100,000 entries
_ARRAYS = {  # the FileMap arrays a ParseMap saves: dtype, and the shape of one row
    "blocks": (np.uint8, (DIGEST_BYTES,)),
    "groups": (np.uint8, (DIGEST_BYTES,)),
    "skeletons": (np.uint8, (DIGEST_BYTES,)),
    "numbers": (np.int32, ()),
    "block_places": (np.int32, (len(PLACES),)),
}


@dataclass(frozen=True)
class ParseMap:
    """The maps of a corpus's Markdown sources; `first[i]` is the position of file i's first record."""

    files: list[FileMap]
    first: list[int]

    def to_arrays(self) -> dict[str, np.ndarray]:
        about = [
            {
                "source": m.source,
                "id_prefix": m.id_prefix,
                "first": first,
                "entries": len(m.numbers),
                "lines": m.lines,
                "front_matter": m.front_matter,
                "style": m.style,
                "head": m.head.hex(),
                "skipped": m.skipped,
                "places": m.places,
            }
            for m, first in zip(self.files, self.first)
        ]
        return {
            "version": np.array([PARSE_MAP_VERSION]),
            "files": np.frombuffer(json.dumps(about, ensure_ascii=False).encode(), dtype=np.uint8),
            **{
                name: np.concatenate([getattr(m, name) for m in self.files] or [np.zeros((0, *row), dtype)])
                for name, (dtype, row) in _ARRAYS.items()
            },
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ParseMap | None:
        """The map `to_arrays` saved; None when another version of the map saved it. ValueError, KeyError,
        TypeError, IndexError or AttributeError when it does not hold together."""
        if int(arrays["version"][0]) != PARSE_MAP_VERSION:
            return None
        about = json.loads(arrays["files"].tobytes())
        sizes = {
            "entries": [int(file["entries"]) for file in about],
            "groups": [-(-int(file["entries"]) // GROUP) for file in about],
        }
        for name, (dtype, row) in _ARRAYS.items():
            rows = sum(sizes["groups" if name == "groups" else "entries"])
            if arrays[name].dtype != dtype or arrays[name].shape != (rows, *row):
                raise ValueError(f"the parse map's {name} do not fit its files")
        at = dict.fromkeys(_ARRAYS, 0)
        files = []
        for i, file in enumerate(about):
            parts = {}
            for name in _ARRAYS:
                stop = at[name] + sizes["groups" if name == "groups" else "entries"][i]
                parts[name], at[name] = arrays[name][at[name] : stop], stop
            files.append(
                FileMap(
                    str(file["source"]),
                    str(file["id_prefix"]),
                    int(file["lines"]),
                    int(file["front_matter"]),
                    str(file["style"]),
                    bytes.fromhex(file["head"]),
                    [(int(line), str(why)) for line, why in file["skipped"]],
                    {str(place): int(count) for place, count in file["places"].items()},
                    **parts,
                )
            )
        return cls(files, [int(file["first"]) for file in about])

    def previous(self, records: Sequence[Record]) -> dict[str, PreviousFile]:
        """Per source, its map and its records in the generation the map was saved with, for sources
        whose records are where the map says (a cache that does not fit is not used)."""
        if not isinstance(records, RecordTable):
            return {}
        sources = records.column("source")
        found = {}
        for file, first in zip(self.files, self.first):
            stop = first + len(file.numbers)
            if len(file.numbers) and stop <= len(sources) and sources[first:stop] == [file.source] * len(file.numbers):
                found[file.source] = PreviousFile(file, records.part(first, stop), first)
        return found


class PreviousFile(NamedTuple):
    """A source as the previous build left it: its map, its records, the position of the first of them."""

    map: FileMap
    records: RecordTable
    first: int


@dataclass(frozen=True)
class FileParse:
    """One source as a build parsed it: its report, its map (Markdown only) and how it was parsed."""

    report: ParseReport
    map: FileMap | None
    # When the previous records were taken over: per record, its position among the source's previous
    # records when its question line and answer are unchanged, else -1. None after a full parse.
    unchanged: np.ndarray | None = None
    how: str = "parsed in full"  # or "unchanged", "one entry read again"


def parse_corpus_again(
    files: list[Path], known: Callable[[], Known | None], previous: dict[str, PreviousFile]
) -> list[FileParse]:
    """Each source parsed as `parse.parse_corpus` parses it, reading again only what changed since the
    maps in `previous` were made (`ParseMap.previous`), and with the maps of the result. `known` is
    called once, for the first source parsed in full."""
    parses = []
    knowing = functools.cache(known)
    with without_cycle_collection():
        for path, prefix in zip(files, id_prefixes(files)):
            text = read_source_text(path)
            before = previous.get(str(path))
            if before is None:
                why = "the previous build left no map of it"
            elif before.map.id_prefix != prefix:
                why = "its ids take another prefix"
            else:
                again = reparse(text, before.map, before.records)
                if isinstance(again, FileParse):
                    parses.append(again)
                    continue
                why = again
            report, parsed = parse_text(path, text, knowing())
            report = with_id_prefix(report, prefix)
            file_map = map_of(report, parsed, text, prefix) if parsed is not None else None
            parses.append(FileParse(report, file_map, None, f"parsed in full: {why}"))
    return parses


def map_of(report: ParseReport, parsed: MarkdownParse, text: str, id_prefix: str) -> FileMap | None:
    """The map of a source a full parse has just read (None when it has no entries)."""
    if not parsed.starts:
        return None
    data, offsets = encoded(text)
    blocks = _Blocks(parsed.starts, len(parsed.lines))
    starts, ends = parsed.starts, [*parsed.starts[1:], len(parsed.lines)]
    at = offsets.tolist()
    view = memoryview(data)
    block_digests = [short_hash(view[at[s] : max(at[e] - 1, at[s])]) for s, e in zip(starts, ends)]
    group_digests = [digest(data, offsets, *blocks.group_lines(g, 0)) for g in range(blocks.groups)]
    tokens = line_tokens(parsed.lines)
    codes = np.array([_PLACE_CODE.get(place, -1) for place in parsed.places[starts[0] :]], dtype=np.int64)
    owner = np.repeat(np.arange(len(starts)), np.diff([*starts, len(parsed.lines)]))
    placed = codes >= 0
    block_places = np.bincount(
        owner[placed] * len(PLACES) + codes[placed], minlength=len(starts) * len(PLACES)
    ).reshape(len(starts), len(PLACES))
    return FileMap(
        report.source,
        id_prefix,
        len(parsed.lines),
        front_matter_length([line.text for line in parsed.lines[:FRONT_MATTER_LINES]]),
        parsed.style,
        digest(data, offsets, 0, starts[0]),
        list(report.skipped),
        dict(report.places),
        digest_rows(block_digests),
        digest_rows(group_digests),
        digest_rows([skeleton(tokens[s:e]) for s, e in zip(starts, ends)]),
        np.array([-1 if e.number is None else e.number for e in parsed.entries], dtype=np.int32),
        block_places.astype(np.int32),
    )


class _Blocks:
    """Where the blocks of entries lie: block b runs from line `starts[b]` to the next block (the last to
    the end of the text, `lines`). Lines are counted in a text edited since by `shift` lines before them."""

    def __init__(self, starts: list[int], lines: int) -> None:
        self.starts, self.total, self.count = starts, lines, len(starts)
        self.groups = -(-self.count // GROUP)

    def lines(self, b: int, shift: int) -> tuple[int, int]:
        return self.starts[b] + shift, (self.starts[b + 1] + shift if b + 1 < self.count else self.total)

    def group_lines(self, g: int, shift: int) -> tuple[int, int]:
        last = min((g + 1) * GROUP, self.count) - 1
        return self.starts[g * GROUP] + shift, self.lines(last, shift)[1]

    def group_blocks(self, g: int) -> range:
        return range(g * GROUP, min((g + 1) * GROUP, self.count))


def reparse(text: str, before: FileMap, records: RecordTable) -> FileParse | str:
    """The source `text` parsed by reading again only the entry an edit changed since `before` was made
    from it, with `records` its records then; a reason to parse it in full when that is not exact."""
    data, offsets = encoded(text)
    starts = [line - 1 for line in records.column("line")]
    if digest(data, offsets, 0, starts[0]) != before.head:
        return "an edit before its first entry"
    blocks = _Blocks(starts, len(offsets) - 1)
    delta = blocks.total - before.lines

    def same(digests: np.ndarray, i: int, lines: tuple[int, int]) -> bool:
        return digest(data, offsets, *lines) == digests[i].tobytes()

    # Blocks before the edit are where they were; those after it have moved by `delta` lines. Whole
    # groups of blocks are compared first, then the blocks of the group that differs.
    group = next((g for g in range(blocks.groups) if not same(before.groups, g, blocks.group_lines(g, 0))), None)
    if group is None:
        return FileParse(_same_report(records, before), before, np.arange(blocks.count), "unchanged")
    front = next(b for b in blocks.group_blocks(group) if not same(before.blocks, b, blocks.lines(b, 0)))
    last_group = next(
        g
        for g in range(blocks.groups - 1, group - 1, -1)
        if g == group or not same(before.groups, g, blocks.group_lines(g, delta))
    )
    back = next(
        b
        for b in reversed(blocks.group_blocks(last_group))
        if b == front or not same(before.blocks, b, blocks.lines(b, delta))
    )
    if back != front:
        return "edits in more than one entry, or entries added or removed"
    if delta and same(before.blocks, front, blocks.lines(front, delta)):
        # lines added or removed where a block ends: the block before it is the one that changed
        if front == 0:
            return "an edit before its first entry"
        front -= 1
    return _reparse_entry(data, offsets, before, records, blocks, front, delta)


def _reparse_entry(
    data: bytes, offsets: np.ndarray, before: FileMap, records: RecordTable, blocks: _Blocks, k: int, delta: int
) -> FileParse | str:
    """Entry k read again (the only block that changed), or why that would not be exact."""
    start, end = blocks.starts[k], blocks.lines(k, delta)[1]  # it starts where it did, the rest moved
    if end <= start:
        return "an entry removed"
    reread = _reread_block(data, offsets, before, records[k], blocks, k, end)
    if isinstance(reread, str):
        return reread
    record, places, not_taken = reread
    lines_after = [line + delta for line in records.column("line")[k + 1 :]]
    new_records = RecordTable.joined(
        [
            records.part(0, k),
            RecordTable.from_records([record]),
            records.part(k + 1, blocks.count).with_column("line", lines_after),
        ]
    )
    report, file_map = _map_after_edit(
        data, offsets, before, new_records, blocks, k, (start, end, delta), places, not_taken
    )
    unchanged = np.arange(blocks.count)
    if (record.question_raw, record.answer) != (records[k].question_raw, records[k].answer):
        unchanged[k] = -1
    return FileParse(report, file_map, unchanged, "one entry read again")


def _reread_block(
    data: bytes, offsets: np.ndarray, before: FileMap, old: Record, blocks: _Blocks, k: int, end: int
) -> tuple[Record, list[str], list[tuple[int, str]]] | str:
    """Block k's entry as the block alone reads it (the record `old` with its new question and answer),
    its lines' places and the lines it reports as not taken; or why reading it alone would not be exact."""
    lines = _block_alone(data, offsets, before, blocks, k, end)
    if isinstance(lines, str):
        return lines
    entry, span = collect_entry(lines, 0, len(lines), before.style, k == blocks.count - 1, old.section)
    places, under = place_lines(lines, [span], None)
    # Of what a block reports as not taken, only a paragraph its answer hands to the document (a page
    # footer after the last answer) is read the same alone: its reason names no heading of another block.
    not_taken = prose_not_taken(lines, places, under)
    if any(line - 1 not in span.back for line, _ in not_taken) or skipped_candidates(lines, {0}, before.style, set()):
        return "the entry's block has lines reported as not taken"
    record = replace(
        old,
        question=old.question if entry.question_raw == old.question_raw else Known().question(entry.question_raw),
        question_raw=entry.question_raw,
        answer=entry.answer,
        status=old.status if entry.answer == old.answer else Known().status(entry.answer),
    )
    return record, places, not_taken


def _map_after_edit(
    data: bytes,
    offsets: np.ndarray,
    before: FileMap,
    new_records: RecordTable,
    blocks: _Blocks,
    k: int,
    edit: tuple[int, int, int],
    places: list[str],
    not_taken: list[tuple[int, str]],
) -> tuple[ParseReport, FileMap]:
    """The parse report and file map after block k, lines `edit` = (start, end, delta), was read again:
    the previous ones with block k's places, not-taken lines and digests replaced, later lines moved."""
    start, end, delta = edit
    old_end = end - delta
    block_places = before.block_places.copy()
    block_places[k] = _place_counts(places)
    places_total = {
        place: before.places.get(place, 0) - int(before.block_places[k, code]) + int(block_places[k, code])
        for code, place in enumerate(PLACES)
    }
    skipped = sorted(
        [(line + delta if line > old_end else line, why) for line, why in before.skipped if not start < line <= old_end]
        + [(start + line, why) for line, why in not_taken]
    )
    report = ParseReport(
        new_records[k].source,
        new_records,
        before.style,
        _number_warnings(before, new_records),
        skipped,
        {place: n for place, n in places_total.items() if n},
    )
    moved = _Blocks([line - 1 for line in new_records.column("line")], blocks.total)
    block_digests, group_digests = before.blocks.copy(), before.groups.copy()
    block_digests[k] = np.frombuffer(digest(data, offsets, start, end), dtype=np.uint8)
    group_digests[k // GROUP] = np.frombuffer(digest(data, offsets, *moved.group_lines(k // GROUP, 0)), dtype=np.uint8)
    file_map = replace(
        before,
        lines=blocks.total,
        skipped=skipped,
        places=report.places,
        blocks=block_digests,
        groups=group_digests,
        block_places=block_places,
    )
    return report, file_map


def _block_alone(
    data: bytes, offsets: np.ndarray, before: FileMap, blocks: _Blocks, k: int, end: int
) -> list[Line] | str:
    """The lines of block k (now ending before line `end`) classified alone, when that classifies them as
    the whole text does and its skeleton is the one the map holds; else why not."""
    start, last = blocks.starts[k], k == blocks.count - 1
    if front_matter_length(lines_of(data, offsets, 0, min(blocks.total, FRONT_MATTER_LINES))) != before.front_matter:
        return "its front matter changed"
    # The block is classified with the next entry's first line (and the one under it, a setext heading's
    # underline) after it: that line must come out an entry line, as in the whole text (so no fence is
    # left open).
    lines = classify_lines(lines_of(data, offsets, start, min(end + 2, blocks.total) if not last else end))
    if not last and lines[end - start].kind not in _ENTRY_KINDS:
        return "the next entry's first line would read otherwise (a fence left open, a setext heading joined)"
    del lines[end - start :]
    if (
        len(lines) > 1
        and lines[1].kind == "setext_rule"
        and start
        and lines_of(data, offsets, start - 1, start)[0].strip()
    ):
        return "the entry is a setext heading right under another line"  # whether it folds depends on that line
    if any(line.kind == "metadata" for line in lines) or skeleton(line_tokens(lines)) != before.skeletons[k].tobytes():
        return "a line that shapes the document changed (a question, heading, fence or entry-like line)"
    return lines


def _same_report(records: RecordTable, before: FileMap) -> ParseReport:
    """The report of a source unchanged since its map was made."""
    return ParseReport(
        before.source,
        records,
        before.style,
        _number_warnings(before, records),
        list(before.skipped),
        dict(before.places),
    )


def _number_warnings(before: FileMap, records: RecordTable) -> list[str]:
    """The parse's warnings about entry numbers (`parse.document_numbers`), which name lines: none unless a
    number repeats."""
    numbered = before.numbers[before.numbers >= 0]
    if len(np.unique(numbered)) == len(numbered):
        return []
    return document_numbers([None if n < 0 else n for n in before.numbers.tolist()], records.column("line"))[1]


def _place_counts(places: list[str]) -> np.ndarray:
    counts = np.zeros(len(PLACES), dtype=np.int32)
    for place in places:
        if place:
            counts[_PLACE_CODE[place]] += 1
    return counts
