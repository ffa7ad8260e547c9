"""The `.npy` reader that loads an index's arrays as views: same arrays as numpy's, and safe on two threads."""

import gc
import io
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from indexer.stores.tables import npy_view

ARRAYS = {
    "vectors": np.arange(12, dtype=np.float32).reshape(3, 4),
    "a scalar": np.array(3.5),
    "no rows": np.zeros((0, 384), dtype=np.float32),
    "three dimensions": np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
    "one element": np.array([7], dtype=np.int64),
    "strings": np.array(["a", "bcd", "é"]),
    "records": np.array([(1, 2.5, "x"), (3, 4.5, "yz")], dtype=[("id", "<i8"), ("score", "<f8"), ("key", "<U4")]),
    "big-endian": np.arange(5, dtype=">i4"),
}


def _saved(array: np.ndarray) -> bytes:
    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


@pytest.mark.parametrize("name", ARRAYS)
def test_npy_view_reads_what_np_save_writes(name):
    array = ARRAYS[name]
    view = npy_view(_saved(array))
    assert view.dtype == array.dtype and view.shape == array.shape
    assert np.array_equal(view, array)


@pytest.mark.parametrize(
    "array",
    [np.asfortranarray(np.ones((3, 4))), np.array([{"a": 1}], dtype=object)],
    ids=["Fortran order", "pickled objects"],
)
def test_npy_view_refuses_arrays_it_cannot_view(array):
    with pytest.raises(ValueError):
        npy_view(_saved(array))


class _Finalized:
    """Garbage whose collection runs Python code, which lets another thread take the interpreter."""

    def __init__(self) -> None:
        self.cycle = self

    def __del__(self) -> None:
        [0 for _ in range(3)]


def test_npy_view_is_safe_on_two_threads_while_collecting_garbage():
    # numpy reads headers with Python's parser, which CPython 3.11 cannot run on two threads at once when a
    # collection switches threads mid-parse; this made an index load fail once in CI. It fails in <1 s here.
    data = _saved(ARRAYS["records"])

    def read_many(_: int) -> int:
        garbage = []
        for _ in range(3000):
            garbage.append(_Finalized())
            del garbage[:-50]
            npy_view(data, ndim=1)
        return 3000

    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    sys.setswitchinterval(1e-6)
    gc.set_threshold(1, 1, 1)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            assert sum(pool.map(read_many, range(4))) == 12000
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)
