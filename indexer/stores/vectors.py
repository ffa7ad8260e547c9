"""The vector-search backends over a generation's vectors: exact (flat), a half-precision scan (fp16), an
inverted file over half-precision copies (IVF) and HNSW, built with FAISS; and batched nearest rows and
exact scores for many queries at once. Inner product on L2-normalised vectors, so every score is a cosine.

Deliberately not here: files, generations and verification (disk.py), scoring entries (search.py).
FAISS is imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from indexer.cores import usable_cores

if TYPE_CHECKING:
    import faiss

# An inverted file is updated rather than trained again (`updated_ivf`) while fewer than this share of its
# rows were added or removed since it was trained; then it is trained on the vectors of the day.
IVF_RETRAIN_SHARE = 0.1
# From here a flat generation's nearest rows come from a half-precision scan: 2x faster (190k rows:
# 11 vs 20 ms), recall@30 0.999 against exact, and search.py re-scores the candidates in full precision.
FP16_SCAN_MIN_ROWS = 50_000
# A batch of nearest-row searches (hints for every missing entry) probes a quarter of the lists a query
# probes: at 100,000 entries 10,064 searches took 1.5 s instead of 6.1 s (loaded machine), and the hints
# equalled brute force's (hint recall@3 1.000 in bench/run.py, on its near-duplicate synthetic vectors).
BATCH_PROBE_DIVISOR = 4
_BATCH_WORKERS_MIN_QUERIES = 500  # fewer queries than this per core are not worth a thread
_T = TypeVar("_T")
# Rows per block when many queries are scored together: 512 rows of 384 floats (768 KB) stay in a core's
# cache while each query is scored on them. 18,961 rows, one BLAS thread, 32 queries: 0.51 ms a query
# (256 rows: 0.51, 1,024: 0.63), against 1.56 ms for each query's own product over all rows.
_SCORE_BLOCK_ROWS = 512


class _VectorsOf:
    """Exposes a FAISS index's vector storage to numpy and keeps the index alive as the array's base:
    a bare `faiss.rev_swig_ptr` view would point into freed memory once the index is collected."""

    def __init__(self, faiss_index, dimension: int) -> None:
        import faiss

        storage = faiss.downcast_index(faiss_index.storage) if hasattr(faiss_index, "hnsw") else faiss_index
        if not isinstance(storage, faiss.IndexFlat) or storage.d != dimension:  # else the view over-reads
            raise ValueError("the FAISS file does not hold flat vectors of the index's dimension")
        address = faiss.rev_swig_ptr(storage.get_xb(), 1).ctypes.data
        self.index = faiss_index
        self.__array_interface__ = {
            "data": (address, True),
            "shape": (faiss_index.ntotal, dimension),
            "typestr": "<f4",
            "version": 3,
        }


def stored_vectors(faiss_index, dimension: int) -> np.ndarray:
    """A read-only view of the vectors inside a flat or HNSW-flat FAISS index (no copy)."""
    if not faiss_index.ntotal:
        return np.zeros((0, dimension), dtype=np.float32)
    return np.asarray(_VectorsOf(faiss_index, dimension))


def vector_index(vectors: np.ndarray, index_type: str, dimension: int) -> faiss.Index:
    """An inner-product FAISS index over `vectors`: exact (`flat`), half-precision scan (`fp16`),
    inverted file over half-precision copies (`ivf`) or HNSW."""
    import faiss

    if index_type == "ivf":
        return _ivf_index(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dimension))
    index: faiss.Index
    if index_type == "hnsw":
        hnsw = faiss.IndexHNSWFlat(dimension, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 200
        hnsw.hnsw.efSearch = 256  # recall@10 0.991 vs exact on 20k real embeddings (bench/hnsw.py)
        index = hnsw
    elif index_type == "fp16":
        index = faiss.IndexScalarQuantizer(dimension, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexFlatIP(dimension)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dimension))
    return index


def ivf_lists(rows: int) -> int:
    """The lists of an inverted file over `rows` vectors: √rows (a power of two), 39+ training points each."""
    lists = 2 ** max(0, round(math.log2(math.sqrt(max(rows, 1)))))
    while lists > 1 and rows < 39 * lists:  # FAISS wants 39+ training points per list
        lists //= 2
    return lists


def _ivf_index(vectors: np.ndarray):
    """Inverted file: √rows lists (a power of two), an eighth of them probed per query; trained on a
    fixed sample, so a build of the same vectors from scratch gives the same index."""
    import faiss

    lists = ivf_lists(len(vectors))
    index = faiss.index_factory(vectors.shape[1], f"IVF{lists},SQfp16", faiss.METRIC_INNER_PRODUCT)
    sample = np.sort(np.random.default_rng(0).choice(len(vectors), min(len(vectors), 64 * lists), replace=False))
    index.train(vectors[sample])
    index.add(vectors)
    return set_probes(index)


def updated_ivf(ivf_index, vectors: np.ndarray, origin: np.ndarray):
    """`ivf_index`, trained and filled with a previous generation's rows, changed in place to hold
    `vectors`, where row i has the vector of previous row `origin[i]` (-1: a new vector). Rows taken over
    keep their list and code under their new number, rows gone are removed, new rows are added: what adding
    `vectors` to the same trained index gives, but for the order within a list. Ids stay row numbers."""
    import faiss

    ivf = faiss.extract_index_ivf(ivf_index)
    row_numbers = np.arange(len(origin), dtype=np.int64)
    new_row = np.full(ivf.ntotal, -1, dtype=np.int64)
    taken = origin >= 0
    new_row[origin[taken]] = row_numbers[taken]  # a previous row taken over twice stays with one of them
    gone = np.flatnonzero(new_row < 0)
    if len(gone):
        ivf.remove_ids(faiss.IDSelectorBatch(gone))
    invlists = ivf.invlists
    assert invlists is not None  # a filled inverted file holds its lists
    for lst in range(ivf.nlist):
        size = invlists.list_size(lst)
        if size:  # the list's ids in place: FAISS keeps them in a plain array per list
            ids = faiss.rev_swig_ptr(invlists.get_ids(lst), size)
            ids[:] = new_row[ids]
    added = np.flatnonzero(~taken | (new_row[np.maximum(origin, 0)] != row_numbers))
    if len(added):
        ivf_index.add_with_ids(np.ascontiguousarray(vectors[added], dtype=np.float32), added)
    return ivf_index


def list_count(ivf_index) -> int:
    import faiss

    return faiss.extract_index_ivf(ivf_index).nlist


_PAIRED_ROWS = 4096  # rows per `paired_dots` step: two 6 MB buffers at 384 dimensions


def nan_where_absent(scores: np.ndarray, present: np.ndarray) -> np.ndarray:
    """(sets, len(present)): `scores` (sets, present.sum()) where `present` is true, NaN elsewhere (an
    entry without an answer row has no answer cosine)."""
    spread = np.full((len(scores), len(present)), np.nan, dtype=np.float32)
    spread[:, present] = scores
    return spread


def best_inner_products(vectors: np.ndarray, query_vector_sets: Sequence[np.ndarray]) -> np.ndarray:
    """(sets, rows): each row's best inner product with the vectors of each set (one set per query), each
    value the one that set's own `(vectors @ set.T).max(axis=1)` gives, to the last bit (BLAS on as many threads).

    One product per query re-reads every row from memory (at 10,000 entries, 29 MB a query); here the
    rows go by cache-sized blocks and every one-vector query is scored on a block while it is in cache.
    Not one matrix-matrix product for all: its sums round in another order than a query's own
    matrix-vector product (10,000 entries: scores 5e-7 apart, and one of 200 queries ranked a near tie
    the other way). A query of two vectors (typos corrected, rare) keeps its own product, because a
    matrix-matrix product split into blocks does not round as the whole one does."""
    sets = [np.atleast_2d(query_vectors) for query_vectors in query_vector_sets]
    best = np.empty((len(sets), len(vectors)), dtype=np.float32)
    blocked = [i for i, query_vectors in enumerate(sets) if len(query_vectors) == 1]
    blocked = blocked if len(blocked) > 1 else []
    for start, stop in _blocks(len(vectors) if blocked else 0):
        for i in blocked:
            np.matmul(vectors[start:stop], sets[i][0], out=best[i, start:stop])
    for i in sorted(set(range(len(sets))) - set(blocked)):
        best[i] = (vectors @ sets[i].T).max(axis=1)
    return best


def paired_dots(vectors: np.ndarray, rows: np.ndarray, queries: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """vectors[rows[i]] · queries[owner[i]] for every i. The rows are read in ascending order (a mapped file
    read at random costs a TLB miss per row), `_PAIRED_ROWS` at a time into buffers used again (a fresh
    buffer costs a page fault per 4 KB), each core taking its share: at 100,000 entries the 1,050,000 pairs
    of every missing entry's hints took 2.4 s gathered at once and at random, 0.3 s so."""
    order = np.argsort(rows, kind="stable")
    dots = np.empty(len(rows), dtype=np.float32)

    def fill(share: np.ndarray) -> None:
        gathered = np.empty((min(len(share), _PAIRED_ROWS), vectors.shape[1]), dtype=np.float32)
        asked = np.empty_like(gathered)
        for start in range(0, len(share), _PAIRED_ROWS):
            part = share[start : start + _PAIRED_ROWS]
            # mode="clip": the rows are valid, and the default ("raise") gathers into a fresh buffer first
            np.take(vectors, rows[part], axis=0, out=gathered[: len(part)], mode="clip")
            np.take(queries, owner[part], axis=0, out=asked[: len(part)], mode="clip")
            dots[part] = np.einsum("ij,ij->i", gathered[: len(part)], asked[: len(part)])

    _side_by_side(
        fill, _core_shares(order, 16 * _PAIRED_ROWS)
    )  # numpy lets go of the GIL while it gathers and multiplies
    return dots


