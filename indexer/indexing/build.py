"""Source files → a fresh index (parse, embed, write), and the freshness check.

A build takes over what the previous generation already derived for unchanged entries (reuse.py), so
editing one entry costs about one entry.

`build()` always writes a new generation. `ensure_index()` is what query commands use: it returns a
verified index, building it first when there is none, when it is stale (another source, model or
format) or when it is corrupt, and says why through `notify`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import numpy as np

from indexer.defaults import DEFAULT_MIN_SCORE, DEFAULT_MODE
from indexer.documents.incremental import FileParse, ParseMap, PreviousFile, parse_corpus_again
from indexer.documents.parse import ParseReport, file_sha256, source_files
from indexer.documents.record_table import RecordTable
from indexer.documents.records import Record, field_values
from indexer.documents.text import answer_text, answer_texts, has_words
from indexer.errors import IndexCorruptError, IndexMissingError, IndexStaleError
from indexer.indexing.reuse import UNKNOWN, PreviousBuild
from indexer.retrieval.embed import (
    DEFAULT_MODEL,
    Encoder,
    Progress,
    model_fingerprint,
    text_key,
)
from indexer.retrieval.lexical import LEXICAL_VERSION
from indexer.retrieval.nomatch import DEFAULT_NO_MATCH
from indexer.retrieval.search import LEXICAL_WEIGHT, OTHER_FIELD_WEIGHT
from indexer.stores.base import LoadedIndex, RowOrigins, Store, StoredRows
from indexer.stores.disk import RowTable

PARSER_VERSION = 4  # raise it whenever parsing gives different records: saved indexes are then rebuilt
# From this many rows a generation also stores an inverted-file index (store.py) for nearest rows:
# 1.6 ms instead of 17.7 ms per query at 200k rows, recall@10 0.995 against exact (bench/hnsw.py), and
# search.py re-scores its candidates exactly. Below it a scan is cheap enough (≤ ~6 ms). HNSW, faster
# still, lost recall on near-duplicate-heavy vectors (0.86 at 200k rows) and is only built on request.
IVF_MIN_ROWS = 100_000

Notify = Callable[[str], None]
ProgressFactory = Callable[[int], Progress]  # given a total, returns a per-batch callback


@dataclass(frozen=True)
class BuildSummary:
    records: int
    missing: int
    link_only: int
    seconds: float
    embedded: int  # texts encoded by the model in this build
    reused: int  # vectors taken from the previous generation's cache
    changed: int  # entries not found unchanged in the previous generation: analysed and tokenised anew
    index_type: str
    warnings: list[str] = field(default_factory=list)
    reports: list[ParseReport] = field(default_factory=list)
    parsed: list[str] = field(default_factory=list)  # per source: parsed in full (and why), or read again in part

    def to_dict(self) -> dict:
        return {
            "records": self.records,
            "missing": self.missing,
            "link_only": self.link_only,
            "seconds": round(self.seconds, 3),
            "embedded": self.embedded,
            "reused": self.reused,
            "changed_entries": self.changed,
            "index_type": self.index_type,
            "warnings": self.warnings,
            "sources": [
                {
                    "source": r.source,
                    "style": r.style,
                    "entries": len(r.records),
                    "by_status": r.counts(),
                    "by_section": _count_sections(r.records),
                    "places": r.places,
                    "not_taken": [{"line": line, "why": why} for line, why in r.skipped],
                    "parsed": how,
                }
                for r, how in zip(self.reports, self.parsed or [""] * len(self.reports))
            ],
        }


def _count_sections(records: Sequence[Record]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for section in field_values(records, "section"):
        counts[section] = counts.get(section, 0) + 1
    return counts


def embedding_texts(records: list[Record]) -> tuple[list[int], list[str], list[str]]:
    """(record position, field, plain text) for every question and every answer with words in it, in
    the order of a build's rows."""
    answers = answer_texts(records)
    rows = [(i, "question", question_text(r)) for i, r in enumerate(records)]
    rows += [(i, "answer", answer) for i, answer in enumerate(answers) if has_words(answer)]
    return [row[0] for row in rows], [row[1] for row in rows], [row[2] for row in rows]


