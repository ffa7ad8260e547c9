"""What readers ask that the document does not answer: logged gap queries, grouped, and exported.

    gaps = find_gaps(log.entries(since), qa)       # largest group first
    gaps_markdown(gaps, entry_style(qa.records, qa.manifest))   # entry skeletons to paste into the document
    gaps_csv(gaps)

A logged search is a gap when it ended in "no good match" or a reader marked its list "none of
these", unless a reader said a result answered it (`LogEntry.is_gap`). Gap queries are grouped by
meaning with the index's own encoder: the same question in other words lands in one group. Grouping
is greedy and deterministic: distinct query texts, most asked first, each join the group whose
centroid is closest if its cosine reaches `GROUP_MIN_COSINE`, else start a group; one more pass
moves each text to its closest final centroid. (Not k-means: the number of questions is unknown and
most are asked once.) Each group's nearest entries are found from its centroid, as a search would.
This module reads no log and prints nothing (querylog.py, cli.py).
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np

from indexer.documents.records import Record, RecordId, field_values
from indexer.retrieval.search import candidate_positions, score_entries
from indexer.usage.querylog import LogEntry, same_words

# all-MiniLM-L6-v2: paraphrases of one question score ~0.6-0.9, different questions on one subject
# ~0.2-0.5 (tests/test_gaps.py checks both sides with the real model)
GROUP_MIN_COSINE = 0.6
NEAREST_K = 3


@dataclass(frozen=True)
class Gap:
    """One question the document does not answer, as asked in the log."""

    label: str  # the phrasing closest to the group's centre (preferring one typed as a question)
    count: int  # searches, repeats included
    first_asked: datetime
    last_asked: datetime
    queries: list[str]  # distinct phrasings, most asked first
    nearest: list[tuple[RecordId, float]]  # the entries closest to the question, with their cosine

    def to_dict(self) -> dict:
        """The stable JSON shape of one group in `gaps --json`."""
        return {
            "label": self.label,
            "count": self.count,
            "first_asked": self.first_asked.isoformat(),
            "last_asked": self.last_asked.isoformat(),
            "queries": self.queries,
            "nearest": [{"id": record_id, "score": round(score, 4)} for record_id, score in self.nearest],
        }


def find_gaps(entries: Sequence[LogEntry], qa, min_cosine: float = GROUP_MIN_COSINE, k: int = NEAREST_K) -> list[Gap]:
    """The gap queries among `entries`, grouped by meaning, largest group first (`qa`: an open QAIndex)."""
    asked: dict[str, list[LogEntry]] = {}
    for entry in entries:
        if entry.is_gap:
            asked.setdefault(same_words(entry.query), []).append(entry)
    if not asked:
        return []
    phrasings = sorted(asked.values(), key=lambda group: (-len(group), group[0].id))
    vectors = qa.encode_queries([_spelling(group) for group in phrasings])
    groups = group_vectors(vectors, min_cosine)
    found = [_gap([phrasings[i] for i in members], vectors[members], qa.stored, k) for members in groups]
    return sorted(found, key=lambda gap: (-gap.count, -gap.last_asked.timestamp(), gap.label))


def _spelling(searches: list[LogEntry]) -> str:
    """The way a phrasing was typed most often (earliest first on ties)."""
    typed = [entry.query for entry in searches]
    return max(dict.fromkeys(typed), key=typed.count)


def group_vectors(vectors: np.ndarray, min_cosine: float) -> list[list[int]]:
    """Rows of normalised `vectors` grouped by meaning (module docstring), each group in row order.
    Rows earlier in `vectors` seed groups first."""
    centroids = np.zeros(vectors.shape, dtype=np.float32)  # at most one group per row
    members: list[list[int]] = []
    for row, vector in enumerate(vectors):
        scores = centroids[: len(members)] @ vector
        best = int(np.argmax(scores)) if len(members) else -1
        if best >= 0 and scores[best] >= min_cosine:
            members[best].append(row)
            centroids[best] = _unit(vectors[members[best]].mean(axis=0))
        else:
            centroids[len(members)] = vector
            members.append([row])
    # a text seen before its true group existed moves there
    nearest = np.argmax(vectors @ centroids[: len(members)].T, axis=1) if len(vectors) else np.zeros(0, int)
    final: dict[int, list[int]] = {}
    for row, group in enumerate(nearest.tolist()):
        final.setdefault(group, []).append(row)
    return [final[group] for group in sorted(final)]


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def _gap(phrasings: list[list[LogEntry]], vectors: np.ndarray, index, k: int) -> Gap:
    centre = _unit(vectors.mean(axis=0))
    spellings = [_spelling(searches) for searches in phrasings]
    # the label becomes an entry's question: the most central phrasing, among those asked as a question if any
    questions = [i for i, text in enumerate(spellings) if text.rstrip().endswith("?")] or list(range(len(spellings)))
    label = spellings[max(questions, key=lambda i: float(vectors[i] @ centre))]
    times = [entry.asked_at for searches in phrasings for entry in searches]
    hits = score_entries(index, centre[None, :], candidate_positions(index, centre[None, :], k), limit=k)
    return Gap(label, len(times), min(times), max(times), spellings, [(hit.record.id, hit.score) for hit in hits])


# ---- exports --------------------------------------------------------------------------------------

EntryKind = Literal["bold", "heading", "qa"]


@dataclass(frozen=True)
class EntryStyle:
    """How the document writes an entry's question line, so new entries look like the others."""

    kind: EntryKind = "bold"
    heading_level: int = 3
    number_mark: str = ""  # "." or ")" after the entry number; "" when entries are not numbered
    next_number: int = 1


