"""How many threads a stage, and how many jobs a batch, may use (results never depend on
it, only speed)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "MEM_PER_JOB_GB",
    "available_memory_bytes",
    "cpu_threads",
    "itk_single_thread",
    "memory_capped_jobs",
]

log = logging.getLogger("skullseg")

#: Peak memory budget of one job (GB), used to cap the number of parallel jobs.
MEM_PER_JOB_GB = 4.0

_itk_lock = threading.Lock()
_itk_users = 0
_itk_saved = 0


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


@contextmanager
def itk_single_thread() -> Iterator[None]:
    """Run ITK (SimpleITK) filters on one thread inside the block, the global default too.

    ITK splits some computations by region, so another thread count gives slightly
    different numbers; stages that must not depend on the machine run under this.
    Blocks may overlap in several Python threads: the global setting is saved when the
    first one enters and restored when the last one leaves.

    Examples
    --------
    >>> import SimpleITK as sitk
    >>> with itk_single_thread():
    ...     sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    1
    """
    import SimpleITK as sitk

    global _itk_users, _itk_saved
    with _itk_lock:
        if _itk_users == 0:
            _itk_saved = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
        _itk_users += 1
    try:
        yield
    finally:
        with _itk_lock:
            _itk_users -= 1
            if _itk_users == 0:
                sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(_itk_saved)


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo, else free physical pages from ``os.sysconf``."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_capped_jobs(n_jobs: int, mem_per_job_gb: float = MEM_PER_JOB_GB) -> int:
    """``n_jobs`` (``<= 0``: one per CPU) capped at floor(available memory / per-job memory)."""
    n = n_jobs if n_jobs > 0 else (os.cpu_count() or 1)
    avail = available_memory_bytes()
    if avail is not None:
        cap = max(1, int(avail // (mem_per_job_gb * 1024**3)))
        if cap < n:
            gb = avail / 1024**3
            log.warning(
                f"--n-jobs {n} capped at {cap}: {gb:.1f} GB available, {mem_per_job_gb:g} GB a job"
            )
            n = cap
    return n
