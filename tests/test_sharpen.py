"""The cranium's boundaries on an oblique input grid come from the surfaces themselves."""

from __future__ import annotations

import numpy as np

from skullseg import labels as L
from skullseg.conform import to_input_grid
from skullseg.radial import sphere_grid
from skullseg.sharpen import cranial_layers, sharpen_cranium
from skullseg.skull import SkullSurfaces
from skullseg.volume import Volume


def _surfaces() -> SkullSurfaces:
    """Wavy nested surfaces around world 0: brain 14 mm, inner skull 16, outer 21, scalp 26."""
    g = sphere_grid(4)
    wave = 1.5 * g.directions[:, 0] * g.directions[:, 1]
    radii = [r + wave for r in (14.0, 16.0, 21.0, 26.0)]
    return SkullSurfaces(np.zeros(3), g, *radii)


def _labels(s: SkullSurfaces, like: Volume) -> np.ndarray:
    """CSF, skull and scalp from the surfaces, brain inside the brain surface, and a
    5 mm air cell in the bone at (0, 18.5, 0) that no surface explains."""
    layers = cranial_layers(*s.inside_all(like))
    lab = np.array([L.CSF, L.SKULL, L.SCALP], np.uint8)[layers]
    rel = like.voxel_to_world(np.indices(like.shape).reshape(3, -1).T) - s.centre_world
    r = np.linalg.norm(rel, axis=1).reshape(like.shape)
    lab[r < 13.0] = L.BRAIN
    air = np.linalg.norm(rel - [0.0, 18.5, 0.0], axis=1).reshape(like.shape) < 2.5
    lab[air] = L.AIR_CAVITY
    lab[r > 30.0] = L.BACKGROUND
    return lab


def _working_labels(s: SkullSurfaces) -> Volume:
    """:func:`_labels` on a 1 mm RAS working grid around world 0."""
    aff = np.eye(4)
    aff[:3, 3] = -34.0
    work = Volume(np.zeros((69, 69, 69), np.uint8), aff)
    return work.with_data(_labels(s, work))


def test_oblique_grid_gets_the_surfaces_boundaries_and_keeps_other_labels():
    s = _surfaces()
    work = _working_labels(s)
    a, b = np.deg2rad(10.0), np.deg2rad(6.0)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rot = rot @ np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    obl = np.eye(4)
    obl[:3, :3] = rot
    obl[:3, 3] = rot @ np.full(3, -31.3)
    grid = Volume(np.zeros((63, 63, 63), np.uint8), obl)
    truth = _labels(s, grid)

    voted = to_input_grid(work, grid)
    layers = cranial_layers(*s.inside_all(work))
    sharp = sharpen_cranium(voted, work, layers, s).data

    skull = truth == L.SKULL
    wrong_voted = ((voted.data == L.SKULL) != skull).sum()
    wrong_sharp = ((sharp == L.SKULL) != skull).sum()
    assert wrong_sharp < 0.2 * wrong_voted, (wrong_sharp, wrong_voted)  # 30 vs 991
    assert (sharp != truth).sum() < 0.7 * (voted.data != truth).sum()
    changed = sharp != voted.data
    assert changed.any()
    # only CSF, skull and scalp change, and only into one another
    keep = (L.BRAIN, L.AIR_CAVITY, L.BACKGROUND)
    assert not np.isin(voted.data[changed], keep).any()
    assert not np.isin(sharp[changed], keep).any()
    np.testing.assert_array_equal(sharp == L.AIR_CAVITY, voted.data == L.AIR_CAVITY)
    np.testing.assert_array_equal(sharp == L.BRAIN, voted.data == L.BRAIN)
    # next to the air cell (labels there not the surfaces' alone) nothing changes
    rel = grid.voxel_to_world(np.argwhere(changed)) - [0.0, 18.5, 0.0]
    assert np.linalg.norm(rel, axis=1).min() > 2.5


def test_nothing_changes_where_the_grids_share_voxel_centres():
    s = _surfaces()
    work = _working_labels(s)
    layers = cranial_layers(*s.inside_all(work))
    np.testing.assert_array_equal(sharpen_cranium(work, work, layers, s).data, work.data)