_NUMBER = re.compile(r"^\s*(?:#+\s*)?(?:[-*+]\s+)?(?:\*\*|__)?\s*(?:Q(?:uestion)?\s*)?\d{1,5}\s*([.):])", re.I)


def entry_style(records: Sequence[Record], manifest: dict) -> EntryStyle:
    """The entry style of the document an index was built from: its parse style (bold questions,
    question headings or Q:/A: pairs; bold for tables), the first entry's heading level and number
    mark; numbers continue after the largest entry number."""
    styles = [source.get("style") for source in manifest.get("parse", [])]
    kind: EntryKind = next((style for style in styles if style in ("bold", "heading", "qa")), "bold")
    marks = [_NUMBER.match(raw.strip()) for raw in field_values(records, "question_raw")]
    # numbered only when every entry is: the parser numbers unnumbered entries after the largest
    # number, so numbered new entries would change the ids of the unnumbered ones
    first = marks[0] if marks and all(marks) else None
    mark = "" if first is None else first.group(1).replace(":", ".")
    return EntryStyle(kind, _heading_level(records[0]) if kind == "heading" else 3, mark, _largest_number(records) + 1)


def _heading_level(record: Record) -> int:
    """The level of an entry's question heading, read from its source line (the record keeps the
    heading's text only); 3 when the source cannot be read."""
    try:
        with open(record.source, encoding="utf-8", errors="replace") as fh:
            line = next(itertools.islice(fh, record.line - 1, None), "").strip()
    except OSError:
        line = ""
    level = len(line) - len(line.lstrip("#"))
    return level if 1 <= level <= 6 else 3


def _largest_number(records: Sequence[Record]) -> int:
    """The largest entry number; an id like "faq.md#12" counts by its number."""
    found = (re.search(r"\d+$", str(record_id)) for record_id in field_values(records, "id"))
    return max((int(match.group()) for match in found if match), default=0)


def question_line(style: EntryStyle, number: int, question: str) -> str:
    """One entry's question line in `style`, e.g. `**83. How do I get a refund?**`."""
    text = question if question.endswith("?") else question + "?"  # unnumbered styles need it to be read as a question
    text = text[:1].upper() + text[1:]
    numbered = f"{number}{style.number_mark} {text}" if style.number_mark else text
    if style.kind == "heading":
        return f"{'#' * style.heading_level} {numbered}"
    if style.kind == "qa":
        return f"Q: {text}\nA:"
    return f"**{numbered}**"


def gaps_markdown(gaps: Sequence[Gap], style: EntryStyle) -> str:
    """Entry skeletons, one per gap, to append to the document: the question in the document's style
    and an empty answer. What readers asked is kept in an HTML comment under each question, which the
    parser ignores, so the entries count as missing answers until someone writes them. (No heading or
    note above them: appended, it would become part of the last entry's answer.)"""
    parts = []
    for offset, gap in enumerate(gaps):
        parts.append(question_line(style, style.next_number + offset, gap.label))
        parts.append(f"<!-- {_context(gap)} -->")
    return "\n\n".join(parts) + "\n"


def _context(gap: Gap) -> str:
    others = [query for query in gap.queries if query != gap.label]
    text = (
        f"asked {gap.count} time{'s' if gap.count != 1 else ''}, "
        f"{gap.first_asked:%Y-%m-%d} to {gap.last_asked:%Y-%m-%d}"
    )
    if others:
        text += "; also asked as: " + "; ".join(others)
    if gap.nearest:
        text += "; nearest entries: " + ", ".join(f"{record_id} ({score:.2f})" for record_id, score in gap.nearest)
    return text.replace("--", "- -")  # "--" would end the comment early


def gaps_csv(gaps: Sequence[Gap]) -> str:
    """One row per gap: label, count, first_asked, last_asked, queries (joined by " | "), nearest
    ("id:score" joined by " ")."""
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["label", "count", "first_asked", "last_asked", "queries", "nearest"])
    for gap in gaps:
        row = gap.to_dict()
        writer.writerow(
            [
                gap.label,
                gap.count,
                row["first_asked"],
                row["last_asked"],
                " | ".join(gap.queries),
                " ".join(f"{n['id']}:{n['score']}" for n in row["nearest"]),
            ]
        )
    return stream.getvalue()
