"""Work started on a thread of its own, for a caller that does something else meanwhile and waits later."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


def started(work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
    """`work(*args, **kwargs)` running now on a new thread; its result (or exception) comes from the future."""
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(work, *args, **kwargs)
    pool.shutdown(wait=False)  # the task runs on; nothing else is ever submitted
    return future
