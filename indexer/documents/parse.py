"""Source files → records: reading safely, choosing the format, ids, statuses, multi-file corpora.

Formats: Markdown (any extension not listed below; see `markdown.py`), CSV/TSV, JSON (an array of
objects) and JSON Lines, all with `question` and `answer` columns. Sources are opened read-only and
never written. Limits, with a clear error past them: 64 MiB per file, 1,000 files per corpus.

Status rule: `missing` when the answer is empty or only a placeholder ("TODO", "TBD", "Answer here",
"Coming soon", "...", any case); `link_only` when it has links or images but no prose of its own (words
such as "Answer", "link", "here", "src", "source" around a link are not prose, nor is boilerplate such as
a "Source" label); otherwise `ok`.

Id rule: in a numbered document (at least half its entries carry a number) an entry keeps the number
written in the document when that number is unique; unnumbered entries and later repeats of a number get
the next free numbers after the largest one, in document order (a warning names every repeat).
Otherwise ids are 1..N in reading order, as a person counts the entries (a stray "2024:" in one heading
does not number a document, and numbering that starts over in each section, with a warning). When a
corpus has several files, ids become "file.md#12".
"""

from __future__ import annotations

import codecs
import contextlib
import gc
import hashlib
import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from indexer.documents.markdown import MarkdownParse, parse_markdown
from indexer.documents.records import Record, RecordId, Status, field_values
from indexer.documents.text import (
    clean_question,
    has_links,
    has_words,
    is_placeholder,
    only_link_words,
    prose_text,
    strip_boilerplate,
)
from indexer.errors import SourceError

MAX_SOURCE_BYTES = 64 * 1024 * 1024
MAX_SOURCE_FILES = 1000
TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
MARKDOWN_SUFFIXES = {".md", ".markdown", ".txt", ".mdx", ".rst", ""}
_QUESTION_COLUMNS = ("question", "q")
_ANSWER_COLUMNS = ("answer", "a")


@dataclass(frozen=True)
class ParseReport:
    """What a source file yielded: records, the entry style found, warnings, what was not taken (prose in
    no entry, lines that looked like entries) and, for Markdown, how many non-blank lines went to each
    place (`places.PLACES`): together every non-blank line of the document."""

    source: str
    records: Sequence[Record]  # a list, or a RecordTable when a rebuild took most of them over
    style: str
    warnings: list[str] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    places: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        statuses = field_values(self.records, "status")
        return {status: statuses.count(status) for status in ("ok", "missing", "link_only")}


@dataclass(frozen=True)
class RawRecord:
    """A parsed entry before ids: the format readers all produce this."""

    line: int
    question_raw: str
    answer: str
    number: int | None
    section: str = ""


@dataclass(frozen=True)
class Known:
    """What an earlier parse derived from entry text: raw question line → clean question, answer as
    written → status. Both are pure functions of the text (for one PARSER_VERSION), so a rebuild takes
    them from the previous index instead of deriving them again for every unchanged entry."""

    questions: Mapping[str, str] = field(default_factory=dict)
    statuses: Mapping[str, Status] = field(default_factory=dict)

    @classmethod
    def from_columns(cls, columns: Mapping[str, list]) -> Known:
        """From records' `question_raw`, `question`, `answer` and `status` columns (`records.field_values`)."""
        return cls(
            dict(zip(columns["question_raw"], columns["question"])), dict(zip(columns["answer"], columns["status"]))
        )

    def question(self, raw: str) -> str:
        known = self.questions.get(raw)
        return known if known is not None else clean_question(raw) or raw.strip()

    def status(self, answer: str) -> Status:
        known = self.statuses.get(answer)
        return known if known is not None else answer_status(answer)


def answer_status(answer: str) -> Status:
    """Classify an answer as a person would: empty or placeholder → missing; only links (with at most
    words such as "Answer", "here", "source" around them) → link_only. Boilerplate does not count as prose."""
    if not answer.strip():
        return "missing"
    prose = prose_text(strip_boilerplate(answer))
    if has_words(prose) and not (only_link_words(prose) and has_links(answer)):
        return "missing" if is_placeholder(prose) else "ok"
    if has_links(answer):
        return "link_only"
    return "missing"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def source_files(sources: list[Path]) -> list[Path]:
    """Expand folders to the supported files inside them (sorted); check every path exists."""
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            inside = sorted(p for p in source.rglob("*") if p.is_file() and _is_supported(p))
            if not inside:
                raise SourceError(f"{source}: folder has no .md, .txt, .csv, .json or .jsonl files")
            files.extend(inside)
        elif source.exists():
            files.append(source)
        else:
            raise SourceError(f"{source}: no such file")
    if len(files) > MAX_SOURCE_FILES:
        raise SourceError(f"{len(files)} source files: more than the limit of {MAX_SOURCE_FILES}")
    return files


