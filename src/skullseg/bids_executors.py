"""Where the BIDS App's participant jobs run: a spawn process pool or a Dask cluster.

:func:`skullseg.bids.run_participants` decides which jobs are left and how many may run at
once (memory permitting); the runners here put each through
:func:`skullseg.bids.run_participant` and file its record under the job's index in
``records``, calling ``progress`` as each one ends. A job whose worker dies is recorded as
failed without stopping the others.
"""

from __future__ import annotations

import logging
import os

from .errors import SkullsegError

__all__ = ["run_pool", "run_dask"]

log = logging.getLogger("skullseg")


def _init_worker(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)


def run_pool(jobs, todo, args, voxel_mm, n_workers, records, progress) -> None:
    """Jobs in a spawn process pool. Jobs lost with a dead worker (killed: out of memory?) are
    retried one at a time in fresh processes, so that only the job that kills one fails."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    from .bids import _record, run_participant

    threads = max(1, (os.cpu_count() or 1) // n_workers)
    log.info("running %d job(s) in %d processes of %d thread(s)", len(todo), n_workers, threads)
    ctx, lost = mp.get_context("spawn"), []
    with ProcessPoolExecutor(n_workers, ctx, initializer=_init_worker, initargs=(threads,)) as ex:
        futures = {ex.submit(run_participant, jobs[i], *args, voxel_mm=voxel_mm): i for i in todo}
        for fut in as_completed(futures):
            try:
                records[futures[fut]] = fut.result()
            except BrokenProcessPool:
                lost.append(futures[fut])
                continue
            progress(records[futures[fut]])
    if lost:
        log.warning("a worker process died; retrying %d job(s) one at a time", len(lost))
    for i in sorted(lost):
        with ProcessPoolExecutor(1, ctx, initializer=_init_worker, initargs=(threads,)) as ex:
            try:
                records[i] = ex.submit(run_participant, jobs[i], *args, voxel_mm=voxel_mm).result()
            except BrokenProcessPool:
                records[i] = _record(jobs[i], "failed", "worker process died (out of memory?)")
        progress(records[i])


def _collect(futures, as_completed, jobs, records, progress) -> None:
    """Records of finished Dask futures; a job whose worker was lost failed."""
    from .bids import _one_line, _record

    for fut in as_completed(futures):
        i = futures[fut]
        try:
            records[i] = fut.result()
        except Exception as exc:  # noqa: BLE001 - the job never reported back
            records[i] = _record(jobs[i], "failed", f"dask worker lost: {_one_line(exc)}")
        progress(records[i])


def run_dask(jobs, todo, args, voxel_mm, scheduler, n_workers, records, progress) -> None:
    """Jobs on a Dask cluster: ``scheduler``'s, or a local one of ``n_workers`` processes."""
    from .bids import run_participant

    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise SkullsegError(
            "the dask executor needs dask.distributed: pip install 'dask[distributed]'"
        ) from exc
    cluster = None
    if scheduler in (None, "local"):
        cluster = LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
    try:
        with Client(cluster if cluster is not None else scheduler) as client:
            log.info("dask scheduler %s: %d job(s)", client.scheduler.address, len(todo))
            futures = {
                client.submit(run_participant, jobs[i], *args, voxel_mm=voxel_mm, pure=False): i
                for i in todo
            }
            _collect(futures, as_completed, jobs, records, progress)
    finally:
        if cluster is not None:
            cluster.close()
