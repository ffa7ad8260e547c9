"""Counts in words, the same in the CLI and the app: "1 entry", "10 of 82 entries have no answer"."""
from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """"1 entry", "2 entries": `nouns` when adding an s is wrong."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def entries_phrase(count: int, total: int, what: str) -> str:
    """"10 of 82 entries have no answer" (or "1 of 82 entries has ...")."""
    verb = "has" if count == 1 else "have"
    return f"{count} of {total} entries {verb} {what}"
