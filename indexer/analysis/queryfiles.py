"""Query files, read the same way by every command: plain ones (one query per line, `-` for standard
input: `search --batch`) and labelled ones (JSON lines `{"query": str, "relevant": [ids], "kind": str}`,
`relevant: []` for a query the document does not answer: `eval`). Unreadable or malformed files are a
`QueryError` naming the file (and the line).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from indexer.documents.records import RecordId
from indexer.errors import QueryError


@dataclass(frozen=True)
class LabelledQuery:
    query: str
    relevant: list[RecordId]
    kind: str
    where: str = ""  # "file: line n", for error messages


def read_queries(name: str) -> list[str]:
    """The non-blank lines of a plain query file (`-`: standard input)."""
    return [line.rstrip("\r") for line in _read_text(name).split("\n") if line.strip()]


def load_queries(path: Path) -> list[LabelledQuery]:
    lines = _read_text(str(path)).split("\n")
    queries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            query, relevant, kind = row["query"], row["relevant"], row.get("kind", "")
            if (
                not isinstance(query, str)
                or not isinstance(relevant, list)
                or not isinstance(kind, str)
                or not all(isinstance(i, (int, str)) and not isinstance(i, bool) for i in relevant)
            ):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise QueryError(f'{path}: line {number} is not {{"query": str, "relevant": [ids], "kind": str}}') from None
        queries.append(LabelledQuery(query, relevant, kind, f"{path}: line {number}"))
    if not queries:
        raise QueryError(f"{path}: no queries")
    return queries


def _read_text(name: str) -> str:
    try:
        return sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QueryError(f"{name}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise QueryError(f"{name}: cannot be read as UTF-8 text ({type(exc).__name__})") from None
