"""Edges on radial profiles, and where the skull model treats the input as thick-sliced."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.spatial.transform import Rotation

from skullseg import labels as L
from skullseg.phantom import make_phantom
from skullseg.profiles import (
    half_height_edge,
    profile_at,
    rise_point,
    rise_width_mm,
    thick_weight,
    width_rise_fraction,
)
from skullseg.radial import sphere_grid
from skullseg.skull import (
    SkullParams,
    fit_skull_surfaces,
    inner_from_band,
    outer_by_graph_search,
)


@pytest.mark.parametrize("edge_mm", [1.0, 2.0])
def test_isotropic_voxels_up_to_2mm_are_never_thick(edge_mm):
    """A cube's width is the same along every direction, however it is rotated."""
    u = sphere_grid(3).directions
    for seed in range(3):
        axes = Rotation.random(random_state=seed).as_matrix() * edge_mm
        assert not thick_weight(u, axes, 2.0, 1.0).any()


def test_thick_slices_weigh_the_rays_along_them():
    u = sphere_grid(3).directions
    w = thick_weight(u, np.diag([1.0, 1.0, 4.0]), 2.0, 1.0)
    assert np.all(w[np.abs(u[:, 2]) > 0.8] == 1.0)  # top and bottom: blurred
    assert np.all(w[np.abs(u[:, 2]) < 0.3] == 0.0)  # sides: sharp


@pytest.mark.parametrize("blur_mm", [1.0, 2.0, 4.0])
def test_half_height_edge_does_not_move_with_blur(blur_mm):
    """A box-blurred step keeps its half height at the step, wherever the search starts."""
    radii = np.arange(0.0, 40.0, 0.5)
    prof = np.clip((20.0 + blur_mm / 2 - radii) / blur_mm, 0.0, 1.0)[None]
    start = np.array([20.0 - min(blur_mm / 2, 0.9)])  # a mask edge tied to the sharp level
    assert abs(float(half_height_edge(prof, radii, start)[0]) - 20.0) < 0.05


def test_rise_point_takes_one_fraction_per_ray():
    radii = np.arange(0.0, 20.0, 0.5)
    prof = np.vstack([np.clip((radii - 9.0) / 2.0, 0.0, 1.0)] * 3) * 0.9 + 0.1
    edge = np.full(3, 10.0)
    fractions = np.array([0.2, 0.3, 0.5])

    def at(r):
        return profile_at(prof, radii, r)

    each = [rise_point(at, edge, f)[i] for i, f in enumerate(fractions)]
    np.testing.assert_allclose(rise_point(at, edge, fractions), each)


def test_outer_skull_level_nears_the_foot_of_a_broad_rise():
    """A sharp (partial-volume) rise keeps its bone end near its middle; a rise broadened
    by a dark layer on the bone is placed near its foot, where a FLASH reference puts it."""
    radii = np.arange(0.0, 30.0, 0.25)
    foot_mm = 15.0
    sharp = np.clip((radii - foot_mm) / 1.25, 0.0, 1.0)  # 1.25 mm ramp from bone to scalp
    broad = np.clip((radii - foot_mm) / 3.5, 0.0, 1.0)  # 3.5 mm ramp
    prof = np.vstack([sharp, broad]) * 0.9 + 0.1

    def at(r):
        return profile_at(prof, radii, r)

    edge = np.full(2, foot_mm + 0.5)  # where each profile crosses a bone threshold
    width = rise_width_mm(at, edge)
    assert width[0] < 1.5 < 2.5 < width[1]
    frac = width_rise_fraction(width)
    assert frac[0] > 0.3 and frac[1] == pytest.approx(0.1)
    placed = rise_point(at, edge, frac)
    assert abs(placed[0] - (foot_mm + 0.625)) < 0.3  # about the sharp ramp's middle
    assert abs(placed[1] - foot_mm) < 0.6  # the broad ramp's foot, not its middle
    fixed = rise_point(at, edge, 0.3)  # one level for both (before the width rule)
    assert placed[1] < fixed[1] - 0.4


def test_a_rise_broader_than_3_mm_is_placed_from_the_bone_minimum():
    """Bright marrow up to a thin outer table: no dark bone, a 5 mm rise into the scalp, an
    edge half-way up it. Only the search from the bone's minimum reaches the rise's foot."""
    radii = np.arange(0.0, 30.0, 0.25)
    foot_mm = 15.0
    prof = (0.5 + 0.5 * np.clip((radii - foot_mm) / 5.0, 0.0, 1.0))[None]

    def at(r):
        return profile_at(prof, radii, r)

    edge = np.array([foot_mm + 2.5])  # mid-rise, where the graph search's edge lands
    kept = rise_point(at, edge, 0.1)
    assert kept[0] == edge[0]  # the 3 mm before the peak hold no point below the level
    placed = rise_point(at, edge, 0.1, from_minimum=np.array([True]))
    assert abs(placed[0] - (foot_mm + 0.5)) < 0.2  # 10 % up a 5 mm ramp
    unchanged = rise_point(at, edge, 0.1, from_minimum=np.array([False]))
    assert unchanged[0] == kept[0]
    wide = rise_width_mm(at, edge, from_minimum=np.array([True]))
    assert wide[0] > rise_width_mm(at, edge)[0] + 1.0