def _core_shares(items: np.ndarray, at_least: int) -> list[np.ndarray]:
    """`items` cut into one part per usable core, but no part shorter than `at_least` (at least one part)."""
    return np.array_split(items, max(1, min(usable_cores(), len(items) // at_least)))


def _side_by_side(work: Callable[[np.ndarray], _T], parts: list[np.ndarray]) -> list[_T]:
    """`work` of each part, in order, each part on a thread of its own (none for a single part)."""
    if len(parts) == 1:
        return [work(parts[0])]
    with ThreadPoolExecutor(max_workers=len(parts)) as pool:
        return list(pool.map(work, parts))


def _blocks(rows: int) -> list[tuple[int, int]]:
    """(start, stop) of `_SCORE_BLOCK_ROWS` rows each. A last block of one row joins the one before:
    numpy computes a one-row product as a dot product, which rounds apart from the matrix-vector one."""
    bounds = [*range(0, rows, _SCORE_BLOCK_ROWS), rows]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]
    return list(zip(bounds, bounds[1:]))


def exact_nearest_rows(vectors: np.ndarray, queries: np.ndarray, depth: int, block: int = 256) -> np.ndarray:
    """(queries, depth) rows of the highest inner products, by blocks of queries (bounded memory)."""
    found = np.empty((len(queries), depth), dtype=np.int64)
    for start in range(0, len(queries), block):
        scores = queries[start : start + block] @ vectors.T
        found[start : start + block] = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
    return found


def ivf_nearest_rows(ivf_index, vectors: np.ndarray | None, queries: np.ndarray, depth: int) -> np.ndarray:
    """(queries, depth) nearest rows, -1 padded, among the members of the lists nearest each query, scored
    with one matrix product per list. For thousands of queries this beats FAISS's own search, which
    decodes half-precision codes one query at a time (10,000 queries at 190k rows: 14 s with the query
    path's probes). It probes `BATCH_PROBE_DIVISOR` times fewer lists than a single query does.

    A list's rows are scored as the inverted file keeps them (`_list_rows`), as FAISS's search scores them:
    callers score the candidates exactly afterwards. `vectors` (the rows in full) are read only for an
    inverted file without half-precision codes; None when the caller holds no copy of them.

    The queries are split between the cores (`_BATCH_WORKERS_MIN_QUERIES` each at least), every worker with
    BLAS on one thread: ~1,000 small products ran at 30-37 GMAC/s on one BLAS thread here and at 16-18 on
    two, so cores go further on queries of their own (10,064 hints at 100,000 entries: 1.25 s on one
    core, 0.9 s on two).
    """
    import faiss
    from threadpoolctl import threadpool_limits

    ivf = faiss.extract_index_ivf(ivf_index)
    probes = ivf.quantizer.search(queries, max(1, ivf.nprobe // BATCH_PROBE_DIVISOR))[1]

    def nearest(part: np.ndarray) -> np.ndarray:
        return _probed_nearest_rows(ivf, vectors, queries[part], probes[part], depth)

    with threadpool_limits(1, user_api="blas"):
        return np.vstack(_side_by_side(nearest, _core_shares(np.arange(len(queries)), _BATCH_WORKERS_MIN_QUERIES)))


def _probed_nearest_rows(
    ivf, vectors: np.ndarray | None, queries: np.ndarray, probes: np.ndarray, depth: int
) -> np.ndarray:
    """`ivf_nearest_rows` of these queries over the lists `probes` (theirs, nearest first), in two passes:
    each query's nearest list first, which sets a high bar, so that in the second pass (its other lists)
    only the few queries a list improves are merged."""
    best = np.full((len(queries), depth), -np.inf, dtype=np.float32)
    rows = np.full((len(queries), depth), -1, dtype=np.int64)
    for part in (probes[:, :1], probes[:, 1:]):
        flat = part.ravel()
        order = np.argsort(flat, kind="stable")
        bounds = np.searchsorted(flat[order], np.arange(ivf.nlist + 1))
        for lst in np.flatnonzero(np.diff(bounds)).tolist():
            members = _list_members(ivf.invlists, lst)
            if len(members):
                asked = order[bounds[lst] : bounds[lst + 1]] // part.shape[1]
                _merge_best(best, rows, queries[asked] @ _list_rows(ivf, lst, members, vectors).T, asked, members)
    return rows


def _list_members(invlists, lst: int) -> np.ndarray:
    import faiss

    size = invlists.list_size(lst)
    return faiss.rev_swig_ptr(invlists.get_ids(lst), size).copy() if size else np.zeros(0, dtype=np.int64)


def _list_rows(ivf, lst: int, members: np.ndarray, vectors: np.ndarray | None) -> np.ndarray:
    """The vectors of a list's `members`. From the list's own half-precision codes (a residual from the
    list's centre) when the file keeps those: they lie together, where the same rows of `vectors` are
    scattered over the whole mapped file, a page (and a TLB miss) each (100,000 entries, every missing
    entry's hints: 0.9 s reading `vectors`, 0.2 s decoding codes). Otherwise the rows of `vectors`."""
    import faiss

    quantizer = getattr(faiss.downcast_index(ivf), "sq", None)
    if quantizer is None or quantizer.qtype != faiss.ScalarQuantizer.QT_fp16:
        if vectors is None:
            raise ValueError("this inverted file keeps no half-precision codes: its rows' vectors are needed")
        return vectors[members]
    codes = faiss.rev_swig_ptr(ivf.invlists.get_codes(lst), len(members) * ivf.code_size)
    rows = np.frombuffer(codes, dtype=np.float16).reshape(len(members), ivf.d).astype(np.float32)
    if ivf.by_residual:
        rows += ivf.quantizer.reconstruct(lst)
    return rows


def _merge_best(best: np.ndarray, rows: np.ndarray, scores: np.ndarray, asked: np.ndarray, members: np.ndarray) -> None:
    """Fold the rows `members`, whose `scores` against the queries `asked` are given, into the running best
    rows of those queries (in place)."""
    better = (scores > best[asked].min(axis=1)[:, None]).any(axis=1)
    if not better.any():
        return
    asked, scores = asked[better], scores[better]
    merged = np.hstack([best[asked], scores])
    top = np.argpartition(-merged, best.shape[1] - 1, axis=1)[:, : best.shape[1]]
    best[asked] = np.take_along_axis(merged, top, axis=1)
    rows[asked] = np.take_along_axis(np.hstack([rows[asked], np.broadcast_to(members, scores.shape)]), top, axis=1)


def set_probes(index):
    # 1/8 of the lists: recall@10 0.995 against exact at 200k rows, 1.6 ms instead of 17.7 (bench/hnsw.py)
    index.nprobe = max(1, index.nlist // 8)
    return index
