"""The cranium's boundaries on an oblique input grid, read from the skull surfaces.

The labels are found on the RAS working grid, and an oblique input grid gets them
back by a vote (:func:`skullseg.conform.to_input_grid`): each boundary is then
binarised twice, once on each grid, and can lose up to half a voxel each time. The
inner and outer skull are continuous surfaces, though (radius maps on a sphere), so
where the labels follow them alone they can be read at the input voxels' own
centres. :func:`sharpen_cranium` does that for the CSF, skull and scalp around the
cranium, and leaves every other label (brain, air, the bone below the cranium, the
spinal canal, the cisterns) as the vote elected it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from . import labels as L
from .radial import radius_at
from .volume import Volume

if TYPE_CHECKING:
    from .skull import SkullSurfaces

__all__ = ["cranial_layers", "sharpen_cranium"]

# layer of each label around the cranium: 0 inside the inner skull, 1 bone, 2 outside;
# -1 for labels that no surface decides (background, air cavities)
_LAYER = np.full(256, -1, np.int8)
_LAYER[[L.CSF, L.BRAIN]] = 0
_LAYER[L.SKULL] = 1
_LAYER[L.SCALP] = 2
_OF_LAYER = np.array([L.CSF, L.SKULL, L.SCALP], np.uint8)


def cranial_layers(inner: NDArray[np.bool_], outer: NDArray[np.bool_]) -> NDArray[np.int8]:
    """0 inside the inner skull, 1 between the inner and outer skull, 2 outside (int8).

    Examples
    --------
    >>> inner = np.array([True, False, False]); outer = np.array([True, True, False])
    >>> cranial_layers(inner, outer).tolist()
    [0, 1, 2]
    """
    return (2 - np.asarray(outer, np.int8) - np.asarray(inner, np.int8)).astype(np.int8)


def sharpen_cranium(
    labels_in: Volume,
    labels_work: Volume,
    layers_work: NDArray[np.int8],
    surfaces: SkullSurfaces,
    *,
    margin_voxels: int = 1,
) -> Volume:
    """Relabel CSF, skull and scalp near the cranium's surfaces at the input voxels' centres.

    Parameters
    ----------
    labels_in : Volume
        The labels voted onto the input grid.
    labels_work : Volume
        The labels on the working grid.
    layers_work : ndarray of int8
        :func:`cranial_layers` of the inner and outer skull on the working grid.
    surfaces : SkullSurfaces
        The surfaces those layers come from.
    margin_voxels : int
        An input voxel is relabelled only where every working voxel within this many
        voxels of its nearest one carries the label that its layer gives (so the labels
        there follow the surfaces alone; 1 is the reach of the vote at half an input
        voxel), next to a voxel of another layer, and only between neighbouring layers:
        CSF <-> skull and skull <-> scalp. Brain and every other label are kept.

    Returns
    -------
    Volume
        ``labels_in`` with those voxels relabelled (a new array).

    Examples
    --------
    >>> from skullseg.radial import sphere_grid
    >>> from skullseg.skull import SkullSurfaces
    >>> g = sphere_grid(3)
    >>> s = SkullSurfaces(np.zeros(3), g, *(np.full(g.n, r) for r in (3.0, 4.0, 6.2, 9.0)))
    >>> aff = np.eye(4); aff[:3, 3] = -10.0  # world 0 at voxel (10, 10, 10)
    >>> work = Volume(np.zeros((21, 21, 21), np.uint8), aff)
    >>> layers = cranial_layers(*s.inside_all(work))
    >>> work.data[:] = np.array([3, 2, 1], np.uint8)[layers]
    >>> shifted = aff.copy(); shifted[:3, 3] += 0.4  # the input grid: 0.4 mm off
    >>> voted = Volume(work.data.copy(), shifted)  # the working labels, 0.4 mm off
    >>> out = sharpen_cranium(voted, work, layers, s)
    >>> voted.data[10, 10, 16:18].tolist(), out.data[10, 10, 16:18].tolist()
    ([2, 1], [1, 1])
    """
    voted = labels_in.data
    out = voted.copy()
    # candidates: CSF, skull and scalp voxels of the input grid next to another layer
    was = _LAYER[voted]
    edge = ndi.maximum_filter(was, size=3) != ndi.minimum_filter(was, size=3)
    idx = np.nonzero(edge & (was >= 0) & (voted != L.BRAIN))
    if idx[0].size == 0:
        return Volume(out, labels_in.affine)
    # ... whose nearest working voxel lies where the labels follow the surfaces alone
    agree = (_LAYER[labels_work.data] == layers_work).view(np.uint8)
    if margin_voxels > 0:
        agree = ndi.minimum_filter(agree, size=2 * margin_voxels + 1)
    pts = labels_in.voxel_to_world(np.stack(idx, axis=1))
    near = np.rint(labels_work.world_to_voxel(pts)).astype(np.int64)
    inside = np.all((near >= 0) & (near < np.array(labels_work.shape)), axis=1)
    ok = np.zeros(len(pts), bool)
    ok[inside] = agree[tuple(near[inside].T)] > 0
    idx, pts = tuple(i[ok] for i in idx), pts[ok]
    rel = pts - surfaces.centre_world
    r = np.linalg.norm(rel, axis=1)
    directions = rel / np.maximum(r, 1e-9)[:, None]
    inner = r < radius_at(directions, surfaces.grid, surfaces.inner_mm)
    outer = r < radius_at(directions, surfaces.grid, surfaces.outer_mm)
    layers = cranial_layers(inner, outer)
    change = np.abs(was[idx].astype(np.int16) - layers) == 1
    out[tuple(i[change] for i in idx)] = _OF_LAYER[layers[change]]
    return Volume(out, labels_in.affine)