def _is_supported(path: Path) -> bool:
    suffix = path.suffix.lower()
    return not path.name.startswith(".") and (suffix in TABLE_SUFFIXES or suffix in MARKDOWN_SUFFIXES - {""})


def parse_corpus(files: list[Path], known: Known | None = None) -> list[ParseReport]:
    """Parse each file; with several files, prefix ids with the file's name so they stay unique."""
    with without_cycle_collection():
        reports = [parse_file(path, known) for path in files]
    return [with_id_prefix(report, prefix) for report, prefix in zip(reports, id_prefixes(files))]


def id_prefixes(files: list[Path]) -> list[str]:
    """What each file's ids start with: nothing for one file, else its short name and `#`."""
    return [f"{name}#" for name in _short_names(files)] if len(files) > 1 else [""] * len(files)


def with_id_prefix(report: ParseReport, prefix: str) -> ParseReport:
    if not prefix:
        return report
    return replace(report, records=[replace(r, id=f"{prefix}{r.id}") for r in report.records])


@contextlib.contextmanager
def without_cycle_collection() -> Iterator[None]:
    """Parsing Markdown makes several small objects per line, none of them in a reference cycle; the
    cycle collector would rescan them again and again as they pile up (a fifth of the time at 10k
    entries). Reference counting still frees them; the collector runs again once parsing is done."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _short_names(files: list[Path]) -> list[str]:
    """File names, or paths relative to the common folder when two files share a name."""
    names = [p.name for p in files]
    if len(set(names)) == len(names):
        return names
    common = Path(os.path.commonpath([str(p.resolve()) for p in files]))
    return [str(p.resolve().relative_to(common)) for p in files]


def parse_file(path: Path, known: Known | None = None) -> ParseReport:
    return parse_text(path, read_source_text(path), known)[0]


def parse_text(path: Path, text: str, known: Known | None = None) -> tuple[ParseReport, MarkdownParse | None]:
    """The report of a source whose text is `text`, and how its entries were found when it is Markdown."""
    kind = TABLE_SUFFIXES.get(path.suffix.lower()) or _sniff_table(text)
    parsed = None
    if kind:
        raws, warnings = _parse_table(text, kind, path)
        style, skipped, places = kind, [], {}
    else:
        parsed = parse_markdown(text)
        raws = [RawRecord(e.line, e.question_raw, e.answer, e.number, e.section) for e in parsed.entries]
        style, skipped, warnings, places = parsed.style, parsed.skipped, [], parsed.place_counts()
    if not raws:
        hint = "" if kind else " (expected bold questions like **1. What is X?**, question headings or Q:/A: pairs)"
        raise SourceError(f"{path}: no question-and-answer entries found{hint}")
    records, id_warnings = _assign_ids(raws, str(path), known or Known())
    return ParseReport(str(path), records, style, warnings + id_warnings, skipped, places), parsed


def read_source_text(path: Path) -> str:
    """Read a source as text, refusing what is not text; CRLF and CR become LF."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise SourceError(f"{path}: not a regular file")
        if size > MAX_SOURCE_BYTES:
            raise SourceError(f"{path}: {size / 2**20:.0f} MiB is more than the {MAX_SOURCE_BYTES // 2**20} MiB limit")
        with open(path, "rb") as fh:  # read-only: the source is never written
            data = fh.read(MAX_SOURCE_BYTES + 1)
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SourceError(f"{path}: is a folder, not a file") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    text = decode_text(data, str(path))
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text  # a scan, not two copies


def decode_text(data: bytes, name: str) -> str:
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                raise SourceError(
                    f"{name}: starts with a {encoding} byte-order mark but is not valid {encoding}"
                ) from None
    if b"\x00" in data:
        raise SourceError(f"{name}: looks like a binary file, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{name}: is not UTF-8 text (invalid byte at offset {exc.start}); save it as UTF-8") from None


def _sniff_table(text: str) -> str | None:
    head = text.lstrip()[:1]
    if head not in ("[", "{"):
        return None
    try:
        json.loads(text)
        return "json"
    except ValueError:
        first = text.lstrip().split("\n", 1)[0]
        try:
            json.loads(first)
            return "jsonl"
        except ValueError:
            return None


