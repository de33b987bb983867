"""Skull surfaces: inner skull, outer skull and scalp as nested star-shaped surfaces.

Method (T1). Rays leave the brain's centre in 10242 directions. Along each
ray the brain envelope is the last brain voxel. The outer skull is the outer
edge of the last dark (bone-like) run before the soft tissue of the scalp,
searched within a physiological thickness window, so bright marrow (diploe)
between the two dark tables stays inside the bone, and placed on that rise:
nearer its foot the broader the rise is (:func:`skullseg.profiles.rise_point`,
:func:`skullseg.profiles.width_rise_fraction`). CSF and compact bone are
both dark in a T1, so the inner skull is placed at a share of the dark band
between brain and outer skull (:func:`~skullseg.inner_skull.inner_from_band`;
with a T2, at the CSF-to-bone fall instead). Where the input's slices are thick
along a ray, its profile is blurred across these edges: there the brain envelope
is moved to the half height of its own edge and the outer skull to the half height of
its rise (:func:`skullseg.profiles.thick_weight`). Each radius map is made
robust on the sphere (outliers to the local median) and smoothed; then
ordering and minimum gaps are enforced ray by ray, which makes the three
surfaces nest exactly. The one-dimensional edge tools are in
:mod:`skullseg.profiles`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from .graphsearch import optimal_surface
from .inner_skull import inner_from_band, inner_from_t2
from .morphology import closing, fill_holes
from .profiles import (
    first_exit_after,
    half_height_edge,
    last_crossing,
    last_true,
    outer_edge,
    profile_at,
    profile_sampler,
    rise_point,
    rise_width_mm,
    thick_weight,
    width_rise_fraction,
)
from .radial import (
    SphereGrid,
    close_on_sphere,
    inside_mask,
    inside_masks,
    radial_mesh,
    robust_smooth_on_sphere,
    sample_profiles,
    smooth_on_sphere,
    sphere_grid,
)
from .volume import Volume

__all__ = [
    "SkullParams",
    "SkullSurfaces",
    "fit_skull_surfaces",
    # the inner skull's rules, defined in :mod:`skullseg.inner_skull`
    "inner_from_band",
    "inner_from_t2",
    # profile tools, defined in :mod:`skullseg.profiles`, importable from here too
    "last_crossing",
    "profile_at",
    "rise_point",
]

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
    # the inner table over the top of the head is smoother than the brain envelope it is
    # placed from (gyri, the fissure's rims): on rays whose world z component is above
    # inner_smooth_min_z (fully from 0.3 higher) the T1 inner skull is Laplacian-smoothed
    # inner_smooth_iterations times on the sphere (skullseg.radial.smooth_over_top; 0: off)
    inner_smooth_iterations: int = 15
    inner_smooth_min_z: float = 0.0
    # the inner table bridges the interhemispheric fissure and the sagittal sinus, which
    # are wider than the envelope's fissure closing: the band rule places the T1 inner
    # skull from the brain envelope closed over inner_closing_rings grid rings on rays
    # above inner_closing_min_z (fully from 0.3 higher); the CSF minimum still counts
    # from the envelope itself (0 rings: off)
    inner_closing_rings: int = 4
    inner_closing_min_z: float = 0.2
    edge_fraction: float = 0.5
    # outer skull where the profile has risen this share of the way from the bone's minimum
    # (2.5 mm inside) to the scalp's maximum (3 mm outside); 0 keeps the bone-threshold edge.
    # With edge_rise_adaptive the share follows each ray's rise width instead (10-90 %):
    # edge_rise_sharp_fraction at edge_rise_sharp_width_mm, edge_rise_per_mm less per mm
    # broader, within edge_rise_bounds (skullseg.profiles.width_rise_fraction)
    edge_rise_fraction: float = 0.3
    edge_rise_adaptive: bool = True
    edge_rise_sharp_fraction: float = 0.35
    edge_rise_sharp_width_mm: float = 1.25
    edge_rise_per_mm: float = 0.25
    edge_rise_bounds: tuple[float, float] = (0.1, 0.45)
    outer_offset_mm: float = 0.0  # added to the outer skull found on the image
    # thick slices: where the input voxel is long along a ray (its effective width
    # sqrt(sum_k (u . a_k)^2) above thick_start_mm, fully from thick_start + thick_span), the
    # profile is blurred across the edges, so the brain envelope moves to the half height
    # of its own edge and the outer skull's rise level goes to thick_edge_rise_fraction
    thick_start_mm: float = 2.0
    thick_span_mm: float = 1.0
    thick_edge_rise_fraction: float = 0.5
    graph_search: bool = True
    max_step_mm: float = 1.0  # largest outer-skull jump between neighbouring rays (graph search)
    # where no sample within 1 mm of the graph search's edge is darker than dark_fraction x WM
    # (marrow up to a thin outer table: the edge is mid-rise), the rise's foot is looked for
    # from the bone's minimum, not only in the 3 mm before the scalp's peak (rise_point);
    # not in a thick-sliced input (any ray over thick_start_mm)
    bright_bone_from_minimum: bool = True
    outermost_bonus: float = 0.02  # per mm: prefer the outer of two similar edges
    dark_fraction: float = 0.45  # bone-like below this fraction of the white-matter level
    bone_fraction: float = 0.5  # extracranial bone: below this share of the local soft tissue
    soft_floor_fraction: float = 0.3  # soft tissue (for that local level): above this x WM
    soft_ceiling_fraction: float = 0.9  # ... and below this x WM (fat is brighter)
    air_fraction: float = 0.15  # air cavities: smoothed T1 below this fraction of WM
    # sinuses and mastoid air cells lie inside the outer skull at the skull base. In a T1
    # they are as dark as thick compact bone, so air is looked for in the cranial bone
    # band only where the registered atlas expects air (prior above shell_air_prior) and
    # below shell_air_above_centre_mm above the brain's centre; without an atlas, nowhere
    shell_air_prior: float = 0.5
    shell_air_above_centre_mm: float = 20.0
    envelope_closing_mm: float = 10.0
    # the brain envelope over the top of the head dips into the interhemispheric fissure
    # (CSF and the sagittal sinus, dark like bone in a T1), which would pull the T1 inner
    # skull inwards along the midline: on rays whose world z component is above
    # fissure_min_z, the envelope's valleys narrower than about 2 x fissure_rings grid
    # steps are closed (skullseg.radial.close_on_sphere; 0 rings: off)
    fissure_rings: int = 2
    fissure_min_z: float = 0.2
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


def fit_skull_surfaces(
    image: Volume,
    head: Volume,
    brain: Volume,
    dark_threshold: float,
    params: SkullParams | None = None,
    t2: Volume | None = None,
    input_axes_mm: NDArray | None = None,
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
    t2 : Volume, optional
        T2- or PD-weighted image on the same grid (places the inner skull).
    input_axes_mm : ndarray, optional
        3 x 3 matrix whose columns are the original input voxel's edges in world mm
        (the input affine's ``[:3, :3]``). Where that voxel is long along a ray
        (thick slices), the edges are placed for a blurred profile
        (:func:`thick_weight`); ``None`` treats the input as the working grid.
    """
    p = params or SkullParams()
    grid = sphere_grid(p.subdivisions)
    bidx = np.argwhere(brain.data > 0)
    centre = image.voxel_to_world(bidx.mean(axis=0)[None])[0]
    radii = np.arange(0.0, p.max_radius_mm, p.step_mm)

    vox = brain.zooms_mm[0]
    envelope = fill_holes(closing(brain.data > 0, p.envelope_closing_mm, vox))
    env_prof = sample_profiles(brain.with_data(envelope.astype(np.float32)), centre, grid, radii)
    head_prof = (
        sample_profiles(head.with_data(head.data.astype(np.float32)), centre, grid, radii) > 0.5
    )
    img_prof = sample_profiles(image, centre, grid, radii)

    # brain envelope: last brain sample on each ray
    brain_r = last_crossing(env_prof, radii, 0.5)
    brain_r = robust_smooth_on_sphere(brain_r, grid, rings=2, tolerance_mm=4.0, iterations=3)
    if p.fissure_rings > 0:
        over_top = grid.directions[:, 2] > p.fissure_min_z
        closed = close_on_sphere(brain_r, grid, rings=p.fissure_rings)
        brain_r = np.where(over_top, closed, brain_r)
    thick = np.zeros(len(brain_r))
    if input_axes_mm is not None:
        thick = thick_weight(grid.directions, input_axes_mm, p.thick_start_mm, p.thick_span_mm)
    if thick.any():
        half = half_height_edge(img_prof, radii, brain_r)
        half = robust_smooth_on_sphere(half, grid, rings=2, tolerance_mm=4.0, iterations=3)
        shift = thick * (half - brain_r)
        brain_r = brain_r + shift
        log.info(
            "thick slices: %.0f%% of rays placed for blurred edges (brain envelope %+.2f mm)",
            100 * np.mean(thick > 0),
            float(np.mean(shift[thick > 0])),
        )

    # scalp: first exit from the head after the brain
    scalp_r = first_exit_after(head_prof, radii, brain_r)
    scalp_r = robust_smooth_on_sphere(scalp_r, grid, rings=1, tolerance_mm=6.0, iterations=1)

    inner_r = brain_r + p.csf_thickness_mm
    if t2 is not None:
        t2_prof = sample_profiles(t2, centre, grid, radii)
        inner_r = inner_from_t2(t2_prof, radii, brain_r, inner_r, grid, p)

    # outer skull: the outermost strong dark-to-bright edge inside the thickness window
    lo = inner_r + p.min_skull_thickness_mm
    hi = np.minimum(inner_r + p.max_skull_thickness_mm, scalp_r - p.min_scalp_thickness_mm)
    if p.graph_search:
        outer_r = outer_by_graph_search(
            img_prof, radii, inner_r, hi, dark_threshold, grid, p, thick=thick
        )
        n_missing = 0
    else:
        outer_r = outer_edge(img_prof, radii, lo, hi, dark_threshold, p.edge_fraction)
        n_missing = int(np.sum(~np.isfinite(outer_r)))
        outer_r = np.where(np.isfinite(outer_r), outer_r, inner_r + p.default_skull_thickness_mm)
        outer_r = robust_smooth_on_sphere(outer_r, grid, rings=2, tolerance_mm=3.0, iterations=4)
    outer_r = outer_r + p.outer_offset_mm

    if t2 is None:
        inner_r = inner_from_band(brain_r, outer_r, p, grid=grid)
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


