"""What a query asks beyond its best entry: the words that entry does not contain, embedded on their own.

`nomatch.py` weighs how far the best entry stands above the document's mean for these words
(`remainder_gap`, scored in search.py). A paraphrase's leftover words say the entry's subject in other
words and still point at it ("squeezes its input and rebuilds it" → the autoencoder entry); a near-topic
question's leftover words name what the entry does not cover ("materialized ... refreshed" against
"What is a view?") and point at nothing in particular. Leave-one-document-out over the six documents of
eval/suite.json, it raised mean no-match accuracy from 0.80 to 0.85 at the same false rejections
(docs/quality.md).

It costs one more embedding of a few words per search (4 ms here), only when a word is left over; a
batch of searches embeds all its leftovers in one call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from indexer.retrieval.lexical import LexicalIndex, LexicalMatch


def uncovered_words(lexical: LexicalIndex, match: LexicalMatch, position: int) -> list[str]:
    """The query's words (as searched: typos corrected, stop words left out) that the record at
    `position` does not contain, each once, in query order."""
    left: list[str] = []
    for word, term in match.words:
        if word not in left and not lexical.holds(position, term):
            left.append(word)
    return left


@dataclass(frozen=True)
class Remainder:
    """Embeds what queries ask beyond an entry: the document's lexical index and the query encoder."""

    lexical: LexicalIndex
    encode: Callable[[list[str]], np.ndarray]  # texts → their unit vectors (one row each), as queries are embedded

    def text(self, match: LexicalMatch, position: int) -> str | None:
        """The leftover words as one text to embed, or None when the entry contains every word."""
        return " ".join(uncovered_words(self.lexical, match, position)) or None
