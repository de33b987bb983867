"""Skull surfaces: inner skull, outer skull and scalp as nested star-shaped surfaces.

Method (T1). Rays leave the brain's centre in 10242 directions. Along each
ray the brain envelope is the last brain voxel. The outer skull is the outer
edge of the last dark (bone-like) run before the soft tissue of the scalp,
searched within a physiological thickness window, so bright marrow (diploe)
between the two dark tables stays inside the bone, and placed at the foot of
that rise (:func:`rise_point`). CSF and compact bone are
both dark in a T1, so the inner skull is placed at a share of the dark band
between brain and outer skull (:func:`inner_from_band`; with a T2, at the
CSF-to-bone fall instead). Each radius map is made robust on the
sphere (outliers to the local median) and smoothed; then ordering and
minimum gaps are enforced ray by ray, which makes the three surfaces nest
exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from .graphsearch import optimal_surface
from .morphology import closing
from .radial import (
    SphereGrid,
    inside_mask,
    inside_masks,
    radial_mesh,
    robust_smooth_on_sphere,
    sample_profiles,
    smooth_on_sphere,
    sphere_grid,
)
from .volume import Volume

__all__ = ["SkullParams", "SkullSurfaces", "fit_skull_surfaces"]

log = logging.getLogger("skullseg")


@dataclass(frozen=True)
class SkullParams:
    """Physical bounds of the layered skull model (all in mm)."""

    csf_thickness_mm: float = 2.5  # CSF assumed beyond the brain while searching the outer skull
    # T1 inner skull = brain + inner_offset + inner_fraction * (outer - brain), at least
    # min_csf beyond the brain (fitted on simulated and FLASH-referenced heads, see BENCHMARKS)
    inner_offset_mm: float = -1.5
    inner_fraction: float = 0.45
    min_csf_mm: float = 1.0
    edge_fraction: float = 0.5
    # outer skull where the profile has risen this share of the way from the bone's minimum
    # (2.5 mm inside) to the scalp's maximum (3 mm outside); 0 keeps the bone-threshold edge
    edge_rise_fraction: float = 0.3
    outer_offset_mm: float = 0.0  # added to the outer skull found on the image
    graph_search: bool = True
    max_step_mm: float = 1.0  # largest outer-skull jump between neighbouring rays (graph search)
    outermost_bonus: float = 0.02  # per mm: prefer the outer of two similar edges
    dark_fraction: float = 0.45  # bone-like below this fraction of the white-matter level
    bone_fraction: float = 0.5  # extracranial bone: below this share of the local soft tissue
    soft_floor_fraction: float = 0.3  # soft tissue (for that local level): above this x WM
    air_fraction: float = 0.15  # air cavities: smoothed T1 below this fraction of WM
    envelope_closing_mm: float = 10.0
    min_skull_thickness_mm: float = 1.5
    max_skull_thickness_mm: float = 14.0
    default_skull_thickness_mm: float = 6.0
    min_scalp_thickness_mm: float = 2.0
    max_radius_mm: float = 140.0
    step_mm: float = 0.5
    subdivisions: int = 5


@dataclass(frozen=True)
class SkullSurfaces:
    """Radius maps (mm) of the three nested surfaces around ``centre_world``."""

    centre_world: NDArray[np.float64]
    grid: SphereGrid
    brain_mm: NDArray[np.float64]
    inner_mm: NDArray[np.float64]
    outer_mm: NDArray[np.float64]
    scalp_mm: NDArray[np.float64]
    info: dict = field(default_factory=dict)

    def mesh(self, which: str) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Vertices and faces of ``'inner'``, ``'outer'`` or ``'scalp'`` in world mm."""
        radii = {"inner": self.inner_mm, "outer": self.outer_mm, "scalp": self.scalp_mm}[which]
        return radial_mesh(self.centre_world, self.grid, radii)

    def inside_all(self, like: Volume) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        """Masks of the inside of the inner and outer skull on ``like``'s grid."""
        inner, outer = inside_masks(
            like, self.centre_world, self.grid, [self.inner_mm, self.outer_mm]
        )
        return inner, outer

    def inside(self, which: str, like: Volume) -> NDArray[np.bool_]:
        """Voxel mask of the inside of one surface on ``like``'s grid."""
        radii = {"inner": self.inner_mm, "outer": self.outer_mm, "scalp": self.scalp_mm}[which]
        return inside_mask(like, self.centre_world, self.grid, radii)