def test_outer_skull_over_bright_bone_lands_at_the_rise_foot_unless_slices_are_thick():
    """Every ray: dark CSF, then bone as bright as marrow (no sample below the bone
    threshold), then a 5 mm rise into the scalp starting at 60 mm. The outer skull goes to
    the rise's foot; a thick-sliced input, or the rule turned off, keeps the mid-rise edge."""
    grid = sphere_grid(2)
    radii = np.arange(0.0, 100.0, 0.5)
    one = np.select([radii < 45, radii < 48, radii < 60], [1.0, 0.15, 0.5], default=1.0)
    one = np.where((radii >= 60) & (radii < 65), 0.5 + 0.5 * (radii - 60) / 5.0, one)
    prof = np.tile(one, (grid.n, 1))
    inner = np.full(grid.n, 48.0)
    hi = np.full(grid.n, 80.0)
    p = SkullParams()
    args = (prof, radii, inner, hi, 0.45, grid)
    foot = outer_by_graph_search(*args, p)
    kept = outer_by_graph_search(*args, SkullParams(bright_bone_from_minimum=False))
    thick = outer_by_graph_search(*args, p, thick=np.full(grid.n, 0.5))
    assert np.all(np.abs(foot - 60.5) < 0.3)  # 10 % up the ramp
    assert np.all(kept > foot + 1.0)  # mid-rise
    assert np.all(thick > foot + 1.0)  # the rule is off for a thick-sliced input


def test_the_outer_skull_does_not_drift_out_under_a_dark_scalp():
    """Every ray: brain, CSF, bone, then scalp from 55 mm, with noise. Under a scalp as dark
    as muscle (0.38 of the white matter, below the 0.45 bone threshold) the outer skull
    lands where it does under a bright one (0.7), and as steadily: the sub-voxel refinement
    then uses the level half-way between the two sides of the edge, not the bone threshold
    that the whole dark scalp lies below (it drifted 0.52 mm further out)."""
    grid = sphere_grid(2)
    radii = np.arange(0.0, 100.0, 0.5)
    rng = np.random.default_rng(0)
    placed = {}
    for scalp in (0.38, 0.7):
        one = np.select([radii < 45, radii < 48, radii < 55], [1.0, 0.15, 0.1], default=scalp)
        prof = np.tile(one, (grid.n, 1)) + rng.normal(0.0, 0.03, (grid.n, len(radii)))
        prof = ndi.gaussian_filter1d(prof, 1.0, axis=1)  # 0.5 mm of blur
        inner, hi = np.full(grid.n, 48.0), np.full(grid.n, 80.0)
        placed[scalp] = outer_by_graph_search(prof, radii, inner, hi, 0.45, grid, SkullParams())
    dark, bright = placed[0.38], placed[0.7]
    assert abs(dark.mean() - bright.mean()) < 0.15
    assert abs(dark.mean() - 55.0) < 0.5
    assert np.ptp(np.percentile(dark, [5, 95])) < 0.5


def test_thin_slices_leave_the_surfaces_unchanged():
    """1 mm input axes give exactly the surfaces fitted without them (no thick-slice rule)."""
    ph = make_phantom(2.0, seed=0)
    head = ph.labels.with_data((ph.labels.data > 0).astype(np.uint8))
    brain = ph.labels.with_data((ph.labels.data == L.BRAIN).astype(np.uint8))
    kw = dict(dark_threshold=0.45 * 1000.0)
    plain = fit_skull_surfaces(ph.t1, head, brain, **kw)
    thin = fit_skull_surfaces(ph.t1, head, brain, input_axes_mm=np.eye(3), **kw)
    thick = fit_skull_surfaces(ph.t1, head, brain, input_axes_mm=np.diag([1, 1, 4.0]), **kw)
    for name in ("brain_mm", "inner_mm", "outer_mm", "scalp_mm"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(thin, name))
    assert not np.array_equal(plain.outer_mm, thick.outer_mm)


