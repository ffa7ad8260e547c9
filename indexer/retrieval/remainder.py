"""What a query asks beyond its best entry: the words that entry does not contain, as the model read them.

`nomatch.py` weighs how far the best entry stands above the document's mean for these words
(`remainder_gap`, scored in search.py). A paraphrase's leftover words say the entry's subject in other
words and still point at it ("squeezes its input and rebuilds it" → the autoencoder entry); a near-topic
question's leftover words name what the entry does not cover ("materialized ... refreshed" against
"What is a view?") and point at nothing in particular. Leave-one-document-out over the six documents of
eval/suite.json, it raised mean no-match accuracy from 0.80 to 0.85 at the same false rejections
(docs/quality.md).

The leftover words' vector is pooled from the query's own model run (`pooled_words`): the mean of the
token states of those words, as the model saw them inside the query. Embedding them again on their own
cost one more model run per search (4 ms here, and what held a batch of searches above its goal);
pooled, leave-one-document-out no-match accuracy was 0.880 against 0.878, at 0.055 false rejections
against 0.059 (docs/quality.md). Without token states (an encoder that keeps none, a word the query did
not type) the words are embedded on their own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from indexer.retrieval.embed import TokenStates, normalize
from indexer.retrieval.lexical import LexicalIndex, LexicalMatch
from indexer.retrieval.tokens import WORD


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
    """What queries ask beyond an entry: the document's lexical index, and the query encoder for leftover
    words that cannot be pooled from a query's token states (`pooled_words`)."""

    lexical: LexicalIndex
    encode: Callable[[list[str]], np.ndarray]  # texts → their unit vectors (one row each), as queries are embedded

    def words(self, match: LexicalMatch, position: int) -> list[str]:
        """The leftover words (none when the entry contains every word)."""
        return uncovered_words(self.lexical, match, position)


def pooled_words(states: TokenStates | None, words: Sequence[str]) -> np.ndarray | None:
    """The unit mean of the token states of every occurrence of `words` in the query as typed; None when
    a word is not in it (a typo corrected: the word the document uses was never typed) or no states were
    kept. Leave-one-document-out, pooling corrected words from the corrected query instead gave 0.871
    no-match accuracy at 0.062 false rejections, against 0.880 at 0.055 this way (docs/quality.md)."""
    if states is None or len(states.text.lower()) != len(states.text):  # lower-casing moved the characters
        return None
    wanted = set(words)
    found = [match for match in WORD.finditer(states.text.lower()) if match.group() in wanted]
    if {match.group() for match in found} != wanted:
        return None
    inside = np.zeros(len(states.spans), dtype=bool)
    for match in found:
        tokens = (states.spans[:, 0] < match.end()) & (states.spans[:, 1] > match.start())
        if not tokens.any():  # past the model's 256 tokens: the run never saw this word
            return None
        inside |= tokens
    return normalize(states.states[inside].mean(axis=0, keepdims=True))[0]
