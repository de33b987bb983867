"""Head and skin masks (:mod:`skullseg.masks`) on synthetic data."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from skullseg.conform import conform, resample_to_grid
from skullseg.masks import head_mask, skin_mask
from skullseg.volume import Volume


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def _blurred_ball(radius_mm: float, blur_mm: float) -> tuple[Volume, np.ndarray]:
    r = np.linalg.norm(np.indices((80, 80, 80)) - 39.5, axis=0)
    img = ndi.gaussian_filter(np.where(r < radius_mm, 100.0, 0.0), blur_mm)
    return Volume(img.astype(np.float32), np.eye(4)), r


def test_skin_mask_ends_at_the_half_height_of_a_blurred_edge():
    vol, r = _blurred_ball(30.0, 1.5)
    generous = vol.with_data((r < 33.0).astype(np.uint8))  # 3 mm out, as a low threshold gives
    trimmed = skin_mask(vol, generous).data > 0
    # the equivalent radius of the trimmed mask is the step's (the half-height point)
    radius = (trimmed.sum() * 3 / (4 * np.pi)) ** (1 / 3)
    assert abs(radius - 30.0) < 0.3
    assert not (trimmed & ~(generous.data > 0)).any()  # a subset of the head mask


def test_skin_mask_peels_from_outside_only():
    """Dark tissue under the skin (bone, air cells) is not taken out with the halo."""
    vol, r = _blurred_ball(30.0, 1.0)
    data = vol.data.copy()
    data[(r > 25.0) & (r < 28.0)] = 5.0  # a dark shell 2-5 mm under the surface
    vol = vol.with_data(data)
    generous = vol.with_data((r < 32.0).astype(np.uint8))
    trimmed = skin_mask(vol, generous).data > 0
    assert trimmed[(r > 25.5) & (r < 27.5)].all()
    assert not trimmed[r > 31.0].any()


def test_skin_mask_leaves_a_mask_without_halo_alone():
    vol, r = _blurred_ball(30.0, 0.5)
    exact = vol.with_data((r < 30.0).astype(np.uint8))
    trimmed = skin_mask(vol, exact).data > 0
    assert (exact.data > 0).sum() - trimmed.sum() < 0.01 * trimmed.sum()


def test_skin_mask_brings_the_phantom_head_closer_to_its_truth(phantom_15):
    work = conform(phantom_15.t1, 1.5)
    head = head_mask(work)
    skin = skin_mask(work, head)
    truth = resample_to_grid(phantom_15.labels, work, order=0).data > 0
    before, after = _dice(head.data > 0, truth), _dice(skin.data > 0, truth)
    assert after > before + 0.005  # measured 0.982 -> 0.991
    assert after > 0.985
    assert np.array_equal(ndi.binary_fill_holes(skin.data > 0), skin.data > 0)


def test_skin_mask_keeps_a_dark_scalp_under_a_broken_skin_line():
    """A fat-suppressed scalp: dark under a thin bright skin with gaps; the peel that
    leaks through the gaps is closed again."""
    r = np.linalg.norm(np.indices((80, 80, 80)) - 39.5, axis=0)
    img = np.where(r < 25.0, 100.0, 0.0)
    img[(r >= 25.0) & (r < 29.5)] = 8.0  # dark scalp
    line = (r >= 29.5) & (r < 30.5)
    gaps = np.indices(r.shape).sum(axis=0) % 6 == 0  # every 6th diagonal plane of the line
    img[line & ~gaps] = 100.0
    vol = Volume(img.astype(np.float32), np.eye(4))
    generous = vol.with_data((r < 31.0).astype(np.uint8))  # its 3 mm shell reaches r = 28
    trimmed = skin_mask(vol, generous, smooth_mm=0.3).data > 0
    under_line = (r > 28.2) & (r < 29.3)
    assert trimmed[under_line].mean() > 0.9


def test_a_large_brain_is_kept_whole_when_the_atlas_expects_a_large_brain():
    # a head whose brain (2.2 L, brighter towards its centre) exceeds the leak limit of
    # 1900 mL: without an expected volume the threshold is raised until the mask fits,
    # which eats its edge; with the registered atlas's 1.8 L it is kept
    from skullseg.masks import BrainLevels, adaptive_brain_mask

    vox = 2.0
    shape = (110, 110, 110)
    r = np.sqrt(sum((np.indices(shape)[i] - 55.0) ** 2 for i in range(3))) * vox
    img = np.where(r < 105.0, 0.7, 0.0).astype(np.float32)  # scalp
    img[(r >= 80.0) & (r < 96.0)] = 0.1  # CSF and skull: dark
    brain = r < 80.6  # 2193 mL
    img[brain] = 1.0 - 0.4 * r[brain] / 80.6  # 1.0 at the centre, 0.6 at the edge
    vol = Volume(img, np.diag([vox, vox, vox, 1.0]))
    head = vol.with_data((r < 105.0).astype(np.uint8))
    levels = BrainLevels(wm=1.0, lower=0.4)
    truth_ml = brain.sum() * vol.voxel_volume_ml
    capped = adaptive_brain_mask(vol, head, levels).data.sum() * vol.voxel_volume_ml
    kept = adaptive_brain_mask(vol, head, levels, expected_brain_ml=1800.0)
    kept_ml = kept.data.sum() * vol.voxel_volume_ml
    assert capped < 1900.0 < 0.95 * truth_ml
    assert abs(kept_ml - truth_ml) < 0.03 * truth_ml


def test_the_brain_reaches_down_to_the_atlas_floor_in_a_tall_head():
    # the brain mask stops 85 mm below a centre guessed 85 mm below the top of the head;
    # in a large head the cerebellum reaches lower, and the registered atlas says so
    from skullseg.masks import BrainLevels, brain_mask

    vox = 2.0
    shape = (110, 110, 110)
    r = np.sqrt(sum((np.indices(shape)[i] - 55.0) ** 2 for i in range(3))) * vox
    img = np.where(r < 105.0, 0.7, 0.0).astype(np.float32)  # scalp; centre at z = 110 mm
    img[(r >= 80.0) & (r < 96.0)] = 0.1
    img[r < 80.0] = 0.9
    vol = Volume(img, np.diag([vox, vox, vox, 1.0]))
    head = vol.with_data((r < 105.0).astype(np.uint8))
    levels = BrainLevels(wm=1.0, lower=0.4)

    def bottom_mm(mask: Volume) -> float:
        return float(np.nonzero(mask.data.any(axis=(0, 1)))[0].min() * vox)

    guessed = brain_mask(vol, head, levels)
    atlas = brain_mask(vol, head, levels, floor_z_mm=110.0 - 82.0)
    assert 110.0 - bottom_mm(guessed) < 70.0  # cut 65 mm below the true centre
    assert 110.0 - bottom_mm(atlas) > 76.0  # the brain's bottom, 80 mm below it
    higher = brain_mask(vol, head, levels, floor_z_mm=110.0 - 40.0)
    assert bottom_mm(higher) == bottom_mm(guessed)  # an atlas floor never raises the cut
