"""Fast binary morphology with true Euclidean balls, through distance transforms.

Erosion by a ball of radius r keeps voxels farther than r from the outside;
dilation adds voxels within r of the mask. With the multi-threaded ``edt``
package this costs well under a second on a 256^3 grid, whatever r is; both
work inside the mask's bounding box (grown by r), which is exact and cheaper.
"""

from __future__ import annotations

import edt as _edt
import numpy as np
from scipy import ndimage as ndi

from .parallel import cpu_threads

__all__ = [
    "bounding_box",
    "distance_inside_mm",
    "erode",
    "dilate",
    "opening",
    "closing",
    "largest_component",
    "fill_holes",
    "fill_holes_2d",
    "centre_of_mass",
]


def distance_inside_mm(
    mask: np.ndarray,
    voxel_mm: float | tuple[float, float, float] = 1.0,
    *,
    black_border: bool = False,
) -> np.ndarray:
    """Euclidean distance (mm) from each voxel inside ``mask`` to the nearest outside voxel.

    Examples
    --------
    >>> m = np.zeros((5, 5, 5), bool); m[1:4, 1:4, 1:4] = True
    >>> float(distance_inside_mm(m)[2, 2, 2])
    2.0
    """
    anis = (voxel_mm,) * 3 if np.isscalar(voxel_mm) else tuple(voxel_mm)
    return _edt.edt(
        np.ascontiguousarray(mask, dtype=np.uint8),
        anisotropy=anis,
        black_border=black_border,
        parallel=cpu_threads(4),  # exact whatever the thread count
    ).astype(np.float32)


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...] | None:
    """Bounding box of ``mask`` grown by ``margin`` voxels (clipped to the grid); None if empty.

    Examples
    --------
    >>> m = np.zeros((5, 5, 5), bool); m[1:3, 2, 4] = True
    >>> bounding_box(m, 1)
    (slice(0, 4, None), slice(1, 4, None), slice(3, 5, None))
    """
    axes = [
        np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != d)))
        for d in range(mask.ndim)
    ]
    if any(len(a) == 0 for a in axes):
        return None
    return tuple(
        slice(max(int(a[0]) - margin, 0), min(int(a[-1]) + margin + 1, n))
        for a, n in zip(axes, mask.shape)
    )


def erode(mask: np.ndarray, radius_mm: float, voxel_mm: float = 1.0) -> np.ndarray:
    """Erosion by a ball of ``radius_mm`` (the grid border counts as inside).

    Examples
    --------
    >>> m = np.zeros((9, 9, 9), bool); m[1:8, 1:8, 1:8] = True
    >>> int(erode(m, 2.0).sum())
    27
    """
    mask = mask.astype(bool)
    out = np.zeros(mask.shape, bool)
    box = bounding_box(mask, 1)  # one empty layer (or the grid border) keeps distances exact
    if box is not None:
        out[box] = distance_inside_mm(mask[box], voxel_mm) > radius_mm
    return out


def dilate(mask: np.ndarray, radius_mm: float, voxel_mm: float = 1.0) -> np.ndarray:
    """Dilation by a ball of ``radius_mm``.

    Examples
    --------
    >>> m = np.zeros((9, 9, 9), bool); m[4, 4, 4] = True
    >>> int(dilate(m, 1.0).sum())
    7
    """
    mask = mask.astype(bool)
    out = np.zeros(mask.shape, bool)
    box = bounding_box(mask, int(np.floor(radius_mm / voxel_mm)) + 1)
    if box is not None:
        out[box] = distance_inside_mm(~mask[box], voxel_mm) <= radius_mm
    return out


def opening(mask: np.ndarray, radius_mm: float, voxel_mm: float = 1.0) -> np.ndarray:
    """Erosion then dilation: removes parts thinner than 2 x radius."""
    return dilate(erode(mask, radius_mm, voxel_mm), radius_mm, voxel_mm) & mask.astype(bool)


