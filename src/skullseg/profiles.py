"""Edges on radial intensity profiles: the one-dimensional tools of the skull model.

A profile is an image sampled along one ray from the brain's centre
(:func:`skullseg.radial.sample_profiles`): shape ``(n_rays, n_radii)``, radii in mm.
These functions find where a profile crosses a level, where it rises from bone
into the scalp, and where a (blurred) brain edge reaches its half height.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

__all__ = [
    "first_exit_after",
    "half_height_edge",
    "last_crossing",
    "last_true",
    "outer_edge",
    "profile_at",
    "profile_sampler",
    "rise_point",
    "rise_width_mm",
    "thick_weight",
    "width_rise_fraction",
]


def last_true(mask: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Index of the last True along axis 1 (-1 where none)."""
    n = mask.shape[1]
    rev = mask[:, ::-1]
    last = n - 1 - np.argmax(rev, axis=1)
    return np.where(mask.any(axis=1), last, -1)


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


def last_crossing(profiles: NDArray, radii_mm: NDArray, level: float) -> NDArray[np.float64]:
    """Sub-sample radius where each profile last falls below ``level`` (NaN if never above).

    Examples
    --------
    >>> last_crossing(np.array([[1.0, 1.0, 0.0, 0.0]]), np.arange(4.0), 0.5)
    array([1.5])
    """
    above = profiles >= level
    j = last_true(above)
    jj = np.clip(j, 0, profiles.shape[1] - 2)
    rows = np.arange(profiles.shape[0])
    a, b = profiles[rows, jj], profiles[rows, jj + 1]
    frac = np.clip((a - level) / np.maximum(a - b, 1e-9), 0.0, 1.0)
    r = radii_mm[jj] + frac * (radii_mm[1] - radii_mm[0])
    return np.where(j >= 0, r, np.nan)


def first_exit_after(inside: NDArray[np.bool_], radii: NDArray, start_mm: NDArray) -> NDArray:
    """First radius beyond ``start_mm`` where the ray leaves ``inside`` (last radius if never)."""
    beyond = radii[None, :] > start_mm[:, None]
    outside = beyond & ~inside
    first = np.argmax(outside, axis=1)
    return np.where(outside.any(axis=1), radii[first], radii[-1])


