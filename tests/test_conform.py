"""Conforming, and the field-of-view cut: the head's tissue goes on past a cut face."""

from __future__ import annotations

import numpy as np
import pytest

from skullseg import labels as L
from skullseg.conform import conform, extend_grid, pad_faces, working_grid
from skullseg.evaluate import evaluate
from skullseg.masks import cut_faces
from skullseg.phantom import make_phantom, reorient
from skullseg.pipeline import segment
from skullseg.volume import Volume


def _crop_top(vol: Volume, below_z_mm: float) -> Volume:
    """``vol`` (RAS storage) without the slices at or above world z ``below_z_mm``."""
    z = vol.world_coordinate(2)[0, 0]
    keep = np.flatnonzero(z < below_z_mm)
    return vol.crop((slice(None), slice(None), slice(keep[0], keep[-1] + 1)))


@pytest.fixture(scope="module")
def cut_head():
    """A 2 mm phantom whose field of view stops 40 mm below the top of the skull."""
    ph = make_phantom(2.0, seed=0)
    top = float(ph.labels.world_coordinate(2)[ph.labels.data == L.SKULL].max())
    return _crop_top(ph.t1, top - 40.0), _crop_top(ph.labels, top - 40.0)


def test_cut_faces_finds_the_cut_whatever_the_storage(cut_head):
    t1, _ = cut_head
    assert (2, 1) in cut_faces(t1)  # the top
    pir = reorient(t1, "PIR")  # superior is now the low end of axis 1
    assert (1, 0) in cut_faces(pir)
    whole = make_phantom(4.0, seed=0, truncate_bottom_mm=-60.0).t1
    assert cut_faces(whole) == []  # a head inside its field of view is not cut
    neck = make_phantom(4.0, seed=0).t1  # the field of view stops 200 mm below the vertex
    assert cut_faces(neck) == []


def test_extended_grid_crops_back_to_the_working_grid(cut_head):
    t1, _ = cut_head
    pir = reorient(t1, "PIR")
    grid = working_grid(pir)
    faces = cut_faces(pir)
    big, crop = extend_grid(grid, pir, faces, 20.0)
    assert big.shape[2] >= grid.shape[2] + 20 // grid.zooms_mm[2]
    assert big.crop(crop).same_grid(grid)
    # the padded image agrees with the original inside the field of view; only the
    # outermost half input voxel, background before (outside every input voxel
    # centre), now repeats the edge
    work = conform(pad_faces(pir, faces, 20.0), grid=big).data[crop]
    plain = conform(pir).data
    np.testing.assert_allclose(work[:, :, 1:-1], plain[:, :, 1:-1], atol=1e-4)
    assert work[:, :, -1].mean() > 2 * plain[:, :, -1].mean()


def test_no_skull_closed_across_a_cut_through_the_brain(cut_head):
    """Measured: skull Dice 0.912 with the cut face extended, 0.878 without."""
    t1, truth = cut_head
    res = segment(t1)
    assert res.labels.same_grid(t1)
    last = res.labels.data[:, :, -1]
    inside = truth.data[:, :, -1] == L.BRAIN
    assert np.mean(last[inside] == L.BRAIN) > 0.9  # brain at the cut stays brain
    d = evaluate(res.labels, truth, pred_label=L.SKULL, truth_label=L.SKULL)["dice"]
    assert d >= 0.90