def test_the_interhemispheric_fissure_does_not_pull_the_inner_skull_in():
    """A CSF-filled cleft along the midline over the top of the brain pulls the T1 inner
    skull there inwards: by 1.20 mm with no closing and no smoothing, 0.94 mm with the
    envelope's fissure closing alone, 0.70 mm with that and the smoothing over the top
    (session 21's code) and 0.22 mm as shipped, with the band rule's closing over the top.
    The outer skull stays put (0.10 mm). Measured in world space: the cleft takes brain
    voxels away, so the rays' centre (the brain's centroid) moves 0.9 mm down, and the
    radii of the two fits are compared at the same world points."""
    ph = make_phantom(2.0, seed=0)
    lab = ph.labels.data
    head = ph.labels.with_data((lab > 0).astype(np.uint8))
    brain = lab == L.BRAIN
    whole = ph.labels.with_data(brain.astype(np.uint8))
    centre = ph.t1.voxel_to_world(np.argwhere(brain).mean(axis=0)[None])[0]

    # the cleft: a V from 20 mm above the brain's centre, 2 mm wide there and 0.3 mm
    # wider per mm up (the hemispheres are round, so the fissure opens towards the top;
    # the envelope's 10 mm closing bridges most of it, but not its mouth)
    x = ph.t1.world_coordinate(0) - centre[0]
    z = ph.t1.world_coordinate(2) - centre[2]
    cleft = brain & (z > 20.0) & (np.abs(x) < 1.0 + 0.15 * (z - 20.0))
    t1 = ph.t1.data.copy()
    t1[cleft] = np.median(ph.t1.data[lab == L.CSF])
    cut = ph.labels.with_data((brain & ~cleft).astype(np.uint8))
    image = ph.t1.with_data(t1)

    def pulled_in_mm(**params) -> tuple[float, float]:
        """How far the cleft moves the inner and the outer skull inwards, on average along
        the midline over the top."""
        p = SkullParams(**params)
        a = fit_skull_surfaces(ph.t1, head, whole, dark_threshold=450.0, params=p)
        b = fit_skull_surfaces(image, head, cut, dark_threshold=450.0, params=p)
        d = a.grid.directions
        midline = (np.abs(d[:, 0]) < 0.05) & (d[:, 2] > 0.5)
        shift = (b.centre_world - a.centre_world) @ d.T
        return tuple(
            float(np.mean((getattr(a, r) - getattr(b, r) - shift)[midline]))
            for r in ("inner_mm", "outer_mm")
        )

    band_off = dict(inner_smooth_iterations=0, inner_closing_rings=0)
    neither, _ = pulled_in_mm(fissure_rings=0, **band_off)
    fissure_only, _ = pulled_in_mm(**band_off)
    shipped, outer = pulled_in_mm()
    assert neither > 0.9  # without any closing the inner skull follows the cleft down
    assert fissure_only < 0.9 * neither
    assert shipped < min(0.3, 0.25 * neither)
    assert abs(outer) < 0.2


def test_the_t1_inner_skull_is_smoothed_over_the_top_only():
    """A brain envelope with 1 mm of gyral noise on a smooth 70 mm sphere: over the top
    of the head the band rule's inner skull is smoothed (its noise at least halved), below
    the brain's centre it is unchanged, and it stays within the CSF and bone minimums."""
    grid = sphere_grid(5)
    rng = np.random.default_rng(0)
    brain = 70.0 + rng.normal(0.0, 1.0, grid.n)
    outer = np.full(grid.n, 78.0)
    p = SkullParams()
    rough = inner_from_band(brain, outer, p)
    smooth = inner_from_band(brain, outer, p, grid=grid)
    z = grid.directions[:, 2]
    np.testing.assert_array_equal(
        smooth[z <= p.inner_smooth_min_z], rough[z <= p.inner_smooth_min_z]
    )
    top = z > p.inner_smooth_min_z + 0.3
    assert np.std(smooth[top]) < 0.5 * np.std(rough[top])
    assert np.all(smooth >= brain + p.min_csf_mm - 1e-9)
    assert np.all(smooth <= outer - p.min_skull_thickness_mm + 1e-9)
    off = SkullParams(inner_smooth_iterations=0, inner_closing_rings=0)
    np.testing.assert_array_equal(inner_from_band(brain, outer, off, grid=grid), rough)


def test_the_t1_inner_skull_bridges_a_wide_trough_over_the_top():
    """The brain envelope dips 3 mm along a 12-degree-wide strip over the midline (the
    fissure's mouth and the sagittal sinus, wider than the envelope's own closing) under a
    smooth outer skull: the band rule's inner skull over the top stays within 0.3 mm of the
    one without the trough (measured 0.00 mm; 1.65 mm with 0 rings), rays below the
    closing's start are untouched, and the CSF and bone minimums hold."""
    grid = sphere_grid(5)
    x, z = grid.directions[:, 0], grid.directions[:, 2]
    trough = (np.abs(x) < np.sin(np.deg2rad(6.0))) & (z > 0.0)
    smooth_brain = np.full(grid.n, 70.0)
    brain = np.where(trough, 67.0, smooth_brain)
    outer = np.full(grid.n, 78.0)
    p = SkullParams(inner_smooth_iterations=0)
    want = inner_from_band(smooth_brain, outer, p, grid=grid)
    got = inner_from_band(brain, outer, p, grid=grid)
    top = trough & (z > p.inner_closing_min_z + 0.3)
    assert np.max(np.abs(got[top] - want[top])) < 0.3
    low = z <= p.inner_closing_min_z
    np.testing.assert_array_equal(got[low], inner_from_band(brain, outer, p)[low])
    assert np.all(got >= brain + p.min_csf_mm - 1e-9)
    assert np.all(got <= outer - p.min_skull_thickness_mm + 1e-9)
    off = SkullParams(inner_smooth_iterations=0, inner_closing_rings=0)
    off_mm = inner_from_band(brain, outer, off, grid=grid)
    assert np.max(np.abs(off_mm[top] - want[top])) > 1.0