def embedding_rows(
    records: Sequence[Record],
    model_fp: str,
    kept: np.ndarray,
    previous: StoredRows | None,
    plain_answer: Callable[[int], str],
) -> tuple[RowTable, np.ndarray]:
    """One row per question, then one per answer with words in it, with the key of its text; and per row,
    the previous row whose vector it takes over (the same text), or -1. Entries kept from the previous
    generation (`kept[i]`, a position there, or -1) keep their rows' keys without their texts being made
    again; the other rows are looked up by their text's key."""
    count = len(records)
    taken = kept >= 0 if previous is not None else np.zeros(count, dtype=bool)
    question_origin, answer_origin = np.full(count, -1, dtype=np.int64), np.full(count, -1, dtype=np.int64)
    previous_keys = np.asarray(previous.rows.keys if previous is not None else [], dtype=str)
    question_keys = np.empty(count, dtype=np.result_type(previous_keys.dtype, "<U32"))
    answer_keys = np.empty_like(question_keys)
    if previous is not None:
        question_origin[taken] = previous.question_row[kept[taken]]
        answer_origin[taken] = previous.answer_row[kept[taken]]
        question_keys[taken] = previous_keys[question_origin[taken]]
        answered = taken & (answer_origin >= 0)
        answer_keys[answered] = previous_keys[answer_origin[answered]]
    has_answer = answer_origin >= 0
    for i in np.flatnonzero(~taken).tolist():
        question_keys[i] = text_key(model_fp, question_text(records[i]))
        answer = plain_answer(i)
        if has_words(answer):
            has_answer[i] = True
            answer_keys[i] = text_key(model_fp, answer)
    answered_positions = np.flatnonzero(has_answer)
    rows = RowTable(
        np.concatenate([np.arange(count), answered_positions]).astype(np.int32),
        ["question"] * count + ["answer"] * len(answered_positions),
        cast(Sequence[str], np.concatenate([question_keys, answer_keys[answered_positions]])),  # a str array
    )
    origin = np.concatenate([question_origin, answer_origin[answered_positions]])
    missing = np.flatnonzero(origin < 0)  # texts seen before elsewhere in the document, or moved
    origin[missing] = _rows_with_keys(previous_keys, np.asarray(rows.keys)[missing])
    return rows, origin


