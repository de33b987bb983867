"""The label map from nested surfaces and tissue rules (:func:`skullseg.label_map.label_map`)."""

from __future__ import annotations

import numpy as np
import pytest

from skullseg import labels as L
from skullseg.label_map import label_map
from skullseg.masks import BrainLevels
from skullseg.radial import sphere_grid
from skullseg.skull import SkullParams, SkullSurfaces
from skullseg.volume import Volume

VOXEL_MM = 2.0
RADII_MM = {"brain": 40.0, "inner": 43.0, "outer": 49.0, "scalp": 58.0}


def _shell_head():
    """Concentric layers around the grid's centre: brain, CSF, bone and scalp (T1 values)."""
    n = 70
    affine = np.diag([VOXEL_MM, VOXEL_MM, VOXEL_MM, 1.0])
    affine[:3, 3] = -VOXEL_MM * (n - 1) / 2.0  # the centre voxel at world (0, 0, 0)
    r = np.linalg.norm(np.mgrid[:n, :n, :n] - (n - 1) / 2.0, axis=0) * VOXEL_MM
    image = np.select(
        [r < RADII_MM["brain"], r < RADII_MM["inner"], r < RADII_MM["outer"]],
        [1.0, 0.15, 0.1],
        default=0.7,
    )
    head = r < RADII_MM["scalp"]
    image = np.where(head, image, 0.0).astype(np.float32)
    grid = sphere_grid(4)
    ones = np.ones(grid.n)
    surfaces = SkullSurfaces(
        np.zeros(3), grid, *(RADII_MM[k] * ones for k in ("brain", "inner", "outer", "scalp"))
    )
    return Volume(image, affine), head, r < RADII_MM["brain"], surfaces, r


def _label(vol, head, brain, surfaces, **kwargs):
    levels = BrainLevels(wm=1.0, lower=0.5)
    labels, layers = label_map(vol, head, brain, surfaces, levels, SkullParams(), **kwargs)
    return labels.data, layers


def test_layers_follow_the_surfaces():
    vol, head, brain, surfaces, r = _shell_head()
    labels, layers = _label(vol, head, brain, surfaces, t1_weighted=False, facial_bone=False)
    assert layers is None
    assert labels.dtype == np.uint8
    assert set(np.unique(labels)) == {L.BACKGROUND, L.SCALP, L.SKULL, L.CSF, L.BRAIN}
    # away from the surfaces (one voxel either side) every voxel has its layer's label
    expected = np.select(
        [r < 40, r < 43, r < 49, r < 58], [L.BRAIN, L.CSF, L.SKULL, L.SCALP], L.BACKGROUND
    )
    edges = np.array(list(RADII_MM.values()))
    clear = np.min(np.abs(r[..., None] - edges), axis=-1) > VOXEL_MM
    assert np.array_equal(labels[clear], expected[clear])
    ml = (labels == L.SKULL).sum() * VOXEL_MM**3 / 1000.0
    assert ml == pytest.approx(4.0 / 3.0 * np.pi * (49.0**3 - 43.0**3) / 1000.0, rel=0.05)


def test_atlas_csf_comes_from_the_priors_once_and_inside_the_bone():
    vol, head, brain, surfaces, r = _shell_head()
    calls = []

    def priors():
        calls.append(1)
        # CSF expected everywhere up to 3 mm into the bone: 82 % of it lies in the cranium
        # found, so the atlas counts as fitting
        csf = (r < RADII_MM["inner"] + 3.0).astype(np.float32)
        return {"csf": vol.with_data(csf),
                "skull": vol.with_data(np.zeros(vol.shape, np.float32))}  # fmt: skip

    plain, _ = _label(vol, head, brain, surfaces, t1_weighted=False, facial_bone=False)
    labels, _ = _label(
        vol, head, brain, surfaces, t1_weighted=False, facial_bone=False, cistern_priors=priors
    )
    assert len(calls) == 1
    moved = (plain == L.SKULL) & (labels == L.CSF)
    assert moved.any() and np.array_equal(labels[~moved], plain[~moved])
    z = vol.world_coordinate(2)
    assert np.any(z[moved] < -20.0) and np.any(z[moved] > 20.0)  # at every height
    # only more than 2.5 mm inside the bone (to the voxel: measured between voxel centres)
    assert np.all(r[moved] < 49.0 - 2.5 + VOXEL_MM)
    none, _ = _label(
        vol, head, brain, surfaces, t1_weighted=False, facial_bone=False,
        cistern_priors=lambda: None,
    )  # fmt: skip
    assert np.array_equal(none, plain)


