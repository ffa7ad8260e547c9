"""What a later parse compares a Markdown text's lines by: digests of spans of its lines, and the
skeleton of a block of lines (what the parser reads of them across the document).

`incremental.py` keeps these per entry block in the parse map and explains why the skeleton is enough.
The text is handled as UTF-8 bytes with the offset where each line starts (`encoded`), so a span of
lines is hashed without splitting or joining strings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from indexer.documents.lines import Line
from indexer.documents.markdown import is_marker, is_separator, looks_like_entry_in_code

DIGEST_BYTES = 16  # bytes of SHA-256 kept per digest: a chance collision is out of reach
# The facts kept of a plain or fenced line: blank, solution marker, separator, entry-like line in code.
_KIND_CODES = {"heading": "H", "bold": "B", "q": "Q", "a": "A", "setext_rule": "S", "metadata": "M"}
_PLAIN_TOKENS = {kind: [f"{code}{facts:x}" for facts in range(16)] for kind, code in (("text", "t"), ("fenced", "f"))}
# Plain (facts 0) and blank (facts 1) lines, text or code, make runs: token → blank?, and its run's tokens
_RUN_BLANK = {_PLAIN_TOKENS[kind][facts]: facts == 1 for kind in _PLAIN_TOKENS for facts in (0, 1)}
_RUN_OF = {token: tuple(_PLAIN_TOKENS["fenced" if token[0] == "f" else "text"][:2]) for token in _RUN_BLANK}
_MARKER_STARTS = frozenset("*_sSaA")  # a solution marker's first character
_SEPARATOR_STARTS = frozenset("-*_<[")  # a rule's, a break's, a back-to-top link's (a navigation line has a #)


def digest_rows(digests: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(-1, DIGEST_BYTES).copy()


def line_tokens(lines: Sequence[Line]) -> list[str]:
    """Each line as its skeleton sees it (incremental.py's docstring): a line that is not plain or fenced as written,
    of the others what the parser asks of them (`plain_facts`). Written so that a run of tokens reads back
    one way only."""
    tokens = []
    seen: dict[tuple[str, str], str] = {}  # documents repeat their markers, separators and blank lines
    for line in lines:
        kind, text = line.kind, line.text
        if kind == "text" or kind == "fenced":
            token = seen.get((kind, text))
            if token is None:
                token = seen[kind, text] = _PLAIN_TOKENS[kind][plain_facts(text, kind == "fenced")]
            tokens.append(token)
        else:
            tokens.append(f"{_KIND_CODES[kind]}{line.level}:{len(text)}:{text}")
    return tokens


def skeleton(tokens: list[str]) -> bytes:
    """Digest of a block's skeleton from its lines' `line_tokens`. A run of plain and blank lines (text, or
    code) is kept as whether it has a non-blank line and whether its last line is blank: the parser only
    looks past such lines for the next non-blank one, and at the line before a bold line."""
    kept: list[str] = []
    run: tuple[str, bool, bool] | None = None  # (plain token, has a non-blank line, ends blank)

    def close() -> None:
        if run is not None:
            kept.extend(token for token, wanted in zip(_RUN_OF[run[0]], run[1:]) if wanted)

    for token in tokens:
        blank = _RUN_BLANK.get(token)
        if blank is None:
            close()
            run = None
            kept.append(token)
        elif run is not None and _RUN_OF[run[0]] == _RUN_OF[token]:
            run = (run[0], run[1] or not blank, blank)
        else:
            close()
            run = (token, not blank, blank)
    close()
    return short_hash("".join(kept).encode("utf-8", "surrogatepass"))


def plain_facts(text: str, fenced: bool) -> int:
    """The facts of a plain or fenced line as bits: 1 blank, 2 marker, 4 separator, 8 entry-like in code.
    The patterns are tried only on lines whose first character could begin a match."""
    first = text.lstrip()[:1]
    if not first:
        return 1
    facts = 0
    if first in _MARKER_STARTS and is_marker(text):
        facts |= 2
    if (first in _SEPARATOR_STARTS or "#" in text) and is_separator(text):
        facts |= 4
    if fenced and looks_like_entry_in_code(text):
        facts |= 8
    return facts


def encoded(text: str) -> tuple[bytes, np.ndarray]:
    """The text as UTF-8, and the byte offset where each of its lines starts (then one past its end, as if
    it ended with a newline)."""
    data = text.encode("utf-8", "surrogatepass")
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    return data, np.concatenate([[0], newlines + 1, [len(data) + 1]]).astype(np.int64)


def digest(data: bytes, offsets: np.ndarray, first: int, stop: int) -> bytes:
    """Digest of lines `first` to `stop` (exclusive) of the encoded text; b"" when the text has no such
    lines (it never equals a digest)."""
    if not 0 <= first <= stop < len(offsets):
        return b""
    return short_hash(span(data, offsets, first, stop))


def short_hash(data: bytes | memoryview) -> bytes:
    # sha256 runs on the CPU's SHA instructions where there are some: 1.8 GB/s here, blake2b 0.9
    return hashlib.sha256(data).digest()[:DIGEST_BYTES]


def lines_of(data: bytes, offsets: np.ndarray, first: int, stop: int) -> list[str]:
    """Lines `first` to `stop` (exclusive) of the encoded text."""
    return str(span(data, offsets, first, stop), "utf-8", "surrogatepass").split("\n")


def span(data: bytes, offsets: np.ndarray, first: int, stop: int) -> memoryview:
    begin = int(offsets[first])
    return memoryview(data)[begin : max(int(offsets[stop]) - 1, begin)]
