"""How many cores this process may use: the ones its CPU affinity allows (a container or `taskset` may
allow fewer than the machine has, and `os.cpu_count()` counts them all)."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on, at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
