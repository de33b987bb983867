"""How many threads a stage may use (results never depend on it, only speed)."""

from __future__ import annotations

import os

__all__ = ["cpu_threads"]


def cpu_threads(cap: int) -> int:
    """Threads for one stage: ``OMP_NUM_THREADS`` when set (``--threads`` sets it), else the
    CPUs this process may run on; between 1 and ``cap``.

    Examples
    --------
    >>> 1 <= cpu_threads(2) <= 2
    True
    """
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(int(n or 1), int(cap)))
