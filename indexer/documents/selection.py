"""Which records: by status (missing answers, link-only ones), by section, by an id a person typed.

Record-level selections that need no vectors; ranking lives in retrieval/search.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from indexer.documents.records import Record, RecordId, field_values
from indexer.errors import QueryError


def missing_answers(records: Sequence[Record]) -> list[Record]:
    return with_status(records, "missing")


def link_only_answers(records: Sequence[Record]) -> list[Record]:
    return with_status(records, "link_only")


def with_status(records: Sequence[Record], status: str) -> list[Record]:
    """The records with this status, in order (only those are made from a `RecordTable`)."""
    return [records[i] for i, value in enumerate(field_values(records, "status")) if value == status]


def parse_record_id(text: str, records: Sequence[Record]) -> RecordId:
    """An id typed by a user: an int for single-file corpora, 'file.md#12' otherwise."""
    ids = {str(record_id): record_id for record_id in field_values(records, "id")}
    if text in ids:
        return ids[text]
    raise QueryError(f"no entry with id {text!r} (ids run like {', '.join(list(ids)[:3])}, ...)")


def section_positions(records: Sequence[Record], section: str) -> np.ndarray:
    """Positions of the records under a section heading (exact name, any case)."""
    wanted = section.strip().casefold()
    sections = field_values(records, "section")
    positions = np.array([i for i, name in enumerate(sections) if name.casefold() == wanted], dtype=np.int64)
    if not len(positions):
        names = sorted({name for name in sections if name})
        if not names:
            raise QueryError(f"no section {section!r}: this document has no sections")
        raise QueryError(f"no section {section!r}; sections: {', '.join(repr(n) for n in names[:8])}")
    return positions