def closing(mask: np.ndarray, radius_mm: float, voxel_mm: float = 1.0) -> np.ndarray:
    """Dilation then erosion on a padded grid, so the border does not glue shut."""
    pad = int(np.ceil(radius_mm / voxel_mm)) + 2
    m = np.pad(mask.astype(bool), pad)
    m = ~dilate(~dilate(m, radius_mm, voxel_mm), radius_mm, voxel_mm)
    return m[pad:-pad, pad:-pad, pad:-pad] | mask.astype(bool)


def largest_component(mask: np.ndarray, *, connectivity: int = 1) -> np.ndarray:
    """The largest connected component of a boolean mask (empty stays empty)."""
    lab, n = ndi.label(mask, structure=ndi.generate_binary_structure(3, connectivity))
    if n == 0:
        return np.zeros(mask.shape, dtype=bool)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def drop_small_components(mask: np.ndarray, min_voxels: float) -> np.ndarray:
    """Keep the 6-connected components of ``mask`` with at least ``min_voxels`` voxels.

    Examples
    --------
    >>> m = np.zeros((5, 5, 5), bool); m[:2, :2, :2] = True; m[4, 4, 4] = True
    >>> int(drop_small_components(m, 2).sum())
    8
    """
    lab, n = ndi.label(mask)
    if n == 0:
        return np.zeros(mask.shape, dtype=bool)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return (sizes >= min_voxels)[lab]


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of a 3D mask: background not 6-connected to the grid's border.

    The same result as :func:`scipy.ndimage.binary_fill_holes` (default structure),
    from one labelling of the background instead of an iterated dilation (about
    twice as fast on a 256^3 head).

    Examples
    --------
    >>> m = np.zeros((5, 5, 5), bool); m[1:4, 1:4, 1:4] = True; m[2, 2, 2] = False
    >>> bool(fill_holes(m)[2, 2, 2]), int(fill_holes(m).sum())
    (True, 27)
    """
    mask = np.asarray(mask, dtype=bool)
    return _fill_unreached(mask, None, range(mask.ndim))


def centre_of_mass(mask: np.ndarray) -> np.ndarray:
    """Voxel-space centroid of the true voxels of ``mask`` (from its marginal sums).

    The same as :func:`scipy.ndimage.center_of_mass` on a boolean mask, about ten
    times faster. An empty mask gives NaN.

    Examples
    --------
    >>> m = np.zeros((4, 4, 4), bool); m[1:3, 0, 3] = True
    >>> centre_of_mass(m).tolist()
    [1.5, 0.0, 3.0]
    """
    mask = np.asarray(mask, dtype=bool)
    total = np.count_nonzero(mask)
    if total == 0:
        return np.full(mask.ndim, np.nan)
    axes = range(mask.ndim)
    return np.array(
        [
            float(np.dot(mask.sum(axis=tuple(b for b in axes if b != a)), np.arange(n))) / total
            for a, n in zip(axes, mask.shape)
        ]
    )


def fill_holes_2d(mask: np.ndarray, axis: int = 2) -> np.ndarray:
    """Fill holes slice by slice along ``axis`` (closes cavities open at the FOV edge).

    The same as :func:`scipy.ndimage.binary_fill_holes` on every slice, in one
    labelling: background components connected within their slice (4-connected)
    that do not reach the slice's border are holes.

    Examples
    --------
    >>> m = np.zeros((5, 5, 2), bool); m[1:4, 1:4, :] = True; m[2, 2, 0] = False
    >>> bool(fill_holes_2d(m)[2, 2, 0])
    True
    """
    mask = np.asarray(mask, dtype=bool)
    structure = np.zeros((3, 3, 3), bool)
    plane: list[slice | int] = [slice(None)] * 3
    plane[axis] = 1
    structure[tuple(plane)] = ndi.generate_binary_structure(2, 1)
    return _fill_unreached(mask, structure, (a for a in range(3) if a != axis))


def _fill_unreached(mask: np.ndarray, structure, border_axes) -> np.ndarray:
    """``mask`` plus the background components (``structure`` connectivity) that touch
    neither end of any of ``border_axes``."""
    comp, n = ndi.label(~mask, structure)
    outside = np.zeros(n + 1, bool)
    for axis in border_axes:
        for end in (0, -1):
            outside[np.unique(np.take(comp, end, axis=axis))] = True
    outside[0] = False  # label 0 is the mask itself
    return ~outside[comp]
