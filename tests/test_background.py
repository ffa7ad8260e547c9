"""Work started on a thread of its own (indexer/background.py)."""

from __future__ import annotations

import threading

import pytest

from indexer.background import started, started_unawaited


def test_work_started_unawaited_runs_on_a_daemon_thread_and_hands_back_its_result_or_its_error():
    daemon: list[bool] = []
    assert started_unawaited(lambda: daemon.append(threading.current_thread().daemon) or 7).result(timeout=10) == 7
    assert daemon == [True]  # a process exits without waiting for it
    with pytest.raises(ZeroDivisionError):
        started_unawaited(lambda: 1 // 0).result(timeout=10)


def test_work_started_runs_beside_the_caller_with_its_arguments():
    gate = threading.Event()
    future = started(lambda value, *, times: gate.wait(10) and value * times, 3, times=2)
    assert not future.done()  # it waits for the caller, so it runs on another thread
    gate.set()
    assert future.result(timeout=10) == 6
