"""The small value types that flow between steps: `Record` (one Q&A entry) and `Hit` (one result).

A loaded index keeps its records as columns instead (`record_table.py`); `field_values` reads
one field from either without making Records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

Status = Literal["ok", "missing", "link_only"]
RecordId = int | str  # int for one source file; "file.md#12" when a corpus spans several files


@dataclass(frozen=True)
class Record:
    """One entry of a Q&A document.

    `question` is clean text for display and embedding; `question_raw` is the line as written.
    `answer` is the Markdown as written, minus the solution marker.
    """

    id: RecordId
    question: str
    answer: str
    status: Status
    line: int
    section: str = ""
    source: str = ""
    question_raw: str = ""

    @property
    def missing(self) -> bool:
        return self.status == "missing"

    @property
    def has_answer(self) -> bool:
        return self.status != "missing"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Record:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class Hit:
    """A record with its similarity to a query (or to another record).

    `score` is the cosine similarity of the best-matching field, in [-1, 1]; `question_score` and
    `answer_score` are the per-field cosines (`answer_score` is None when the answer is missing).
    `rank_score` orders results when a mode fuses other evidence; it is not shown to users.
    """

    record: Record
    score: float
    matched_on: Literal["question", "answer", "both"]
    question_score: float
    answer_score: float | None
    rank_score: float = field(default=0.0, compare=False)

    def to_dict(self) -> dict:
        """The stable JSON shape of one result (CLI contract)."""
        r = self.record
        return {
            "id": r.id,
            "question": r.question,
            "answer": r.answer,
            "score": round(self.score, 4),
            "missing": r.missing,
            "status": r.status,
            "matched_on": self.matched_on,
            "section": r.section,
            "source": r.source,
            "line": r.line,
        }


def field_values(records: Sequence[Record], name: str) -> list:
    """One field of every record, in order; from a `RecordTable`'s columns, without making Records."""
    column = getattr(records, "column", None)  # a RecordTable answers from its columns
    return column(name) if column is not None else [getattr(r, name) for r in records]