def _parse_table(text: str, kind: str, path: Path) -> tuple[list[RawRecord], list[str]]:
    import pandas as pd  # only table sources pay for pandas

    if kind in ("csv", "tsv"):
        try:
            frame = pd.read_csv(io.StringIO(text), sep="\t" if kind == "tsv" else ",", dtype=str, keep_default_na=False)
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            first = str(exc).strip().split("\n")[0] or type(exc).__name__
            raise SourceError(f"{path}: cannot be read as {kind.upper()} ({first})") from None
    else:
        frame = pd.DataFrame(_json_rows(text, kind, path))
    if not isinstance(frame, pd.DataFrame) or frame.empty:
        raise SourceError(f"{path}: no question-and-answer entries found (empty {kind.upper()})")
    columns = {str(c).strip().lower(): c for c in frame.columns}
    question_col = next((columns[c] for c in _QUESTION_COLUMNS if c in columns), None)
    answer_col = next((columns[c] for c in _ANSWER_COLUMNS if c in columns), None)
    if question_col is None or answer_col is None:
        found = ", ".join(map(str, frame.columns[:8]))
        raise SourceError(f"{path}: needs 'question' and 'answer' columns; found: {found}")
    id_col, section_col = columns.get("id"), columns.get("section")
    first_row_line = 2 if kind in ("csv", "tsv") else 1
    raws, warnings = [], []
    for row_number, row in enumerate(frame.to_dict("records"), start=1):
        question = _cell(row.get(question_col))
        if not question.strip():
            warnings.append(f"row {row_number}: empty question, skipped")
            continue
        given = _cell(row.get(id_col)) if id_col is not None else ""
        number = int(given) if given.strip().isdigit() else (None if id_col is not None else row_number)
        raws.append(
            RawRecord(
                row_number + first_row_line - 1,
                question,
                _cell(row.get(answer_col)),
                number,
                _cell(row.get(section_col)) if section_col is not None else "",
            )
        )
    return raws, warnings


def _json_rows(text: str, kind: str, path: Path) -> list[dict]:
    """JSON (an array of objects) or JSON Lines (one object per line) → rows; anything else is refused."""
    if kind == "json":
        try:
            rows = json.loads(text)
        except ValueError as exc:
            raise SourceError(f"{path}: cannot be read as JSON ({exc})") from None
    else:
        rows = []
        for number, line in enumerate(text.split("\n"), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    raise SourceError(f"{path}: cannot be read as JSONL (line {number} is not JSON)") from None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise SourceError(
            f"{path}: needs 'question' and 'answer' columns; expected an array of objects "
            f'like {{"question": ..., "answer": ...}}'
        )
    return rows


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN from pandas
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _assign_ids(raws: list[RawRecord], source: str, known: Known) -> tuple[list[Record], list[str]]:
    """Unique ids by the module's id rule; warn about repeated numbers."""
    seen, warnings = document_numbers([raw.number for raw in raws], [raw.line for raw in raws])
    if not seen:
        ids: list[RecordId] = list(range(1, len(raws) + 1))
    else:
        next_free = max(seen) + 1
        taken: set[int] = set()
        ids = []
        for raw in raws:
            if raw.number is not None and raw.number not in taken:
                taken.add(raw.number)
                ids.append(raw.number)
            else:
                ids.append(next_free)
                next_free += 1
    records = [
        Record(
            id=record_id,
            question=known.question(raw.question_raw),
            answer=raw.answer,
            status=known.status(raw.answer),
            line=raw.line,
            section=raw.section,
            source=source,
            question_raw=raw.question_raw,
        )
        for record_id, raw in zip(ids, raws)
    ]
    return records, warnings


def document_numbers(numbers: list[int | None], lines: list[int]) -> tuple[dict[int, list[int]], list[str]]:
    """The numbers the entries carry (number → lines), or none when they do not number the document: when
    fewer than half the entries carry one, or when numbering starts again (it counts within sections).
    Also the warnings about numbers: repeated ones (with their lines), numbering that starts again."""
    seen: dict[int, list[int]] = {}
    for number, line in zip(numbers, lines):
        if number is not None:
            seen.setdefault(number, []).append(line)
    if seen and len(seen[min(seen)]) > 1:
        low, again = min(seen), len(seen[min(seen)]) - 1
        return {}, [
            f"entry numbers start again at {low} ({again} {'time' if again == 1 else 'times'}); "
            "ids count the entries in reading order instead"
        ]
    if 2 * sum(len(at) for at in seen.values()) < len(numbers):
        return {}, []
    return seen, [
        f"entry number {number} appears {len(at)} times (lines {', '.join(map(str, at))}); "
        f"the first keeps id {number}, the others get new ids"
        for number, at in seen.items()
        if len(at) > 1
    ]