def _last_true(mask: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Index of the last True along axis 1 (-1 where none)."""
    n = mask.shape[1]
    rev = mask[:, ::-1]
    last = n - 1 - np.argmax(rev, axis=1)
    return np.where(mask.any(axis=1), last, -1)


def fit_skull_surfaces(
    image: Volume,
    head: Volume,
    brain: Volume,
    dark_threshold: float,
    params: SkullParams | None = None,
    t2: Volume | None = None,
) -> SkullSurfaces:
    """Fit inner skull, outer skull and scalp to a bias-corrected T1 on the working grid.

    Parameters
    ----------
    image : Volume
        Bias-corrected T1 (working grid).
    head, brain : Volume
        Head and brain masks on the same grid.
    dark_threshold : float
        Intensity below which a voxel looks like bone, CSF or air.
    params : SkullParams
        Thickness bounds.
    """
    p = params or SkullParams()
    grid = sphere_grid(p.subdivisions)
    bidx = np.argwhere(brain.data > 0)
    centre = image.voxel_to_world(bidx.mean(axis=0)[None])[0]
    radii = np.arange(0.0, p.max_radius_mm, p.step_mm)

    vox = brain.zooms_mm[0]
    envelope = ndi.binary_fill_holes(closing(brain.data > 0, p.envelope_closing_mm, vox))
    env_prof = sample_profiles(brain.with_data(envelope.astype(np.float32)), centre, grid, radii)
    head_prof = (
        sample_profiles(head.with_data(head.data.astype(np.float32)), centre, grid, radii) > 0.5
    )
    img_prof = sample_profiles(image, centre, grid, radii)

    # brain envelope: last brain sample on each ray
    brain_r = last_crossing(env_prof, radii, 0.5)
    brain_r = robust_smooth_on_sphere(brain_r, grid, rings=2, tolerance_mm=4.0, iterations=3)

    # scalp: first exit from the head after the brain
    scalp_r = _first_exit_after(head_prof, radii, brain_r)
    scalp_r = robust_smooth_on_sphere(scalp_r, grid, rings=1, tolerance_mm=6.0, iterations=1)

    inner_r = brain_r + p.csf_thickness_mm
    if t2 is not None:
        t2_prof = sample_profiles(t2, centre, grid, radii)
        inner_r = inner_from_t2(t2_prof, radii, brain_r, inner_r, grid, p)

    # outer skull: the outermost strong dark-to-bright edge inside the thickness window
    lo = inner_r + p.min_skull_thickness_mm
    hi = np.minimum(inner_r + p.max_skull_thickness_mm, scalp_r - p.min_scalp_thickness_mm)
    if p.graph_search:
        outer_r = outer_by_graph_search(img_prof, radii, inner_r, hi, dark_threshold, grid, p)
        n_missing = 0
    else:
        outer_r = outer_edge(img_prof, radii, lo, hi, dark_threshold, p.edge_fraction)
        n_missing = int(np.sum(~np.isfinite(outer_r)))
        outer_r = np.where(np.isfinite(outer_r), outer_r, inner_r + p.default_skull_thickness_mm)
        outer_r = robust_smooth_on_sphere(outer_r, grid, rings=2, tolerance_mm=3.0, iterations=4)
    outer_r = outer_r + p.outer_offset_mm

    if t2 is None:
        inner_r = inner_from_band(brain_r, outer_r, p)
    inner_r, outer_r, scalp_r = enforce_nesting(
        inner_r, outer_r, scalp_r, p.min_skull_thickness_mm, p.min_scalp_thickness_mm
    )
    thickness = outer_r - inner_r
    log.info(
        "skull surfaces: centre %s mm, thickness median %.1f mm (5-95%%: %.1f-%.1f), "
        "%d rays without a dark band",
        np.round(centre, 1),
        np.median(thickness),
        np.percentile(thickness, 5),
        np.percentile(thickness, 95),
        n_missing,
    )
    return SkullSurfaces(
        centre, grid, brain_r, inner_r, outer_r, scalp_r, info={"rays_without_dark_band": n_missing}
    )


def inner_from_band(brain_mm: NDArray, outer_mm: NDArray, p: SkullParams) -> NDArray[np.float64]:
    """Inner skull on a T1: a share of the dark band between brain and outer skull.

    In T1 both CSF and compact bone are dark, so the inner table is not an
    edge in the image. Where the band from the brain envelope to the outer
    skull is wide, both the CSF layer and the bone are thicker; the inner skull
    is placed at ``brain + inner_offset + inner_fraction * (outer - brain)``,
    at least ``min_csf`` beyond the brain and ``min_skull_thickness`` inside
    the outer skull.

    Examples
    --------
    >>> float(inner_from_band(np.array([60.0]), np.array([70.0]), SkullParams())[0])
    63.0
    """
    band = outer_mm - brain_mm
    inner = brain_mm + p.inner_offset_mm + p.inner_fraction * band
    inner = np.maximum(inner, brain_mm + p.min_csf_mm)
    return np.minimum(inner, np.maximum(outer_mm - p.min_skull_thickness_mm, brain_mm))


def profile_at(profiles: NDArray, radii_mm: NDArray, r_mm: NDArray) -> NDArray[np.float64]:
    """Linear interpolation of each ray's profile at radii ``r_mm`` (shape (n_rays, m)).

    Examples
    --------
    >>> profile_at(np.array([[0.0, 10.0, 20.0]]), np.arange(3.0), np.array([[0.5, 1.5]]))
    array([[ 5., 15.]])
    """
    step = float(radii_mm[1] - radii_mm[0])
    rows = np.arange(profiles.shape[0])[:, None]
    pos = np.clip((r_mm - radii_mm[0]) / step, 0, profiles.shape[1] - 1.001)
    i0 = np.floor(pos).astype(int)
    f = pos - i0
    return (1 - f) * profiles[rows, i0] + f * profiles[rows, i0 + 1]


def inner_from_t2(
    t2_profiles: NDArray,
    radii_mm: NDArray,
    brain_mm: NDArray,
    fallback_mm: NDArray,
    grid: SphereGrid,
    p: SkullParams,
) -> NDArray[np.float64]:
    """Inner skull from a T2 (or PD) image: where bright CSF gives way to dark bone.

    Beyond the brain envelope the T2 profile rises into CSF and falls into bone.
    The inner skull is the optimal smooth surface (graph search) through the
    strongest falls within ``[brain - 1, brain + 3 x csf_thickness]`` mm,
    placed at the half-way crossing; rays where the fall is weak keep
    ``fallback_mm``.
    """
    step = float(radii_mm[1] - radii_mm[0])
    offsets = np.arange(-1.0, 3.0 * p.csf_thickness_mm + 1e-9, step)
    cand = brain_mm[:, None] + offsets[None, :]

    def at(r: NDArray) -> NDArray:
        return profile_at(t2_profiles, radii_mm, r)

    inside = np.max([at(cand - d) for d in (0.5, 1.0, 1.5)], axis=0)
    outside = np.mean([at(cand + d) for d in (0.5, 1.0, 1.5)], axis=0)
    scale = max(float(np.percentile(t2_profiles[t2_profiles > 0], 99)), 1e-6)
    fall = (inside - outside) / scale
    idx = optimal_surface(-fall, grid.neighbours, max(1, int(round(p.max_step_mm / step))))
    n = len(idx)
    chosen = cand[np.arange(n), idx]
    strength = fall[np.arange(n), idx]
    level = 0.5 * (inside[np.arange(n), idx] + outside[np.arange(n), idx])
    fine = chosen[:, None] + np.linspace(-1.0, 1.0, 9)[None, :]
    j = _last_true(at(fine) >= level[:, None])
    refined = np.where(j >= 0, fine[np.arange(n), np.clip(j, 0, 8)] + 0.125, chosen)
    inner = np.where(strength > 0.1, refined, fallback_mm)
    return robust_smooth_on_sphere(inner, grid, rings=2, tolerance_mm=2.0, iterations=2)


def outer_by_graph_search(
    profiles: NDArray,
    radii_mm: NDArray,
    inner_mm: NDArray,
    hi_mm: NDArray,
    dark_threshold: float,
    grid: SphereGrid,
    p: SkullParams,
) -> NDArray[np.float64]:
    """Outer skull as the optimal smooth surface through bone-to-scalp edges.

    Column ``v`` holds candidate radii ``inner + min_thickness ... inner +
    max_thickness``; the cost of a candidate is minus the rise of the profile
    across it (mean over 0.5-2 mm outside minus 0.5-2 mm inside, in units of
    the bone threshold), a quarter as attractive where the inside is not dark,
    prohibitive beyond ``hi_mm`` (the scalp). Neighbouring rays may differ by at
    most ``p.max_step_mm`` in thickness. The chosen radius is refined to where
    the profile crosses the bone threshold next to it, then moved to the foot of
    the rise (:func:`rise_point` with ``p.edge_rise_fraction``), at most ``hi_mm``.
    """
    step = float(radii_mm[1] - radii_mm[0])
    offsets = np.arange(p.min_skull_thickness_mm, p.max_skull_thickness_mm + 1e-9, step)
    cand = inner_mm[:, None] + offsets[None, :]

    def at(r: NDArray) -> NDArray:
        return profile_at(profiles, radii_mm, r)

    outside = np.mean([at(cand + d) for d in (0.5, 1.0, 1.5, 2.0)], axis=0)
    inside = np.mean([at(cand - d) for d in (0.5, 1.0, 1.5, 2.0)], axis=0)
    rise = (outside - inside) / max(dark_threshold, 1e-6)
    rise = np.where(inside < dark_threshold, rise, 0.25 * rise)
    cost = -rise - p.outermost_bonus * offsets[None, :]
    cost = np.where(cand <= hi_mm[:, None], cost, 10.0)
    max_step = max(1, int(round(p.max_step_mm / step)))
    idx = optimal_surface(cost, grid.neighbours, max_step)
    chosen = cand[np.arange(len(idx)), idx]
    # sub-voxel refinement: where the profile rises through the bone threshold, within
    # +-1 mm of the chosen edge
    fine = chosen[:, None] + np.linspace(-1.0, 1.0, 9)[None, :]
    j = _last_true(at(fine) < dark_threshold)
    refined = np.where(j >= 0, fine[np.arange(len(j)), np.clip(j, 0, 8)] + 0.125, chosen)
    if p.edge_rise_fraction > 0:
        refined = np.minimum(rise_point(at, refined, p.edge_rise_fraction), hi_mm)
    return smooth_on_sphere(refined, grid, iterations=2)


def rise_point(
    at: Callable[[NDArray], NDArray], edge_mm: NDArray, fraction: float
) -> NDArray[np.float64]:
    """Where each profile has risen ``fraction`` of its bone-to-scalp step near ``edge_mm``.

    The step runs from the profile's minimum within 2.5 mm inside ``edge_mm`` (the
    bone) to its maximum within 3 mm outside (the scalp); the result is the last
    point below ``min + fraction * (max - min)`` in the 3 mm before that maximum
    (0.125 mm steps). ``at(r)`` samples the profiles at radii ``r`` (n_rays, m).
    In a T1 the rise from the outer table into the scalp's fat is broad (dark
    periosteum and galea lie on the bone), so the bone ends near its foot rather
    than at its middle; 0.3 was measured on FLASH-referenced and simulated heads
    (BENCHMARKS.md).

    Examples
    --------
    >>> radii = np.arange(0.0, 20.0, 0.5)
    >>> prof = np.where(radii < 10.0, 0.1, 1.0)[None]  # a sharp step at 10 mm
    >>> r = rise_point(lambda r: profile_at(prof, radii, r), np.array([10.0]), 0.3)
    >>> 9.5 <= float(r[0]) <= 10.0
    True
    """
    n = len(edge_mm)
    rows = np.arange(n)
    bone = at(edge_mm[:, None] - np.linspace(0.0, 2.5, 6)[None, :]).min(axis=1)
    outside = edge_mm[:, None] + np.linspace(0.0, 3.0, 7)[None, :]
    values = at(outside)
    scalp, peak_mm = values.max(axis=1), outside[rows, values.argmax(axis=1)]
    level = bone + fraction * (scalp - bone)
    fine = peak_mm[:, None] + np.linspace(-3.0, 0.0, 25)[None, :]
    j = _last_true(at(fine) < level[:, None])
    return np.where(j >= 0, fine[rows, np.clip(j, 0, 24)] + 0.0625, edge_mm)


def outer_edge(
    profiles: NDArray,
    radii_mm: NDArray,
    lo_mm: NDArray,
    hi_mm: NDArray,
    dark_threshold: float,
    edge_fraction: float = 0.5,
) -> NDArray[np.float64]:
    """Radius of the outer skull on each ray: the outermost strong rise from bone to scalp.

    The radial derivative is taken over +-1 mm. Within ``[lo_mm, hi_mm]`` the
    chosen edge is the outermost one whose rise is at least ``edge_fraction``
    of the strongest rise on that ray and whose inner side is darker than
    ``dark_threshold`` (bone); the boundary is placed where the profile
    crosses ``dark_threshold`` just inside that edge. NaN where there is none.
    """
    step = float(radii_mm[1] - radii_mm[0])
    k = max(1, int(round(1.0 / step)))
    prof = ndi.uniform_filter1d(profiles, size=k + 1, axis=1)
    grad = np.zeros_like(prof)
    grad[:, k:-k] = prof[:, 2 * k :] - prof[:, : -2 * k]
    inner_side = np.zeros_like(prof)
    inner_side[:, k:] = prof[:, :-k]
    window = (radii_mm[None, :] >= lo_mm[:, None]) & (radii_mm[None, :] <= hi_mm[:, None])
    g = np.where(window & (inner_side < dark_threshold), grad, 0.0)
    best = g.max(axis=1)
    strong = (g >= edge_fraction * best[:, None]) & (g > 0)
    idx = _last_true(strong)
    found = (idx >= 0) & (best > 0)
    # sub-voxel position: where the profile crosses the dark threshold just inside the edge
    below = (prof < dark_threshold) & (np.arange(prof.shape[1])[None, :] <= idx[:, None])
    j = np.clip(_last_true(below), 0, prof.shape[1] - 2)
    rows = np.arange(prof.shape[0])
    a, b = prof[rows, j], prof[rows, j + 1]
    frac = np.clip((dark_threshold - a) / np.maximum(b - a, 1e-6), 0.0, 1.0)
    crossing = radii_mm[j] + frac * step
    edge = np.where(_last_true(below) >= 0, crossing, radii_mm[np.maximum(idx, 0)])
    return np.where(found, edge, np.nan)


def last_crossing(profiles: NDArray, radii_mm: NDArray, level: float) -> NDArray[np.float64]:
    """Sub-sample radius where each profile last falls below ``level`` (NaN if never above).

    Examples
    --------
    >>> last_crossing(np.array([[1.0, 1.0, 0.0, 0.0]]), np.arange(4.0), 0.5)
    array([1.5])
    """
    above = profiles >= level
    j = _last_true(above)
    jj = np.clip(j, 0, profiles.shape[1] - 2)
    rows = np.arange(profiles.shape[0])
    a, b = profiles[rows, jj], profiles[rows, jj + 1]
    frac = np.clip((a - level) / np.maximum(a - b, 1e-9), 0.0, 1.0)
    r = radii_mm[jj] + frac * (radii_mm[1] - radii_mm[0])
    return np.where(j >= 0, r, np.nan)


def _first_exit_after(inside: NDArray[np.bool_], radii: NDArray, start_mm: NDArray) -> NDArray:
    """First radius beyond ``start_mm`` where the ray leaves ``inside`` (last radius if never)."""
    beyond = radii[None, :] > start_mm[:, None]
    outside = beyond & ~inside
    first = np.argmax(outside, axis=1)
    return np.where(outside.any(axis=1), radii[first], radii[-1])


def enforce_nesting(
    inner: NDArray, outer: NDArray, scalp: NDArray, min_skull_mm: float, min_scalp_mm: float
) -> tuple[NDArray, NDArray, NDArray]:
    """Make ``inner + min_skull <= outer`` and ``outer + min_scalp <= scalp`` on every ray.

    Bone wins over scalp where both cannot fit: the scalp is pushed out.

    Examples
    --------
    >>> i, o, s = enforce_nesting(np.array([50.]), np.array([50.5]), np.array([51.]), 1.5, 2.0)
    >>> float(o[0]), float(s[0])
    (51.5, 53.5)
    """
    outer = np.maximum(outer, inner + min_skull_mm)
    scalp = np.maximum(scalp, outer + min_scalp_mm)
    return inner, outer, scalp
