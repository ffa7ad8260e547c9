"""Words and terms: how text becomes lexical tokens, for documents and queries alike.

Tokens are lower-cased words with a light English stemmer (plurals, -ing, -ed), so "Gradients",
"gradient" and "gradient's" match; hyphenated words also count run together ("Wi-Fi" meets "wifi");
capitalised runs also give their initials ("Generative Adversarial Network" holds "gan"). Also here:
the edit distance, the British/American spelling pairs and the replacement of corrected query words.

Deliberately not here: the index over the tokens, BM25 and typo correction against a document's
words (lexical.py).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

WORD = re.compile(r"[^\W_]+", re.UNICODE)
STOPWORDS = frozenset(
    """
a an and are as at be been being but by can could did do does doing for from had has have how i if in into is it
its it's me my of on or our should so than that the their them then there these they this those to too very was
we were what when where which while who whom why will with would you your yours vs versus about also any some
such between explain describe define tell give name what's whats
""".split()
)


@functools.lru_cache(maxsize=1 << 18)  # a corpus repeats few distinct words many times
def stem(word: str) -> str:
    """A light stemmer: enough to match plurals and simple verb forms, never clever.

    >>> [stem(w) for w in ("gradients", "labelled", "evaluating", "evaluate", "batches")]
    ['gradient', 'label', 'evaluat', 'evaluat', 'batch']
    """
    for suffix, replacement, min_stem in (
        ("ies", "y", 3),
        ("sses", "ss", 3),
        ("ing", "", 3),
        ("ed", "", 3),
        ("es", "", 4),
        ("s", "", 3),
    ):
        if word.endswith(suffix) and len(word) - len(suffix) >= min_stem and not word.endswith("ss"):
            word = word[: len(word) - len(suffix)] + replacement
            break
    if len(word) > 4 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]  # running → run
    elif len(word) > 5 and word.endswith("ll"):
        word = word[:-1]  # labelled → label
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]  # evaluate and evaluating meet at "evaluat"
    return word


def damerau_distance(a: str, b: str, limit: int) -> int:
    """Edit distance counting a swap of two neighbours as one edit; stops early past `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


_CAPITALISED_RUN = re.compile(r"\b[A-Z][a-z]+(?:[ \t-]+[A-Z][a-z]+){1,4}\b")


def acronyms(text: str) -> list[str]:
    """Initials of capitalised word runs: "Generative Adversarial Network" → ["gan"]."""
    found: list[str] = []
    for run in _CAPITALISED_RUN.findall(text):
        # stop words are no part of a name: "What Is" gives nothing, and "Explain Generative Adversarial
        # Network" gives "gan"
        initials = "".join(w[0] for w in re.split(r"[ \t-]+", run) if w.lower() not in STOPWORDS).lower()
        found.extend(initials[start:] for start in range(len(initials) - 1))
    return found


def spelled_out(query_words: list[str], known: dict[str, int]) -> list[str]:
    """Terms the document uses that are the initials of 2–5 consecutive query words."""
    found = []
    for size in range(2, 6):
        for start in range(len(query_words) - size + 1):
            initials = "".join(w[0] for w in query_words[start : start + size])
            if initials in known:
                found.append(initials)
    return found


# British and American spellings of one word: (British, American) endings and inner spellings.
_SPELLING_PAIRS = (
    ("isation", "ization"),
    ("ise", "ize"),
    ("ised", "ized"),
    ("ising", "izing"),
    ("yse", "yze"),
    ("our", "or"),
    ("ours", "ors"),
    ("tre", "ter"),
    ("ogue", "og"),
)


def spelling_variants(word: str) -> list[str]:
    """The word in the other spelling convention: "neighbours" → "neighbors", "organise" → "organize".
    ("labelled" and "labeled" need no pair: both stem to "label".)"""
    variants = []
    for british, american in _SPELLING_PAIRS:
        for typed, other in ((british, american), (american, british)):
            at = word.rfind(typed)
            if at > 1:
                variants.append(word[:at] + other + word[at + len(typed) :])
    return variants


def apply_corrections(text: str, corrected: dict[str, str]) -> str:
    """The query with each corrected word (or run of words) replaced, e.g. "vanishng gradents" →
    "vanishing gradients", "fire wall" → "firewall", "userstories" → "user stories"."""
    if not corrected:
        return text
    typed = sorted(corrected, key=len, reverse=True)  # a word pair before either of its words
    pattern = re.compile(
        r"(?<![^\W_])(?:" + "|".join(r"\s+".join(map(re.escape, key.split())) for key in typed) + r")(?![^\W_])",
        re.IGNORECASE,
    )
    # re.IGNORECASE folds more than str.lower() does ("ſ" matches "s"): such a match keeps its text
    return pattern.sub(lambda m: corrected.get(" ".join(m.group(0).lower().split()), m.group(0)), text)


def words(text: str) -> list[str]:
    """Lower-cased words without stop words, before stemming."""
    return [w for w in WORD.findall(text.lower()) if w not in STOPWORDS]


def trigrams(word: str) -> set[str]:
    padded = f"  {word} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


@dataclass(frozen=True)
class EntryTokens:
    """One entry's lexical content: its terms per field (repeats count) and its words as written."""

    question: list[str]
    answer: list[str]
    words: frozenset[str]


_HYPHENATED = re.compile(r"(?<![^\W_])([^\W\d_]+)-([^\W\d_]+)(?![^\W_])")


def hyphen_joins(text: str) -> list[str]:
    """Hyphenated words run together, as people also type them: "Wi-Fi" → ["wifi"], "e-mail" → ["email"]."""
    return [(first + second).lower() for first, second in _HYPHENATED.findall(text)]


def entry_tokens(question: str, answer: str) -> EntryTokens:
    """`question` as clean text, `answer` as plain text ("" when missing)."""
    question_words = words(question) + hyphen_joins(question)
    answer_words = words(answer) + hyphen_joins(answer)
    return EntryTokens(
        [stem(w) for w in question_words] + acronyms(question),
        [stem(w) for w in answer_words] + acronyms(answer),
        frozenset(question_words) | frozenset(answer_words),
    )
