"""End-to-end runs on real heads from ../shared/data (skipped when the data is absent).

Small, low-resolution heads keep this quick; every output of the contract must
exist, the label volumes must be plausible and the skull mesh watertight.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import trimesh

from skullseg import labels as L
from skullseg.cli import main
from skullseg.pipeline import OUTPUT_FILES

HEADS = ["ernie_t1_5mm", "rire001_t1_4mm", "siemens_decubitus_HFDL_t1_5mm"]


@pytest.fixture(scope="module", params=HEADS)
def head_run(request, data_dir, tmp_path_factory):
    src = data_dir / "heads" / f"{request.param}.nii.gz"
    out = tmp_path_factory.mktemp(request.param) / "out"
    assert main(["run", str(src), "-o", str(out), "-q"]) == 0
    return src, out


def test_outputs_exist_and_match_the_input_grid(head_run):
    src, out = head_run
    for name in OUTPUT_FILES:
        assert (out / name).is_file(), name
    lab = nib.load(out / "labels.nii.gz")
    img = nib.load(src)
    assert lab.shape == img.shape[:3]
    assert np.allclose(lab.affine, img.affine, atol=1e-3)


def test_label_volumes_are_plausible(head_run):
    _, out = head_run
    rep = json.loads((out / "report.json").read_text())
    vol = rep["volumes_ml"]
    assert 250 <= vol["skull"] <= 1200, vol
    assert 900 <= vol["brain"] + vol["csf"] <= 2200, vol
    lab = np.asarray(nib.load(out / "labels.nii.gz").dataobj)
    assert set(np.unique(lab)) <= set(L.LABELS)


def test_skull_mesh_is_watertight(head_run):
    _, out = head_run
    mesh = trimesh.load(out / "skull.stl")
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["bem"]["ok"] is True
