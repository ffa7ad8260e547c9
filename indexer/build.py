"""Source files → a fresh index: parse, embed (reusing cached vectors), write; and the freshness check.

`build()` always writes a new generation. `ensure_index()` is what query commands use: it returns a
verified index, building it first when there is none, when it is stale (another source, model or
format) or when it is corrupt, and says why through `notify`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from .embed import DEFAULT_MODEL, Encoder, Progress, model_fingerprint, text_key
from .errors import IndexCorruptError, IndexerError, IndexMissingError, IndexStaleError
from .lexical import LEXICAL_VERSION, LexicalIndex
from .nomatch import DEFAULT_NO_MATCH
from .parse import ParseReport, file_sha256, parse_corpus, source_files
from .records import Record
from .search import DEFAULT_MIN_SCORE, DEFAULT_MODE, LEXICAL_WEIGHT
from .store import FORMAT_VERSION, FaissStore, RowTable, StoredIndex
from .text import answer_texts, has_words, plain_text

PARSER_VERSION = 1
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
    index_type: str
    warnings: list[str] = field(default_factory=list)
    reports: list[ParseReport] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"records": self.records, "missing": self.missing, "link_only": self.link_only,
                "seconds": round(self.seconds, 3), "embedded": self.embedded, "reused": self.reused,
                "index_type": self.index_type, "warnings": self.warnings,
                "sources": [{"source": r.source, "style": r.style, "entries": len(r.records), "by_status": r.counts(),
                             "by_section": _count_sections(r.records),
                             "not_taken": [{"line": line, "why": why} for line, why in r.skipped[:20]]}
                            for r in self.reports]}


def _count_sections(records: list[Record]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[record.section] = counts.get(record.section, 0) + 1
    return counts


def embedding_texts(records: list[Record], answers: list[str] | None = None) -> tuple[list[int], list[str], list[str]]:
    """(record position, field, plain text) for every question and every answer with words in it."""
    answers = answer_texts(records) if answers is None else answers
    positions, fields, texts = [], [], []
    for i, record in enumerate(records):
        positions.append(i)
        fields.append("question")
        texts.append(plain_text(record.question) or record.question)
    for i, answer in enumerate(answers):
        if has_words(answer):
            positions.append(i)
            fields.append("answer")
            texts.append(answer)
    return positions, fields, texts


def source_fingerprint(files: list[Path]) -> list[dict]:
    return [{"path": str(p), "name": p.name, "sha256": file_sha256(p), "bytes": p.stat().st_size} for p in files]


def stale_reason(manifest: dict, sources: list[dict], model: str) -> str | None:
    """Why an index cannot answer for these sources and this model, or None when it can."""
    if manifest.get("model") != model:
        return f"it was built with model {manifest.get('model')!r}, not {model!r}"
    if manifest.get("parser_version") != PARSER_VERSION:
        return "it was built by another version of the parser"
    if manifest.get("format_version", FORMAT_VERSION) < FORMAT_VERSION:
        return "it was built by an older version of this tool"
    if manifest.get("lexical_version") != LEXICAL_VERSION:
        return "its lexical index was built by another version of this tool"
    built = [(s.get("name"), s.get("sha256")) for s in manifest.get("sources", [])]
    if built != [(s["name"], s["sha256"]) for s in sources]:
        return "the source changed since it was built"
    return None


def build(sources: list[Path], store: FaissStore, encoder_factory: Callable[[], Encoder],
          model: str = DEFAULT_MODEL, progress: ProgressFactory | None = None,
          index_type: str = "auto", announce: Callable[[], None] | None = None) -> BuildSummary:
    """Parse `sources`, embed what is not cached, and write a new generation to `store`.

    `announce` is called once the sources parsed, so a notice never precedes a parse error.
    """
    started = time.perf_counter()
    files = source_files(sources)
    reports = parse_corpus(files)
    if announce:
        announce()
    records = [record for report in reports for record in report.records]
    model_fp = model_fingerprint(model)
    answers = answer_texts(records)
    positions, fields, texts = embedding_texts(records, answers)
    keys = [text_key(model_fp, text) for text in texts]
    lexical = LexicalIndex.from_records(records, answers)
    with store.lock():
        cache = _previous_vectors(store, model_fp)
        todo = [i for i, key in enumerate(keys) if key not in cache]
        encoder = encoder_factory() if todo or not cache else None
        dimension = encoder.dimension if encoder else len(next(iter(cache.values())))
        vectors = np.zeros((len(texts), dimension), dtype=np.float32)
        for i, key in enumerate(keys):
            if key in cache:
                vectors[i] = cache[key]
        if todo and encoder:
            vectors[todo] = encoder.encode([texts[i] for i in todo],
                                           progress=progress(len(todo)) if progress else None)
        chosen_type = index_type if index_type != "auto" else ("ivf" if len(texts) >= IVF_MIN_ROWS else "flat")
        seconds = time.perf_counter() - started
        manifest = _manifest(records, files, model, model_fp, dimension, fields, chosen_type, seconds, len(todo))
        manifest["parse"] = [{"source": r.source, "style": r.style, "warnings": r.warnings,
                              "not_taken": [{"line": line, "why": why} for line, why in r.skipped[:20]]}
                             for r in reports]
        store.write(records, RowTable(np.asarray(positions, dtype=np.int32), fields, keys), vectors, manifest,
                    lexical)
    warnings = [w for report in reports for w in report.warnings]
    return BuildSummary(len(records), manifest["missing_count"], manifest["link_only_count"],
                        time.perf_counter() - started, len(todo), len(texts) - len(todo), chosen_type,
                        warnings, reports)


def _previous_vectors(store: FaissStore, model_fp: str) -> dict[str, np.ndarray]:
    try:
        return store.load().cached_vectors(model_fp)
    except IndexerError:
        return {}  # no usable previous generation: embed everything


def _manifest(records: list[Record], files: list[Path], model: str, model_fp: str, dimension: int,
              fields: list[str], index_type: str, seconds: float, embedded: int) -> dict:
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
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 3),
        "embedded_texts": embedded,
        "search": {"default_mode": DEFAULT_MODE, "lexical_weight": LEXICAL_WEIGHT, "min_score": DEFAULT_MIN_SCORE},
        "no_match": DEFAULT_NO_MATCH.to_dict(),
    }


def ensure_index(sources: list[Path], store: FaissStore, encoder_factory: Callable[[], Encoder],
                 model: str = DEFAULT_MODEL, notify: Notify = lambda message: None,
                 progress: ProgressFactory | None = None,
                 on_built: Callable[[BuildSummary], None] | None = None) -> StoredIndex:
    """A verified index for these sources and model, built or rebuilt first when needed."""
    fingerprint = source_fingerprint(source_files(sources))
    try:
        manifest = store.read_manifest()
        reason = "there is no index yet" if manifest is None else stale_reason(manifest, fingerprint, model)
        if reason is None:
            return store.load()
    except IndexMissingError:
        reason = "there is no index yet"
    except (IndexCorruptError, IndexStaleError) as exc:
        reason = str(exc)
    summary = build(sources, store, encoder_factory, model, progress,
                    announce=lambda: notify(f"building the index at {store.location}: {reason}"))
    if on_built:
        on_built(summary)
    return store.load()
