"""The inner skull: from the dark band on a T1, from the CSF-to-bone fall on a T2.

In a T1, CSF and compact bone are both dark, so the inner table is not an edge:
:func:`inner_from_band` places it at a share of the dark band between the brain envelope
and the outer skull; over the top of the head the band is measured from the envelope
closed across the midline, and the result is smoothed. In a T2 (or PD) the CSF is
bright and the bone dark: :func:`inner_from_t2` finds that fall on each ray. Both work on
the radius maps of :func:`skullseg.skull.fit_skull_surfaces`, which calls them; both are
importable from :mod:`skullseg.skull` too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from .graphsearch import optimal_surface
from .profiles import last_true, profile_sampler
from .radial import SphereGrid, close_over_top, robust_smooth_on_sphere, smooth_over_top

if TYPE_CHECKING:
    from .skull import SkullParams

__all__ = ["inner_from_band", "inner_from_t2"]


def inner_from_band(
    brain_mm: NDArray, outer_mm: NDArray, p: SkullParams, *, grid: SphereGrid | None = None
) -> NDArray[np.float64]:
    """Inner skull on a T1: a share of the dark band between brain and outer skull.

    In T1 both CSF and compact bone are dark, so the inner table is not an
    edge in the image. Where the band from the brain envelope to the outer
    skull is wide, both the CSF layer and the bone are thicker; the inner skull
    is placed at ``brain + inner_offset + inner_fraction * (outer - brain)``.
    With the rays' ``grid``, ``brain`` there is first the envelope closed over
    ``p.inner_closing_rings`` rings above ``p.inner_closing_min_z``
    (:func:`skullseg.radial.close_over_top`: the inner table bridges the fissure's
    mouth and the sagittal sinus), and the map is then smoothed over the top of
    the head (``p.inner_smooth_iterations`` passes above ``p.inner_smooth_min_z``,
    :func:`skullseg.radial.smooth_over_top`): the inner table there is smoother
    than the brain envelope's gyri. The result is kept at least ``min_csf``
    beyond the brain and ``min_skull_thickness`` inside the outer skull.

    Examples
    --------
    >>> from skullseg.skull import SkullParams
    >>> float(inner_from_band(np.array([60.0]), np.array([70.0]), SkullParams())[0])
    63.0
    """
    base = brain_mm
    if grid is not None and p.inner_closing_rings > 0:
        base = close_over_top(
            brain_mm, grid, rings=p.inner_closing_rings, min_z=p.inner_closing_min_z
        )
    inner = base + p.inner_offset_mm + p.inner_fraction * (outer_mm - base)
    if grid is not None and p.inner_smooth_iterations > 0:
        inner = smooth_over_top(
            inner, grid, iterations=p.inner_smooth_iterations, min_z=p.inner_smooth_min_z
        )
    inner = np.maximum(inner, brain_mm + p.min_csf_mm)
    return np.minimum(inner, np.maximum(outer_mm - p.min_skull_thickness_mm, brain_mm))


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

    at = profile_sampler(t2_profiles, radii_mm)

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
    j = last_true(at(fine) >= level[:, None])
    refined = np.where(j >= 0, fine[np.arange(n), np.clip(j, 0, 8)] + 0.125, chosen)
    inner = np.where(strength > 0.1, refined, fallback_mm)
    return robust_smooth_on_sphere(inner, grid, rings=2, tolerance_mm=2.0, iterations=2)
