"""The head: everything in the image that is not outside air.

:func:`head_mask` is a low threshold, the largest component, a closing and hole filling;
:func:`skin_mask` trims it to the skin's edge (the half height of the skin-to-air step);
:func:`cut_faces` finds the faces of the image grid where the field of view cuts through
the head. :func:`head_threshold` is the level all three use.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from .morphology import (
    closing,
    erode,
    fill_holes,
    fill_holes_2d,
    largest_component,
)
from .volume import Volume

__all__ = ["cut_faces", "head_mask", "head_threshold", "skin_mask"]

log = logging.getLogger("skullseg")


def head_mask(vol: Volume, *, closing_mm: float = 6.0) -> Volume:
    """Everything inside the skin: threshold, largest component, closing, hole filling.

    The threshold sits a quarter of the way from the noise floor to Otsu's
    tissue/background threshold, which keeps dark skin and fat-suppressed
    regions in the head while leaving background noise out.

    Parameters
    ----------
    vol : Volume
        MR image on the working grid (isotropic voxels).
    closing_mm : float
        Radius of the morphological closing that seals the skin, ears and nose.

    Examples
    --------
    >>> from skullseg.phantom import make_phantom
    >>> ph = make_phantom(3.0)
    >>> m = head_mask(ph.t1)  # doctest: +SKIP
    """
    data = vol.data
    vox = vol.zooms_mm[0]
    thr = head_threshold(data)
    m = ndi.gaussian_filter(data.astype(np.float32), 1.0 / vox) > thr
    m = largest_component(m)
    m = closing(m, closing_mm, vox)
    m = fill_holes(m)
    m = fill_holes_2d(m, axis=2)
    log.info("head mask: threshold %.3g, %.0f mL", thr, m.sum() * vol.voxel_volume_ml)
    return vol.with_data(m.astype(np.uint8))


def skin_mask(
    vol: Volume,
    head: Volume,
    *,
    level: float = 0.5,
    depth_mm: float = 3.0,
    window_mm: float = 2.0,
    smooth_mm: float = 1.0,
    field_of_view: np.ndarray | None = None,
) -> Volume:
    """The head mask trimmed to the skin's edge: the half height of the tissue-to-air step.

    :func:`head_mask` thresholds low (to keep dark skin in) after a smoothing,
    so it ends 1-2 mm out in the blurred fall of the skin into air. Here a voxel
    within ``depth_mm`` of the head mask's outside is background when the
    image (Gaussian-smoothed by ``smooth_mm``) is below ``level`` times the
    brightest head tissue within ``window_mm`` of it (a cube) and it is
    connected to the outside through such voxels; so the mask is only peeled
    from outside, never holed. A closing by ``depth_mm`` then puts back what the
    peel reached through gaps in a thin skin line (enclosed pockets under it).

    Parameters
    ----------
    vol : Volume
        MR image on the working grid (bias-corrected).
    head : Volume
        :func:`head_mask` of it.
    level : float
        Share of the local tissue level where the skin ends (0.5: half height).
    depth_mm : float
        How far inside the head mask it may be peeled.
    window_mm : float
        Half-width of the cube in which the local tissue level is the maximum:
        about the width of the blurred edge, so that a dark skin over bright fat
        is measured against the skin, not the fat.
    smooth_mm : float
        Standard deviation of the Gaussian smoothing (against noise).
    field_of_view : ndarray of bool, optional
        Where the input image has data (:func:`skullseg.conform.field_of_view`). Beyond
        it is no air, so a head cut by the field of view is not peeled at the cut.

    Returns
    -------
    Volume
        uint8 mask, a subset of ``head``.

    Examples
    --------
    >>> r = np.linalg.norm(np.indices((40, 40, 40)) - 19.5, axis=0)
    >>> vol = Volume(np.where(r < 12, 100.0, 0.0), np.eye(4))  # a ball of radius 12 mm
    >>> wide = vol.with_data((r < 14).astype(np.uint8))  # a mask 2 mm too wide
    >>> ratio = skin_mask(vol, wide).data.sum() / (r < 12).sum()
    >>> bool(0.97 < ratio < 1.03), int(wide.data.sum() / (r < 12).sum() * 100)
    (True, 160)
    """
    vox = vol.zooms_mm[0]
    h = head.data > 0
    air = ~h if field_of_view is None else ~h & field_of_view
    if not h.any() or not air.any():
        return head
    smooth = ndi.gaussian_filter(vol.data.astype(np.float32), smooth_mm / vox)
    half = max(1, int(round(window_mm / vox)))
    local = ndi.maximum_filter(np.where(h, smooth, 0.0), size=2 * half + 1)
    shell = h & ~erode(~air, depth_mm, vox)
    dark = shell & (smooth < level * local)
    comp, _ = ndi.label(dark | air)
    outside = int(np.bincount(comp[air]).argmax())
    # a peel that leaked through gaps in a thin bright skin line (a dark, fat-suppressed
    # scalp under it) is closed again: only what is open to the air stays off
    trimmed = h & closing(h & (comp != outside), depth_mm, vox)
    trimmed = largest_component(fill_holes(trimmed))
    log.info(
        "skin: head mask trimmed to the skin's half height (%.0f mL off)",
        (h.sum() - trimmed.sum()) * vol.voxel_volume_ml,
    )
    return head.with_data(trimmed.astype(np.uint8))


def head_threshold(data: np.ndarray) -> float:
    """Intensity that separates the head from the background noise.

    A quarter of the way from the noise floor (the median below Otsu's
    threshold) to Otsu's tissue/background threshold, at least 0.12 x Otsu's.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> img = rng.normal(5.0, 1.0, (20, 20, 20)); img[5:15, 5:15, 5:15] += 100.0
    >>> 5.0 < head_threshold(img) < 60.0
    True
    """
    hi = float(np.percentile(data, 99.5))
    clipped = np.clip(data, 0, hi)
    thr = float(threshold_otsu(clipped[:: max(1, data.size // 2_000_000)]))
    below = clipped[clipped < thr]
    noise = float(np.median(below)) if below.size else 0.0
    return max(noise + 0.25 * (thr - noise), 0.12 * thr)


def cut_faces(
    vol: Volume, *, min_fraction: float = 0.15, neck_depth_mm: float = 170.0
) -> list[tuple[int, int]]:
    """Faces of the image grid that cut through the head: ``(axis, end)`` pairs.

    A face (``end`` 0 at voxel index 0, 1 at the last index) cuts the head when
    the head's cross-section in its outermost slices (the edge slice and the
    next one of a ~2 mm sampling) is at least
    ``min_fraction`` of the head's largest cross-section parallel to it: a field
    of view that stops above the orbits, below the vertex or at one side. A
    face looking down (world -z) with the head reaching ``neck_depth_mm`` or more
    above it cuts the neck, well below the brain and the skull base, and is left
    out. Works on the input grid (any orientation), before conforming.

    Examples
    --------
    >>> img = np.zeros((30, 30, 30), np.float32); img[5:25, 5:25, :20] = 100.0
    >>> cut_faces(Volume(img, np.eye(4)))
    [(2, 0)]
    >>> cut_faces(Volume(img, np.diag([10.0, 10.0, 10.0, 1.0])))  # 190 mm above: a neck
    []
    """
    # every 2 mm or so, the outermost slices always included
    zooms = np.asarray(vol.zooms_mm)
    step = np.maximum(1, np.round(2.0 / zooms)).astype(int)
    index = [np.unique(np.r_[0:n:k, n - 1]) for n, k in zip(vol.shape, step)]
    data = np.asarray(vol.data[np.ix_(*index)], dtype=np.float32)
    head = ndi.gaussian_filter(data, 1.0 / (zooms * step)) > head_threshold(data)
    head = largest_component(head)
    faces = []
    for axis in range(3):
        if vol.shape[axis] < 4:
            continue
        areas = head.sum(axis=tuple(a for a in range(3) if a != axis)).astype(np.float64)
        biggest = max(float(areas.max()), 1.0)
        present = index[axis][np.flatnonzero(areas)]
        col = vol.affine[:3, axis] / np.linalg.norm(vol.affine[:3, axis])
        for end, edge in ((0, areas[:2]), (1, areas[-2:])):
            if float(edge.max()) < min_fraction * biggest:
                continue
            looks_down = (col[2] if end == 1 else -col[2]) < -0.5
            reach = present[-1] if end == 0 else vol.shape[axis] - 1 - present[0]
            if looks_down and reach * zooms[axis] >= neck_depth_mm:
                continue  # the neck
            faces.append((axis, end))
    return faces