def rise_point(
    at: Callable[[NDArray], NDArray],
    edge_mm: NDArray,
    fraction: float | NDArray,
    *,
    from_minimum: NDArray | None = None,
) -> NDArray[np.float64]:
    """Where each profile has risen ``fraction`` of its bone-to-scalp step near ``edge_mm``.

    The step runs from the profile's minimum within 2.5 mm inside ``edge_mm`` (the
    bone) to its maximum within 3 mm outside (the scalp); the result is the last
    point below ``min + fraction * (max - min)`` in the 3 mm before that maximum
    (0.125 mm steps). ``at(r)`` samples the profiles at radii ``r`` (n_rays, m);
    ``fraction`` is one value or one per ray. In a T1 the rise from the outer
    table into the scalp's fat is often broad (dark periosteum and galea lie on
    the bone), so the bone ends near its foot rather than at its middle; the
    skull model picks the fraction from the rise's width
    (:func:`width_rise_fraction`; BENCHMARKS.md).

    On rays where ``from_minimum`` is true the minimum is sampled every 0.125 mm and the
    level is looked for from where the minimum is to the maximum, however far apart:
    for an edge placed on a rise broader than 3 mm (marrow up to a thin outer table
    leaves no dark bone to place the edge on), whose foot the 3 mm search cannot reach.

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
    j = last_true(at(fine) < level[:, None])
    out = np.where(j >= 0, fine[rows, np.clip(j, 0, 24)] + 0.0625, edge_mm)
    if from_minimum is None or not np.any(from_minimum):
        return out
    inside = edge_mm[:, None] - np.linspace(0.0, 2.5, 21)[None, :]
    below = at(inside)
    foot_mm, low = inside[rows, below.argmin(axis=1)], below.min(axis=1)
    level = low + fraction * (scalp - low)
    span = peak_mm - foot_mm
    wide = foot_mm[:, None] + np.linspace(0.0, 1.0, 49)[None, :] * span[:, None]
    k = last_true(at(wide) < level[:, None])
    found = np.where(k >= 0, wide[rows, np.clip(k, 0, 48)] + span / 96.0, edge_mm)
    return np.where(from_minimum, found, out)


def rise_width_mm(
    at: Callable[[NDArray], NDArray],
    edge_mm: NDArray,
    low_fraction: float = 0.1,
    high_fraction: float = 0.9,
    *,
    from_minimum: NDArray | None = None,
) -> NDArray[np.float64]:
    """Width (mm) of each profile's bone-to-scalp rise: from ``low_fraction`` to
    ``high_fraction`` of its step (both placed by :func:`rise_point`, with its
    ``from_minimum``).

    Examples
    --------
    >>> radii = np.arange(0.0, 20.0, 0.25)
    >>> prof = np.clip((radii - 9.0) / 2.0, 0.0, 1.0)[None]  # a ramp from 9 to 11 mm
    >>> w = rise_width_mm(lambda r: profile_at(prof, radii, r), np.array([9.0]))
    >>> 1.4 <= float(w[0]) <= 1.8
    True
    """
    high = rise_point(at, edge_mm, high_fraction, from_minimum=from_minimum)
    return high - rise_point(at, edge_mm, low_fraction, from_minimum=from_minimum)


def width_rise_fraction(
    width_mm: NDArray,
    *,
    sharp_fraction: float = 0.35,
    sharp_width_mm: float = 1.25,
    per_mm: float = 0.25,
    bounds: tuple[float, float] = (0.1, 0.45),
) -> NDArray[np.float64]:
    """Rise level for the outer skull from the width of the rise (:func:`rise_width_mm`).

    A rise as sharp as the voxel's partial volume (``sharp_width_mm``) puts the bone's
    end at ``sharp_fraction`` of the step; each mm of extra width (dark periosteum and
    galea on the bone, as in real T1s) moves it ``per_mm`` towards the foot, within
    ``bounds``. Measured on simulated heads (sharp rises, median width 1.25 mm) and on
    FLASH-referenced and template heads (broad ones, 1.75-2.0 mm): BENCHMARKS.md.

    Examples
    --------
    >>> width_rise_fraction(np.array([0.5, 1.25, 2.05, 3.0])).round(2).tolist()
    [0.45, 0.35, 0.15, 0.1]
    """
    frac = sharp_fraction - per_mm * (np.asarray(width_mm, float) - sharp_width_mm)
    return np.clip(frac, *bounds)


def half_height_edge(
    profiles: NDArray, radii_mm: NDArray, brain_mm: NDArray, max_out_mm: float = 2.0
) -> NDArray[np.float64]:
    """Brain edge at the half height between the brain and the dark band outside it.

    Per ray, the level is halfway between the profile's median 1-4 mm inside
    ``brain_mm`` and its minimum within 6 mm outside; the edge is the first point
    below that level from 1 mm inside ``brain_mm``, kept within
    ``[brain_mm, brain_mm + max_out_mm]``. A blurred edge keeps its half-height
    point where a threshold tied to the sharp image moves inwards.

    Examples
    --------
    >>> radii = np.arange(0.0, 30.0, 0.5)
    >>> prof = np.clip((11.0 - radii) / 2.0, 0.0, 1.0)[None]  # edge blurred over 2 mm
    >>> float(half_height_edge(prof, radii, np.array([9.5]))[0])
    10.0
    """
    at = profile_sampler(profiles, radii_mm)
    inside = np.median(at(brain_mm[:, None] - np.linspace(1.0, 4.0, 7)[None]), axis=1)
    low = at(brain_mm[:, None] + np.linspace(0.0, 6.0, 13)[None]).min(axis=1)
    level = 0.5 * (inside + low)
    n_fine = int(round((max_out_mm + 1.0) / 0.25)) + 1
    fine = brain_mm[:, None] + np.linspace(-1.0, max_out_mm, n_fine)[None]
    values = at(fine)
    below = values < level[:, None]
    rows = np.arange(len(brain_mm))
    first = np.argmax(below, axis=1)
    prev = np.maximum(first - 1, 0)
    a, b = values[rows, prev], values[rows, first]
    frac = np.clip((a - level) / np.maximum(a - b, 1e-9), 0.0, 1.0)
    crossing = fine[rows, prev] + frac * (fine[rows, first] - fine[rows, prev])
    edge = np.where(below.any(axis=1), crossing, brain_mm)
    return np.clip(edge, brain_mm, brain_mm + max_out_mm)


def profile_sampler(profiles: NDArray, radii_mm: NDArray) -> Callable[[NDArray], NDArray]:
    """``at(r)``: :func:`profile_at` of these profiles at radii ``r`` (n_rays, m)."""
    return lambda r: profile_at(profiles, radii_mm, r)


def thick_weight(
    directions: NDArray, axes_mm: NDArray, start_mm: float, span_mm: float
) -> NDArray[np.float64]:
    """How much each ray sees thick-slice blur: 0 (sharp) to 1 (blurred across its edges).

    The input voxel's effective width along unit direction ``u`` is
    ``sqrt(sum_k (u . a_k)^2)`` for its edge vectors ``a_k`` (the columns of
    ``axes_mm``; a box's standard deviation along ``u`` times sqrt(12)); the
    weight rises linearly from 0 at ``start_mm`` to 1 at ``start_mm + span_mm``.

    Examples
    --------
    >>> u = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    >>> thick_weight(u, np.diag([1.0, 1.0, 4.0]), 2.0, 1.0)
    array([1., 0.])
    """
    width = np.linalg.norm(directions @ np.asarray(axes_mm, float), axis=1)
    width = np.round(width, 3)  # to the micrometre: a stored 2 mm voxel is 2 mm
    return np.clip((width - start_mm) / max(span_mm, 1e-6), 0.0, 1.0)


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
    idx = last_true(strong)
    found = (idx >= 0) & (best > 0)
    # sub-voxel position: where the profile crosses the dark threshold just inside the edge
    below = (prof < dark_threshold) & (np.arange(prof.shape[1])[None, :] <= idx[:, None])
    j = np.clip(last_true(below), 0, prof.shape[1] - 2)
    rows = np.arange(prof.shape[0])
    a, b = prof[rows, j], prof[rows, j + 1]
    frac = np.clip((dark_threshold - a) / np.maximum(b - a, 1e-6), 0.0, 1.0)
    crossing = radii_mm[j] + frac * step
    edge = np.where(last_true(below) >= 0, crossing, radii_mm[np.maximum(idx, 0)])
    return np.where(found, edge, np.nan)
