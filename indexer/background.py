"""Work started on a thread of its own, for a caller that does something else meanwhile and waits later."""

from __future__ import annotations

import threading
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


def started_unawaited(work: Callable[[], T]) -> Future[T]:
    """`work()` running now on a daemon thread: for work a process may never wait for (reading what only
    later searches use), which must not hold the process open at exit as a pool's thread would."""
    future: Future[T] = Future()

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(work())
            except BaseException as exc:  # handed to whoever waits, as a pool's future does
                future.set_exception(exc)

    threading.Thread(target=run, daemon=True, name="indexer-background").start()
    return future
