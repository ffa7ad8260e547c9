"""Words shown to people, the same in the CLI and the app: status labels, and counts ("1 entry",
"10 of 82 entries have no answer")."""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """ "1 entry", "2 entries": `nouns` when adding an s is wrong."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def entries_phrase(count: int, total: int, what: str) -> str:
    """ "10 of 82 entries have no answer" (or "1 of 82 entries has ...")."""
    verb = "has" if count == 1 else "have"
    return f"{count} of {total} entries {verb} {what}"


# What an entry's status is called wherever it is shown; "ok" entries carry no label.
STATUS_LABELS = {"ok": "answered", "missing": "missing answer", "link_only": "link only"}


def status_label(status: str) -> str:
    """The label of a status ("missing" → "missing answer"); the status itself when it has none."""
    return STATUS_LABELS.get(status, status)