def outer_by_graph_search(
    profiles: NDArray,
    radii_mm: NDArray,
    inner_mm: NDArray,
    hi_mm: NDArray,
    dark_threshold: float,
    grid: SphereGrid,
    p: SkullParams,
    rise_fraction: float | NDArray | None = None,
    thick: NDArray | None = None,
) -> NDArray[np.float64]:
    """Outer skull as the optimal smooth surface through bone-to-scalp edges.

    Column ``v`` holds candidate radii ``inner + min_thickness ... inner +
    max_thickness``; the cost of a candidate is minus the rise of the profile
    across it (mean over 0.5-2 mm outside minus 0.5-2 mm inside, in units of
    the bone threshold), a quarter as attractive where the inside is not dark,
    prohibitive beyond ``hi_mm`` (the scalp). Neighbouring rays may differ by at
    most ``p.max_step_mm`` in thickness. The chosen radius is refined to where
    the profile crosses the bone threshold next to it (or, where lower, the level half-way
    between the means inside and outside the chosen edge), then moved towards the foot of
    the rise (:func:`rise_point` with ``rise_fraction``, per ray or one value), at
    most ``hi_mm``. Without ``rise_fraction``, the level is
    :func:`~skullseg.profiles.width_rise_fraction` of each ray's rise width
    (``p.edge_rise_adaptive``; else ``p.edge_rise_fraction``), moved towards
    ``p.thick_edge_rise_fraction`` by the thick-slice weight ``thick`` (0-1 per ray).
    """
    step = float(radii_mm[1] - radii_mm[0])
    offsets = np.arange(p.min_skull_thickness_mm, p.max_skull_thickness_mm + 1e-9, step)
    cand = inner_mm[:, None] + offsets[None, :]

    at = profile_sampler(profiles, radii_mm)

    outside = np.mean([at(cand + d) for d in (0.5, 1.0, 1.5, 2.0)], axis=0)
    inside = np.mean([at(cand - d) for d in (0.5, 1.0, 1.5, 2.0)], axis=0)
    rise = (outside - inside) / max(dark_threshold, 1e-6)
    rise = np.where(inside < dark_threshold, rise, 0.25 * rise)
    cost = -rise - p.outermost_bonus * offsets[None, :]
    cost = np.where(cand <= hi_mm[:, None], cost, 10.0)
    max_step = max(1, int(round(p.max_step_mm / step)))
    idx = optimal_surface(cost, grid.neighbours, max_step)
    rows = np.arange(len(idx))
    chosen = cand[rows, idx]
    # sub-voxel refinement: where the profile rises through the bone threshold, within
    # +-1 mm of the chosen edge; where the scalp itself is barely brighter than that
    # threshold (dark muscle or galea on the bone), through the level half-way between the
    # two sides of the chosen edge instead, which a dark scalp would otherwise fall below
    level = np.minimum(dark_threshold, 0.5 * (inside[rows, idx] + outside[rows, idx]))
    fine = chosen[:, None] + np.linspace(-1.0, 1.0, 9)[None, :]
    j = last_true(at(fine) < level[:, None])
    refined = np.where(j >= 0, fine[rows, np.clip(j, 0, 8)] + 0.125, chosen)
    # no dark bone near the edge (bright marrow up to the outer table): the graph search's
    # edge is on the rise itself, whose foot may be more than 3 mm before the scalp's peak.
    # Not in a thick-sliced input: its slices blur thin dark tables too (measured: 4 mm
    # axial simulated heads lose 0.001-0.003 Dice with the rule on all rays or on the
    # sharp rays alone), and its blurred rays are placed at half height instead (below)
    thin = thick is None or not np.any(np.asarray(thick) > 0.0)
    bright = (j < 0) if p.bright_bone_from_minimum and thin else None
    if rise_fraction is None:
        if p.edge_rise_adaptive:
            base = width_rise_fraction(
                rise_width_mm(at, refined, from_minimum=bright),
                sharp_fraction=p.edge_rise_sharp_fraction,
                sharp_width_mm=p.edge_rise_sharp_width_mm,
                per_mm=p.edge_rise_per_mm,
                bounds=p.edge_rise_bounds,
            )
        else:
            base = np.full(refined.shape, p.edge_rise_fraction)
        w = 0.0 if thick is None else thick
        rise_fraction = base + w * (p.thick_edge_rise_fraction - base)
    fraction = np.broadcast_to(rise_fraction, refined.shape)
    if np.any(fraction > 0):
        moved = np.minimum(rise_point(at, refined, fraction, from_minimum=bright), hi_mm)
        refined = np.where(fraction > 0, moved, refined)
    return smooth_on_sphere(refined, grid, iterations=2)


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
