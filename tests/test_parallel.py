"""Thread settings (:mod:`skullseg.parallel`)."""

from __future__ import annotations

import threading

import SimpleITK as sitk

from skullseg.parallel import itk_single_thread


def test_itk_single_thread_overlapping_blocks_restore_the_setting_once():
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(3)
    try:
        inside, release = threading.Event(), threading.Event()
        seen: list[int] = []

        def other() -> None:
            with itk_single_thread():
                inside.set()
                release.wait(5)
                seen.append(sitk.ProcessObject.GetGlobalDefaultNumberOfThreads())

        t = threading.Thread(target=other)
        t.start()
        inside.wait(5)
        with itk_single_thread():  # enters while the other block is open ...
            pass  # ... and leaves first: the setting must stay 1 for the other one
        release.set()
        t.join()
        assert seen == [1]
        assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 3
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)
