"""Conforming: bring any input grid to a canonical working grid and back.

The working grid is axis-aligned in world RAS with isotropic voxels, so the
later stages can reason in millimetres along world axes whatever the scanner,
slice direction or patient position. Results are resampled back to the input
grid at the end, so outputs overlay the user's image exactly.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi

from .volume import Volume

__all__ = [
    "working_grid",
    "resample_to_grid",
    "conform",
    "field_of_view",
    "to_input_grid",
    "pad_faces",
    "extend_grid",
]

log = logging.getLogger("skullseg")


def working_grid(vol: Volume, voxel_mm: float = 1.0, *, max_voxels: int = 320**3) -> Volume:
    """An empty RAS-aligned isotropic grid that covers ``vol``'s field of view.

    Parameters
    ----------
    vol : Volume
        The input image (any orientation, voxel size, obliquity).
    voxel_mm : float
        Edge length of the working voxels in mm. It grows automatically when
        the field of view would need more than ``max_voxels`` voxels.
    max_voxels : int
        Upper bound on the working grid size (memory guard).

    Returns
    -------
    Volume
        uint8 zeros on the working grid; only its shape and affine matter.

    Examples
    --------
    >>> import numpy as np
    >>> v = Volume(np.zeros((50, 60, 40)), np.diag([2.0, 2.0, 3.0, 1.0]))
    >>> working_grid(v, 1.0).shape
    (100, 120, 120)
    """
    corners = np.array(
        [
            [i, j, k]
            for i in (-0.5, vol.shape[0] - 0.5)
            for j in (-0.5, vol.shape[1] - 0.5)
            for k in (-0.5, vol.shape[2] - 0.5)
        ]
    )
    world = vol.voxel_to_world(corners)
    lo, hi = world.min(axis=0), world.max(axis=0)
    extent = hi - lo
    while np.prod(np.ceil(extent / voxel_mm)) > max_voxels:
        voxel_mm *= 1.1
    shape = tuple(int(max(1, np.ceil(e / voxel_mm - 1e-6))) for e in extent)
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = lo + voxel_mm / 2.0
    return Volume(np.zeros(shape, np.uint8), affine)


def resample_to_grid(vol: Volume, grid: Volume, *, order: int = 1, cval: float = 0.0) -> Volume:
    """Resample ``vol`` onto ``grid``'s shape and affine (world positions match).

    ``order`` 0 is nearest neighbour (labels), 1 linear, 3 cubic.

    Examples
    --------
    >>> import numpy as np
    >>> v = Volume(np.arange(27.0).reshape(3, 3, 3), np.eye(4))
    >>> float(resample_to_grid(v, v, order=0).data[1, 1, 1])
    13.0
    """
    if vol.same_grid(grid):
        return Volume(vol.data.copy(), grid.affine)
    vox = np.linalg.inv(vol.affine) @ grid.affine
    data = vol.data
    if order > 0 and data.dtype != np.float32:
        data = data.astype(np.float32)
    moved = _permuted_copy(data, vox, grid.shape, cval)
    if moved is not None:  # the grids share voxel centres: no interpolation needed
        return Volume(moved, grid.affine)
    out = ndi.affine_transform(
        data,
        vox[:3, :3],
        offset=vox[:3, 3],
        output_shape=grid.shape,
        order=order,
        mode="constant",
        cval=cval,
        prefilter=order > 1,
    )
    return Volume(out, grid.affine)


def _permuted_copy(
    data: np.ndarray, vox: np.ndarray, shape: tuple[int, ...], cval: float
) -> np.ndarray | None:
    """``data`` on a grid whose voxel centres it shares (axes permuted, flipped, shifted by
    whole voxels), by indexing; ``None`` when ``vox`` (output -> input voxel) is not such a map.
    Equal to any interpolation order at the shared centres, and exact."""
    rot = np.round(vox[:3, :3])
    shift = np.round(vox[:3, 3])
    if (
        not np.allclose(vox[:3, :3], rot, atol=1e-6)
        or not np.allclose(vox[:3, 3], shift, atol=1e-4)
        or not (np.abs(rot).sum(0) == 1).all()
        or not (np.abs(rot).sum(1) == 1).all()
    ):
        return None
    source_axis = [int(np.flatnonzero(rot[:, o])[0]) for o in range(3)]
    moved = np.transpose(data, source_axis)
    index = [
        (rot[a, o] * np.arange(shape[o]) + shift[a]).astype(np.int64)
        for o, a in enumerate(source_axis)
    ]
    valid = [(i >= 0) & (i < moved.shape[o]) for o, i in enumerate(index)]
    out = np.full(shape, cval, dtype=data.dtype)
    out[np.ix_(*valid)] = moved[np.ix_(*(i[v] for i, v in zip(index, valid)))]
    return out


def conform(vol: Volume, voxel_mm: float = 1.0, *, grid: Volume | None = None) -> Volume:
    """Resample an input image onto its RAS-aligned isotropic working grid.

    Linear interpolation; thick slices are interpolated, not invented, so a
    5 mm scan stays a 5 mm scan in content (the report says so). ``grid``
    replaces :func:`working_grid` ``(vol, voxel_mm)``.
    """
    if grid is None:
        grid = working_grid(vol, voxel_mm)
    log.info(
        "conform: %s voxels of %s mm -> %s voxels of %.2f mm (RAS)",
        "x".join(map(str, vol.shape)),
        "x".join(f"{z:.2f}" for z in vol.zooms_mm),
        "x".join(map(str, grid.shape)),
        grid.zooms_mm[0],
    )
    out = resample_to_grid(vol, grid, order=1, cval=float(np.min(vol.data)))
    return out.with_data(out.data.astype(np.float32))


def field_of_view(vol: Volume, grid: Volume) -> np.ndarray:
    """Voxels of ``grid`` that :func:`conform` interpolates from ``vol``'s data (bool array).

    Those are the voxels whose centre lies within the span of ``vol``'s voxel centres;
    elsewhere (half a voxel beyond, and further) :func:`conform` fills in the image's
    minimum, which is not air.

    Examples
    --------
    >>> thick = Volume(np.zeros((4, 4, 2), np.float32), np.diag([1.0, 1.0, 3.0, 1.0]))
    >>> fine = Volume(np.zeros((4, 4, 6), np.float32), np.eye(4))  # z = 0 ... 5 mm
    >>> field_of_view(thick, fine)[0, 0].tolist()  # thick slice centres at z = 0 and 3 mm
    [True, True, True, True, False, False]
    """
    ones = vol.with_data(np.ones(vol.shape, np.float32))
    return resample_to_grid(ones, grid, order=1, cval=0.0).data > 1.0 - 1e-4


def to_input_grid(labels: Volume, input_grid: Volume) -> Volume:
    """Bring a label map from the working grid back to the input grid.

    Uses a per-label vote over linearly interpolated one-hot maps when the
    input voxels are larger than the working voxels along any axis (so thin
    structures are not decimated by nearest-neighbour), nearest neighbour
    otherwise. The vote is Gaussian-weighted with at least ``0.5 x`` the
    smallest input voxel edge, and along thick slices with the spread of the
    input voxel's whole extent (``extent / sqrt(12)``, a box's), so a 4 mm
    slice takes the label that fills most of it, not the one at its centre plane.

    Examples
    --------
    >>> lab = np.full((4, 4, 10), 2, np.uint8); lab[:, :, 2] = 3  # 1 mm of CSF in bone
    >>> aff = np.diag([1.0, 1.0, 5.0, 1.0]); aff[2, 3] = 2.0  # 5 mm slices around z = 2, 7
    >>> to_input_grid(Volume(lab, np.eye(4)), Volume(np.zeros((4, 4, 2)), aff)).data[0, 0].tolist()
    [2, 2]
    """
    in_zoom = float(np.min(input_grid.zooms_mm))
    work_zoom = float(labels.zooms_mm[0])
    data = labels.data
    if max(input_grid.zooms_mm) <= work_zoom * 1.01:
        out = resample_to_grid(labels, input_grid, order=0)
        return out.with_data(out.data.astype(np.uint8))
    # an input voxel's extent along each world axis, in working voxels
    extent = np.abs(input_grid.affine[:3, :3]).sum(axis=1) / work_zoom
    sigma = np.maximum(extent / np.sqrt(12.0), 0.5 * in_zoom / work_zoom)
    values = [int(v) for v in np.unique(data)]
    best = np.zeros(input_grid.shape, np.float32)
    result = np.zeros(input_grid.shape, np.uint8)
    for value in values:
        frac = ndi.gaussian_filter((data == value).astype(np.float32), sigma)
        prob = resample_to_grid(labels.with_data(frac), input_grid, order=1).data
        better = prob > best
        best[better] = prob[better]
        result[better] = value
    return Volume(result, input_grid.affine)


def pad_faces(vol: Volume, faces: list[tuple[int, int]], pad_mm: float = 20.0) -> Volume:
    """Extend ``vol`` by ``pad_mm`` beyond each ``(axis, end)`` face, repeating the edge slice.

    Where the field of view cuts through the head, the tissue at the cut goes on
    beyond it (brain stays brain), so the surfaces that close the head are
    placed outside the image instead of across the last slices; results are
    cropped back to the field of view afterwards (see :func:`extend_grid`).

    Examples
    --------
    >>> v = Volume(np.arange(8.0).reshape(2, 2, 2), np.eye(4))
    >>> p = pad_faces(v, [(2, 0)], pad_mm=2.0)
    >>> p.shape, p.data[0, 0].tolist(), p.voxel_to_world([[0, 0, 2]]).tolist()
    ((2, 2, 4), [0.0, 0.0, 0.0, 1.0], [[0.0, 0.0, 0.0]])
    """
    widths = [[0, 0], [0, 0], [0, 0]]
    for axis, end in faces:
        widths[axis][end] = int(np.ceil(pad_mm / vol.zooms_mm[axis] - 1e-6))
    if not any(w for pair in widths for w in pair):
        return vol
    data = np.pad(vol.data, widths, mode="edge")
    shift = np.eye(4)
    shift[:3, 3] = [-w[0] for w in widths]
    return Volume(data, vol.affine @ shift)


def extend_grid(
    grid: Volume, vol: Volume, faces: list[tuple[int, int]], pad_mm: float
) -> tuple[Volume, tuple[slice, slice, slice]]:
    """``grid`` grown by whole voxels to cover ``vol`` padded at ``faces`` (:func:`pad_faces`).

    Returns the larger grid and the slices that cut it back to ``grid`` exactly
    (same voxel centres), so results found on the larger grid crop back without
    resampling.

    Examples
    --------
    >>> v = Volume(np.zeros((10, 10, 10)), np.eye(4))
    >>> g = working_grid(v)
    >>> big, crop = extend_grid(g, v, [(2, 0)], pad_mm=5.0)
    >>> big.shape, crop[2]
    ((10, 10, 15), slice(5, 15, None))
    """
    v = grid.zooms_mm[0]
    grow = np.zeros((3, 2), int)  # world axis x (low, high) voxels
    for axis, end in faces:
        col = vol.affine[:3, axis]
        out = col / np.linalg.norm(col) * (1.0 if end == 1 else -1.0)
        for i in range(3):
            n = int(np.ceil(pad_mm * abs(out[i]) / v - 1e-6)) if abs(out[i]) > 0.05 else 0
            side = 1 if out[i] > 0 else 0
            grow[i, side] = max(grow[i, side], n)
    shape = tuple(int(n + lo + hi) for n, (lo, hi) in zip(grid.shape, grow))
    affine = grid.affine.copy()
    affine[:3, 3] = grid.voxel_to_world(-grow[:, 0][None].astype(float))[0]
    crop = tuple(slice(int(lo), int(lo + n)) for n, (lo, _) in zip(grid.shape, grow))
    return Volume(np.zeros(shape, np.uint8), affine), crop  # type: ignore[return-value]
