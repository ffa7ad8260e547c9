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

import numpy as np

from indexer.defaults import DEFAULT_MIN_SCORE, DEFAULT_MODE
from indexer.documents.parse import ParseReport, file_sha256, parse_corpus, source_files
from indexer.documents.records import Record
from indexer.documents.text import answer_text, answer_texts, has_words
from indexer.errors import IndexCorruptError, IndexMissingError, IndexStaleError
from indexer.indexing.reuse import EntryKeys, PreviousBuild
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
from indexer.stores.base import LoadedIndex, Store
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
                }
                for r in self.reports
            ],
        }


def _count_sections(records: list[Record]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[record.section] = counts.get(record.section, 0) + 1
    return counts


def embedding_texts(records: list[Record]) -> tuple[list[int], list[str], list[str]]:
    """(record position, field, plain text) for every question and every answer with words in it, in
    the order of a build's rows."""
    answers = answer_texts(records)
    rows = [(i, "question", question_text(r)) for i, r in enumerate(records)]
    rows += [(i, "answer", answer) for i, answer in enumerate(answers) if has_words(answer)]
    return [row[0] for row in rows], [row[1] for row in rows], [row[2] for row in rows]


def embedding_rows(
    records: list[Record], model_fp: str, reused: dict[int, EntryKeys], plain_answer: Callable[[int], str]
) -> RowTable:
    """One row per question, then one per answer with words in it, with the key of its text; entries in
    `reused` keep their previous keys without their texts being made again."""
    positions, fields, keys = [], [], []
    for i, record in enumerate(records):
        positions.append(i)
        fields.append("question")
        keys.append(reused[i][0] if i in reused else text_key(model_fp, question_text(record)))
    for i in range(len(records)):
        if i in reused:
            key = reused[i][1]
        else:
            answer = plain_answer(i)
            key = text_key(model_fp, answer) if has_words(answer) else None
        if key is not None:
            positions.append(i)
            fields.append("answer")
            keys.append(key)
    return RowTable(np.asarray(positions, dtype=np.int32), fields, keys)


def question_text(record: Record) -> str:
    """What is embedded for a question: its clean text, already plain (a second pass would strip the
    `<div>` that the parser kept from a code span)."""
    return record.question


def row_text(records: list[Record], position: int, row_field: str, plain_answer: Callable[[int], str]) -> str:
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
        reports = parse_corpus(files, previous.known())
        if announce:
            announce()
        records = [record for report in reports for record in report.records]
        kept = previous.kept_positions(records)
        plain_answer = functools.cache(lambda i: answer_text(records[i]))
        rows = embedding_rows(records, model_fp, previous.entry_keys(kept), plain_answer)
        lexical = previous.lexical(records, kept, plain_answer)
        cache = previous.vectors()
        no_match = no_match or previous.calibrated_no_match() or DEFAULT_NO_MATCH.to_dict()
    finally:
        previous.release()  # a database reader holds its generation: let the write below drop it
    with store.lock():
        todo = [row for row, key in enumerate(rows.keys) if key not in cache]
        texts = [row_text(records, int(rows.positions[row]), rows.fields[row], plain_answer) for row in todo]
        vectors = _row_vectors(rows, cache, todo, texts, encoder_factory, progress)
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
        store.write(records, rows, vectors, manifest, lexical)
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
    )


def _row_vectors(
    rows: RowTable,
    cache: dict[str, np.ndarray],
    todo: list[int],
    texts: list[str],
    encoder_factory: Callable[[], Encoder],
    progress: ProgressFactory | None,
) -> np.ndarray:
    """One vector per row: from the cache by key, else encoded (rows `todo`, whose texts are `texts`)."""
    encoder = encoder_factory() if todo or not cache else None
    dimension = encoder.dimension if encoder else len(next(iter(cache.values())))
    vectors = np.zeros((len(rows.keys), dimension), dtype=np.float32)
    for row, key in enumerate(rows.keys):
        if key in cache:
            vectors[row] = cache[key]
    if todo and encoder:
        vectors[todo] = encoder.encode(texts, progress=progress(len(todo)) if progress else None)
    return vectors


def _manifest(
    records: list[Record],
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
    return {
        "parser_version": PARSER_VERSION,
        "lexical_version": LEXICAL_VERSION,
        "model": model,
        "model_fingerprint": model_fp,
        "dimension": dimension,
        "metric": "inner product of L2-normalised vectors (cosine)",
        "index_type": index_type,
        "record_count": len(records),
        "missing_count": sum(r.status == "missing" for r in records),
        "link_only_count": sum(r.status == "link_only" for r in records),
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