def test_threads_and_layers_do_not_change_the_labels():
    vol, head, brain, surfaces, _ = _shell_head()
    one, no_layers = _label(vol, head, brain, surfaces, threads=1)
    two, layers = _label(vol, head, brain, surfaces, threads=2, keep_layers=True)
    assert no_layers is None and layers is not None and layers.shape == vol.shape
    assert np.array_equal(one, two)


def test_air_where_the_atlas_has_bone_and_no_air_is_bone_only_from_an_atlas_that_fits():
    vol, head, brain, surfaces, r = _shell_head()
    img = vol.data.copy()
    i, j, k = np.indices(img.shape)
    ctr = (img.shape[0] - 1) / 2.0
    # three signal-free blobs in the scalp, below the centre
    blobs = {
        name: (np.hypot(i - ctr - s * 5, j - ctr - t * 5) * VOXEL_MM < 10.0)
        & (np.abs(k - ctr + 26) * VOXEL_MM < 8.0)
        & (r > RADII_MM["outer"] + 1.0)
        & head
        for name, s, t in (("bone", -1, -1), ("sinus", -1, 1), ("no_bone", 1, 0))
    }
    for blob in blobs.values():
        img[blob] = 0.0
    vol = vol.with_data(img)
    csf = (r < RADII_MM["inner"] + 2.0).astype(np.float32)  # fits: most of it in the cranium
    skull = np.where(i < ctr, 0.8, 0.0).astype(np.float32)  # bone expected on the left only
    air = np.where(j > ctr, 0.9, 0.0).astype(np.float32)  # and air at the front
    air_prior = vol.with_data(air)

    def priors(csf=csf):
        return {"csf": vol.with_data(csf), "skull": vol.with_data(skull)}

    # a T2 alone (no facial-bone or canal rules), the cranium and the face both labelled
    kw = dict(t1_weighted=False, facial_bone=True, air_prior=air_prior)
    plain, _ = _label(vol, head, brain, surfaces, **kw)
    labels, _ = _label(vol, head, brain, surfaces, cistern_priors=priors, **kw)
    found = {name: blob & (plain == L.AIR_CAVITY) for name, blob in blobs.items()}
    assert all(f.sum() > 10 for f in found.values())
    assert np.all(labels[found["bone"]] == L.SKULL)
    assert np.all(labels[found["sinus"]] == L.AIR_CAVITY)  # the atlas expects air there
    assert np.all(labels[found["no_bone"]] == L.AIR_CAVITY)  # and no bone there
    everywhere = found["bone"] | found["sinus"] | found["no_bone"]
    # an atlas that does not fit the head (its CSF beyond the cranium) changes no air
    loose = (r < RADII_MM["scalp"]).astype(np.float32)
    unfit, _ = _label(vol, head, brain, surfaces, cistern_priors=lambda: priors(loose), **kw)
    assert np.all(unfit[everywhere] == L.AIR_CAVITY)
    # the cranium alone (--cranium-only): no bone beyond the outer skull
    kw["facial_bone"] = False
    cranium, _ = _label(vol, head, brain, surfaces, cistern_priors=priors, **kw)
    assert np.all(cranium[everywhere] == L.AIR_CAVITY)
