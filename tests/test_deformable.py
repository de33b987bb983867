"""The B-spline refinement of the atlas fit, and the basal-cistern rule that uses it."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

from skullseg import atlas as at
from skullseg.cisterns import atlas_csf_inside, cisterns_from_atlas
from skullseg.deformable import AtlasWarp, refine_atlas_fit, warp_priors_deformable
from skullseg.labels import BRAIN, CSF, SCALP, SKULL
from skullseg.volume import Volume


@pytest.fixture(scope="module")
def atlas() -> at.Atlas:
    return at.load_atlas()


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * (a & b).sum() / max(1, a.sum() + b.sum()))


def _grid(step_mm: float, shape: tuple[int, int, int]) -> Volume:
    affine = np.diag([step_mm, step_mm, step_mm, 1.0])
    affine[:3, 3] = [-90.0, -125.0, -95.0]
    return Volume(np.zeros(shape, np.float32), affine)


def _known_affine() -> np.ndarray:
    t = at._rotation(0, 8.0) @ np.diag([1.04, 1.04, 1.04, 1.0])
    t[:3, 3] = [6.0, -4.0, 5.0]
    return t


def _bump_mm(xyz: np.ndarray) -> np.ndarray:
    """A smooth displacement (RAS mm): up to 5 mm, varying over about 100 mm."""
    u = np.zeros_like(xyz)
    u[:, 2] = 5.0 * np.sin(xyz[:, 0] / 30.0) * np.cos(xyz[:, 1] / 40.0)
    u[:, 0] = 3.0 * np.cos(xyz[:, 2] / 35.0)
    return u


def _pull_warped(vol: Volume, t: np.ndarray, grid: Volume) -> Volume:
    """The value of ``vol`` at atlas point ``t @ (x + bump(x))`` for each voxel ``x``."""
    xyz = grid.voxel_to_world(np.argwhere(np.ones(grid.shape, bool)))
    moved = xyz + _bump_mm(xyz)
    vox = (np.c_[moved, np.ones(len(moved))] @ (np.linalg.inv(vol.affine) @ t).T)[:, :3]
    out = ndi.map_coordinates(vol.data, vox.T, order=1).reshape(grid.shape)
    return grid.with_data(out.astype(np.float32))


def test_zero_displacement_matches_the_affine_warp(atlas):
    grid = _grid(1.5, (120, 150, 130))
    t = _known_affine()
    coarse = _grid(4.0, (46, 57, 50))
    warp = AtlasWarp(t, coarse, np.zeros((*coarse.shape, 3), np.float32))
    ours = warp_priors_deformable(atlas, warp, grid, ("skull", "csf"))
    ref = at.warp_priors(atlas, t, grid, ("skull", "csf"))
    inside = ndi.binary_erosion(ref["coverage"].data > 0.999, iterations=3)
    assert inside.mean() > 0.3
    for c in ("skull", "csf"):
        diff = np.abs(ours[c].data - ref[c].data)[inside]
        assert diff.mean() < 0.01 and diff.max() < 0.25, (c, diff.mean(), diff.max())


def test_refinement_follows_a_smooth_warp(atlas):
    grid = _grid(2.0, (90, 110, 100))
    t = _known_affine()
    subject = _pull_warped(atlas.template, t, grid)
    truth = _pull_warped(atlas.priors["brain"], t, grid).data > 0.5
    head = grid.with_data((_pull_warped(atlas.head_mask(), t, grid).data > 0.5).astype(np.uint8))
    warp, info = refine_atlas_fit(atlas, subject, t, head)
    assert warp is not None and info["accepted"], info
    assert info["metric_after"] < info["metric_before"]
    affine_only = at.warp_priors(atlas, t, grid, ("brain",))["brain"].data > 0.5
    refined = warp_priors_deformable(atlas, warp, grid, ("brain",))["brain"].data > 0.5
    before, after = _dice(affine_only, truth), _dice(refined, truth)
    assert after > before + 0.01, (before, after, info)
    again, _ = refine_atlas_fit(atlas, subject, t, head)
    np.testing.assert_array_equal(warp.displacement_mm, again.displacement_mm)  # deterministic


def test_refinement_refuses_a_sheared_grid(atlas):
    affine = np.array([[2.0, 0.3, 0, -70], [0, 2.0, 0.2, -100], [0, 0, 2.0, -60], [0, 0, 0, 1]])
    image = Volume(np.zeros((70, 90, 80), np.float32), affine)
    warp, info = refine_atlas_fit(atlas, image, np.eye(4), image)
    assert warp is None and not info["accepted"]


def _layered_head() -> tuple[Volume, Volume, Volume]:
    """Brain ball, 3 mm CSF, 7 mm skull, scalp; the atlas's CSF extends into the inner
    5 mm of the bone everywhere (a cistern's prior), its skull prior is 0."""
    n = 80
    ijk = np.indices((n, n, n)).astype(np.float32) - n / 2
    r = np.sqrt((ijk**2).sum(axis=0))
    lab = np.zeros((n, n, n), np.uint8)
    lab[r < 36] = SCALP
    lab[r < 30] = SKULL
    lab[r < 23] = CSF
    lab[r < 20] = BRAIN
    affine = np.eye(4)
    affine[:3, 3] = -n / 2
    labels = Volume(lab, affine)
    csf = ((r >= 20) & (r < 28)).astype(np.float32) * 0.9
    return labels, labels.with_data(csf), labels.with_data(np.zeros_like(csf))


def test_cisterns_only_below_the_centre_and_inside_the_bone():
    labels, csf, skull = _layered_head()
    found = cisterns_from_atlas(labels, csf, skull, below_z_mm=-10.0, margin_mm=2.5, min_inside=0.0)
    lab = labels.data
    assert found.any() and np.all(lab[found] == SKULL)
    z = labels.voxel_to_world(np.argwhere(found))[:, 2]
    assert z.max() < -10.0
    # the outer 2.5 mm of the bone stay bone (the prior reaches r = 28, the bone r = 30)
    depth = ndi.distance_transform_edt(np.isin(lab, [SKULL, CSF, BRAIN]))
    assert depth[found].min() > 2.5
    # with a higher threshold than the prior, nothing
    none = cisterns_from_atlas(labels, csf, skull, below_z_mm=-10.0, min_prior=0.95, min_inside=0.0)
    assert not none.any()
    # a skull prior above the CSF prior keeps the bone
    kept = cisterns_from_atlas(
        labels, csf, csf.with_data(csf.data), below_z_mm=-10.0, min_inside=0.0
    )
    assert not kept.any()


def test_cisterns_where_csf_is_the_atlas_majority():
    """A CSF prior of 0.55 over a skull prior of 0.3 is a cistern; 0.45 is not."""
    labels, csf, _ = _layered_head()
    inside = csf.data > 0
    skull = csf.with_data(np.where(inside, 0.3, 0.0).astype(np.float32))
    found = cisterns_from_atlas(
        labels, csf.with_data(inside * np.float32(0.55)), skull, below_z_mm=-10.0, min_inside=0
    )
    assert found.any()
    weak = cisterns_from_atlas(
        labels, csf.with_data(inside * np.float32(0.45)), skull, below_z_mm=-10.0, min_inside=0
    )
    assert not weak.any()


def test_no_cisterns_from_an_atlas_that_does_not_fit():
    """An atlas whose CSF lies mostly in the bone and beyond is not followed."""
    labels, _, skull = _layered_head()
    r = np.sqrt(((np.indices(labels.shape) - 40.0) ** 2).sum(axis=0))
    fits = labels.with_data((r < 24.5).astype(np.float32) * 0.9)  # 83 % in the cranium
    astray = labels.with_data(((r >= 18) & (r < 34)).astype(np.float32) * 0.9)  # 19 %
    assert atlas_csf_inside(labels, fits) > 0.8 > atlas_csf_inside(labels, astray)
    assert cisterns_from_atlas(labels, fits, skull, below_z_mm=-10.0).any()
    assert not cisterns_from_atlas(labels, astray, skull, below_z_mm=-10.0).any()


def test_cisterns_must_touch_the_intracranial_space():
    labels, csf, skull = _layered_head()
    lab = labels.data.copy()
    lab[np.isin(lab, [CSF, BRAIN])] = SKULL  # no intracranial space at all
    found = cisterns_from_atlas(labels.with_data(lab), csf, skull, below_z_mm=0.0, min_inside=0)
    assert not found.any()
