"""More than T1 through the command line: --t2, CT input, T2 alone, mismatched pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skullseg import labels as L
from skullseg.cli import main
from skullseg.evaluate import evaluate
from skullseg.io import load_volume, save_nifti
from skullseg.phantom import make_phantom, reorient
from skullseg.pipeline import segment
from skullseg.volume import Volume


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("contrasts")
    ph = make_phantom(2.0, seed=0)
    save_nifti(ph.t1, d / "t1.nii.gz")
    save_nifti(reorient(ph.t2, "LPS"), d / "t2.nii.gz")
    save_nifti(ph.ct, d / "ct.nii.gz")
    save_nifti(ph.labels, d / "truth.nii.gz")
    return d


def _skull_dice(labels, truth) -> float:
    """Skull Dice of ``labels`` (an output folder, or a label Volume) against ``truth``."""
    if not isinstance(labels, Volume):
        labels = load_volume(labels / "labels.nii.gz")
    return evaluate(labels, load_volume(truth), pred_label=L.SKULL, truth_label=L.SKULL)["dice"]


def test_t2_improves_the_skull(files, tmp_path):
    # the T1-only labels in-process (the command line's own outputs are tested elsewhere)
    t1_labels = segment(load_volume(files / "t1.nii.gz")).labels
    assert (
        main(
            [
                "run",
                str(files / "t1.nii.gz"),
                "--t2",
                str(files / "t2.nii.gz"),
                "-o",
                str(tmp_path / "b"),
                "-q",
            ]
        )
        == 0
    )
    t1_only = _skull_dice(t1_labels, files / "truth.nii.gz")
    both = _skull_dice(tmp_path / "b", files / "truth.nii.gz")
    assert both > t1_only + 0.02, (t1_only, both)
    rep = json.loads((tmp_path / "b" / "report.json").read_text())
    assert rep["t2_registration"]["rotation_deg"] < 2.0
    assert (tmp_path / "b" / "pseudo_ct.nii.gz").is_file()


def test_ct_is_detected_and_accurate(files, tmp_path):
    assert main(["run", str(files / "ct.nii.gz"), "-o", str(tmp_path / "ct"), "-q"]) == 0
    rep = json.loads((tmp_path / "ct" / "report.json").read_text())
    assert rep["options"]["modality"] == "ct"
    assert _skull_dice(tmp_path / "ct", files / "truth.nii.gz") >= 0.93


def test_mismatched_second_image_is_refused(files, tmp_path, capsys):
    t2 = load_volume(files / "t2.nii.gz")
    half = t2.data.copy()
    half[:, :, : half.shape[2] // 2] = 0  # wrong field of view: only the top half
    save_nifti(Volume(half, t2.affine), tmp_path / "half.nii.gz")
    code = main(
        [
            "run",
            str(files / "t1.nii.gz"),
            "--t2",
            str(tmp_path / "half.nii.gz"),
            "-o",
            str(tmp_path / "out"),
            "-q",
        ]
    )
    err = capsys.readouterr().err
    if code == 0:
        rep = json.loads((tmp_path / "out" / "report.json").read_text())
        assert any("T2" in w or "second" in w or "cover" in w for w in rep["warnings"]), rep
    else:
        assert len(err.strip().splitlines()) == 1 and "half.nii.gz" in err
        assert not (tmp_path / "out").exists()


def test_t2_alone_runs(files, tmp_path):
    assert (
        main(
            [
                "run",
                str(files / "t2.nii.gz"),
                "--modality",
                "t2",
                "-o",
                str(tmp_path / "t2"),
                "-q",
                "--allow-implausible",
                "--voxel-mm",
                "2",
            ]
        )
        == 0
    )
    lab = load_volume(tmp_path / "t2" / "labels.nii.gz").data
    assert np.any(lab == L.SKULL) and np.any(lab == L.BRAIN)
