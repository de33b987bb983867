"""Robustness of ``skullseg run``: bad input as one line, no partial outputs, same answer twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from skullseg.cli import main
from skullseg.io import save_nifti
from skullseg.phantom import make_phantom


@pytest.fixture(scope="module")
def head_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("head") / "head.nii.gz"
    save_nifti(make_phantom(3.0, seed=4).t1, path)
    return path


def _nifti(path: Path, data: np.ndarray, zooms=(1.0, 1.0, 1.0)) -> Path:
    nib.save(nib.Nifti1Image(data, np.diag([*zooms, 1.0])), path)
    return path


BAD = {
    "constant": (lambda p: _nifti(p, np.zeros((100, 100, 100), np.int16)), "constant"),
    "two_d": (lambda p: _nifti(p, np.ones((100, 100), np.int16)), "2D image"),
    "four_d": (lambda p: _nifti(p, np.random.default_rng(0).random((90, 90, 90, 3))), "--volume"),
    "nan": (lambda p: _nifti(p, np.full((90, 90, 90), np.nan, np.float32)), "NaN"),
    "tiny": (lambda p: _nifti(p, np.random.default_rng(0).random((8, 8, 8))), "too small"),
    "voxel_size": (
        lambda p: _nifti(p, np.ones((90, 90, 90), np.int16), (20.0, 20.0, 20.0)),
        "voxel size",
    ),
    "truncated": (lambda p: p.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 20) and p, "gzip"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_one_line_no_output(case, tmp_path, capsys):
    make, needle = BAD[case]
    src = tmp_path / f"{case}.nii.gz"
    make(src)
    out = tmp_path / "out"
    assert main(["run", str(src), "-o", str(out), "-q"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert src.name in err and needle in err, err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_output_folder_equal_to_input_is_refused(head_file, tmp_path, capsys):
    assert main(["run", str(head_file), "-o", str(head_file), "--force", "-q"]) == 1
    assert "overwrite the input" in capsys.readouterr().err
    assert head_file.is_file()


def test_read_only_output_parent(head_file, tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    assert main(["run", str(head_file), "-o", str(ro / "out"), "-q"]) == 1
    assert "not writable" in capsys.readouterr().err


def test_killed_run_leaves_nothing(head_file, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        # a 2 mm working grid reaches the writing stage sooner; the clean-up is the same
        [sys.executable, "-m", "skullseg", "run", str(head_file), "-o", str(out), "-q"]
        + ["--voxel-mm", "2"],
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not any(
        p.name.startswith(".out.tmp") for p in tmp_path.iterdir()
    ):
        if proc.poll() is not None:
            pytest.fail("run ended before it started writing")
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_as_the_mesh_thread_starts_waits_for_it(tmp_path, monkeypatch):
    """SIGTERM can land while the outputs' pool starts its mesh thread, before the pool
    tracks it (the cause of a leftover temporary folder holding only skull.stl): the
    interrupt must still wait for that thread, so nothing writes after the clean-up."""
    from skullseg import outputs
    from skullseg.pipeline import SegmentResult
    from skullseg.progress import ProgressDisplay

    started: list[threading.Thread] = []

    class Racy(ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):
            started.append(threading.Thread(target=fn, args=args, kwargs=kwargs))
            started[-1].start()
            raise KeyboardInterrupt  # before the pool knows its thread

    ph = make_phantom(3.0, seed=4)
    result = SegmentResult(ph.labels, ph.labels, ph.t1, surfaces=None)
    monkeypatch.setattr(outputs, "ThreadPoolExecutor", Racy)
    monkeypatch.setattr(outputs, "cpu_threads", lambda cap: 2)
    folder = tmp_path / "tmp-out"
    folder.mkdir()
    with pytest.raises(KeyboardInterrupt):
        outputs.write_outputs(
            result, folder, tmp_path / "head.nii.gz", {}, ProgressDisplay(quiet=True), 0.0
        )
    assert started and not started[0].is_alive()


def test_same_labels_with_one_and_two_threads(head_file, tmp_path):
    outs = []
    for threads in ("1", "2"):  # on a 2 mm working grid, to keep the suite quick
        out = tmp_path / f"out{threads}"
        args = ["run", str(head_file), "-o", str(out), "-q", "--voxel-mm", "2"]
        assert main([*args, "--threads", threads]) == 0
        outs.append((out / "labels.nii.gz").read_bytes())
    assert outs[0] == outs[1]