def _rows_with_keys(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Per wanted key, a row holding it among `keys`, or -1. A few keys (an edit) are compared with every
    row (~1 ms each at 190,000 rows); many (a first build over an old index) go through a dict (~50 ms)."""
    if len(wanted) <= 32:
        found = [np.flatnonzero(keys == key) for key in wanted.tolist()]
        return np.array([rows[0] if len(rows) else -1 for rows in found], dtype=np.int64)
    row_of = dict(zip(keys.tolist(), range(len(keys))))
    return np.array([row_of.get(key, -1) for key in wanted.tolist()], dtype=np.int64)


def question_text(record: Record) -> str:
    """What is embedded for a question: its clean text, already plain (a second pass would strip the
    `<div>` that the parser kept from a code span)."""
    return record.question


def row_text(records: Sequence[Record], position: int, row_field: str, plain_answer: Callable[[int], str]) -> str:
    return question_text(records[position]) if row_field == "question" else plain_answer(position)


def source_fingerprint(files: list[Path]) -> list[dict]:
    return [{"path": str(p), "name": p.name, "sha256": file_sha256(p), "bytes": p.stat().st_size} for p in files]


def stale_reason(manifest: dict, sources: list[dict], model: str, format_version: int) -> str | None:
    """Why an index cannot answer for these sources and this model, or None when it can. `format_version`:
    what its store writes (`Store.format_version`)."""
    if manifest.get("model") != model:
        return f"it was built with model {manifest.get('model')!r}, not {model!r}"
    if manifest.get("parser_version") != PARSER_VERSION:
        return "it was built by another version of the parser"
    if manifest.get("format_version", format_version) < format_version:
        return "it was built by an older version of this tool"
    if manifest.get("lexical_version") != LEXICAL_VERSION:
        return "its lexical index was built by another version of this tool"
    built = [(s.get("name"), s.get("sha256")) for s in manifest.get("sources", [])]
    if built != [(s["name"], s["sha256"]) for s in sources]:
        return "the source changed since it was built"
    return None


def build(
    sources: list[Path],
    store: Store,
    encoder_factory: Callable[[], Encoder],
    model: str = DEFAULT_MODEL,
    progress: ProgressFactory | None = None,
    index_type: str = "auto",
    announce: Callable[[], None] | None = None,
    no_match: dict | None = None,
) -> BuildSummary:
    """Parse `sources`, embed what is not cached, and write a new generation to `store`.

    `announce` is called once the sources parsed, so a notice never precedes a parse error.
    `no_match`: the no-match parameters to answer with; by default those the previous generation was
    calibrated with from feedback (`calibrate --save`), else the shipped ones.
    """
    started = time.perf_counter()
    files = source_files(sources)
    model_fp = model_fingerprint(model)
    # Outside the lock: a bad source is reported without waiting for another build. What is taken
    # from the previous generation is a cache keyed by content, so it may be an older one.
    previous = PreviousBuild.load(store, model_fp, PARSER_VERSION)
    try:
        parse_maps = previous.parse_maps()
        parses = parse_corpus_again(files, previous.known, parse_maps)
        if announce:
            announce()
        reports = [parse.report for parse in parses]
        records = RecordTable.joined([_as_table(report.records) for report in reports])
        kept = previous.kept_positions(records, _known_positions(parses, parse_maps))
        plain_answer = functools.cache(lambda i: answer_text(records[i]))
        stored = previous.stored_rows()
        rows, origin = embedding_rows(records, model_fp, kept, stored, plain_answer)
        lexical = previous.lexical(records, kept, plain_answer)
        no_match = no_match or previous.calibrated_no_match() or DEFAULT_NO_MATCH.to_dict()
        origins = RowOrigins(previous.index, origin) if previous.index is not None and stored is not None else None
    finally:
        previous.release()  # a database reader holds its generation: let the write below drop it
    with store.lock():
        todo = np.flatnonzero(origin < 0).tolist()
        texts = [row_text(records, int(rows.positions[row]), rows.fields[row], plain_answer) for row in todo]
        vectors = _row_vectors(origin, stored, todo, texts, encoder_factory, progress)  # `stored` is in memory
        chosen_type = index_type if index_type != "auto" else ("ivf" if len(rows.keys) >= IVF_MIN_ROWS else "flat")
        seconds = time.perf_counter() - started
        manifest = _manifest(
            records, files, model, model_fp, vectors.shape[1], rows.fields, chosen_type, seconds, len(todo), no_match
        )
        manifest["source_args"] = [str(Path(source).resolve()) for source in sources]
        manifest["parse"] = [
            {
                "source": r.source,
                "style": r.style,
                "warnings": r.warnings,
                "not_taken": [{"line": line, "why": why} for line, why in r.skipped[:20]],
            }
            for r in reports
        ]
        store.write(records, rows, vectors, manifest, lexical, parse_map=_parse_map(parses), origins=origins)
    warnings = [w for report in reports for w in report.warnings]
    return BuildSummary(
        len(records),
        manifest["missing_count"],
        manifest["link_only_count"],
        time.perf_counter() - started,
        len(todo),
        len(rows.keys) - len(todo),
        int((kept < 0).sum()),
        chosen_type,
        warnings,
        reports,
        [parse.how for parse in parses],
    )


def _as_table(records: Sequence[Record]) -> RecordTable:
    return records if isinstance(records, RecordTable) else RecordTable.from_records(records)


def _known_positions(parses: list[FileParse], previous: dict[str, PreviousFile]) -> np.ndarray:
    """Per record, what its source's parse knows of its previous position (`PreviousBuild.kept_positions`):
    where the parse took the previous records over, their positions then; elsewhere `UNKNOWN`."""
    known = []
    for parse in parses:
        if parse.unchanged is None:
            known.append(np.full(len(parse.report.records), UNKNOWN, dtype=np.int64))
        else:
            first = previous[parse.report.source].first
            known.append(np.where(parse.unchanged >= 0, parse.unchanged + first, -1))
    return np.concatenate(known) if known else np.zeros(0, dtype=np.int64)


def _parse_map(parses: list[FileParse]) -> ParseMap:
    firsts = np.cumsum([0] + [len(parse.report.records) for parse in parses]).tolist()
    mapped = [(parse.map, first) for parse, first in zip(parses, firsts) if parse.map is not None]
    return ParseMap([file_map for file_map, _ in mapped], [first for _, first in mapped])


def _row_vectors(
    origin: np.ndarray,
    previous: StoredRows | None,
    todo: list[int],
    texts: list[str],
    encoder_factory: Callable[[], Encoder],
    progress: ProgressFactory | None,
) -> np.ndarray:
    """One vector per row: the previous row's it takes over (`origin`), else encoded (rows `todo`, whose
    texts are `texts`). When the rows are where they were but for a few, the previous vectors (the
    caller's own, `StoredRows`) are changed in place instead of copied."""
    encoder = encoder_factory() if todo or previous is None else None
    dimension = encoder.dimension if encoder else previous.vectors.shape[1]  # type: ignore[union-attr]
    moved = (
        np.flatnonzero((origin >= 0) & (origin != np.arange(len(origin))))
        if previous is not None and len(previous.vectors) == len(origin)
        else None
    )
    if previous is not None and moved is not None and len(moved) <= len(origin) // 64:
        vectors = previous.vectors
        vectors[moved] = previous.vectors[origin[moved]]  # the right side is copied out first
    else:
        vectors = np.empty((len(origin), dimension), dtype=np.float32)
        if previous is not None:
            take_rows(previous.vectors, origin, vectors)
    if todo and encoder:
        vectors[todo] = encoder.encode(texts, progress=progress(len(todo)) if progress else None)
    return vectors


def take_rows(source: np.ndarray, origin: np.ndarray, out: np.ndarray) -> None:
    """`out[i] = source[origin[i]]` where `origin[i] >= 0`. An edit leaves the rows in long runs of
    consecutive ones, copied run by run: a memory copy, not a gather row by row."""
    taken = np.flatnonzero(origin >= 0)
    if not len(taken):
        return
    # a run breaks where the row numbers, or the rows they come from, stop following each other
    breaks = np.flatnonzero((np.diff(taken) != 1) | (np.diff(origin[taken]) != 1)) + 1
    if len(breaks) > len(taken) // 64:  # scattered: one gather
        out[taken] = source[origin[taken]]
        return
    for run in np.split(taken, breaks):
        first, last = int(run[0]), int(run[-1]) + 1
        out[first:last] = source[origin[first] : origin[first] + last - first]


def _manifest(
    records: Sequence[Record],
    files: list[Path],
    model: str,
    model_fp: str,
    dimension: int,
    fields: Sequence[str],
    index_type: str,
    seconds: float,
    embedded: int,
    no_match: dict,
) -> dict:
    sources = source_fingerprint(files)
    statuses = field_values(records, "status")
    return {
        "parser_version": PARSER_VERSION,
        "lexical_version": LEXICAL_VERSION,
        "model": model,
        "model_fingerprint": model_fp,
        "dimension": dimension,
        "metric": "inner product of L2-normalised vectors (cosine)",
        "index_type": index_type,
        "record_count": len(records),
        "missing_count": statuses.count("missing"),
        "link_only_count": statuses.count("link_only"),
        "question_vectors": fields.count("question"),
        "answer_vectors": fields.count("answer"),
        "source_sha256": sources[0]["sha256"] if len(sources) == 1 else None,
        "sources": sources,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 3),
        "embedded_texts": embedded,
        "search": {
            "default_mode": DEFAULT_MODE,
            "lexical_weight": LEXICAL_WEIGHT,
            "other_field_weight": OTHER_FIELD_WEIGHT,
            "min_score": DEFAULT_MIN_SCORE,
        },
        "no_match": no_match,
    }


def ensure_index(
    sources: list[Path],
    store: Store,
    encoder_factory: Callable[[], Encoder],
    model: str = DEFAULT_MODEL,
    notify: Notify = lambda message: None,
    progress: ProgressFactory | None = None,
    on_built: Callable[[BuildSummary], None] | None = None,
) -> LoadedIndex:
    """A verified index for these sources and model, built or rebuilt first when needed."""
    fingerprint = source_fingerprint(source_files(sources))
    try:
        manifest = store.read_manifest()
        reason = (
            "there is no index yet"
            if manifest is None
            else stale_reason(manifest, fingerprint, model, store.format_version)
        )
        if reason is None:
            return store.load()
    except IndexMissingError:
        reason = "there is no index yet"
    except (IndexCorruptError, IndexStaleError) as exc:
        reason = str(exc).removesuffix("; rebuild it")  # which is what happens next
    summary = build(
        sources,
        store,
        encoder_factory,
        model,
        progress,
        announce=lambda: notify(f"building the index at {store.location}: {reason}"),
    )
    if on_built:
        on_built(summary)
    return store.load()
