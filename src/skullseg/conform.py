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
    "is_fine",
    "shares_voxel_centres",
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


def _is_voxel_permutation(vox: np.ndarray) -> bool:
    """Whether ``vox`` (a 4 x 4 voxel-to-voxel map) permutes and flips axes and shifts
    by whole voxels, so that the two grids share voxel centres."""
    rot = np.round(vox[:3, :3])
    return bool(
        np.allclose(vox[:3, :3], rot, atol=1e-6)
        and np.allclose(vox[:3, 3], np.round(vox[:3, 3]), atol=1e-4)
        and (np.abs(rot).sum(0) == 1).all()
        and (np.abs(rot).sum(1) == 1).all()
    )


def _permuted_copy(
    data: np.ndarray, vox: np.ndarray, shape: tuple[int, ...], cval: float
) -> np.ndarray | None:
    """``data`` on a grid whose voxel centres it shares (axes permuted, flipped, shifted by
    whole voxels), by indexing; ``None`` when ``vox`` (output -> input voxel) is not such a map.
    Equal to any interpolation order at the shared centres, and exact."""
    if not _is_voxel_permutation(vox):
        return None
    rot = np.round(vox[:3, :3])
    shift = np.round(vox[:3, 3])
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

    A copy where the grids share voxel centres, else linear interpolation; thick
    slices are interpolated, not invented, so a 5 mm scan stays a 5 mm scan in
    content (the report says so). ``grid`` replaces :func:`working_grid`
    ``(vol, voxel_mm)``.

    Cubic B-splines were measured instead of linear interpolation for fine oblique
    scans (session 17, BENCHMARKS.md): +0.004 skull Dice on rotated simulated heads,
    but on real oblique heads they keep the noise that linear interpolation smooths,
    and the dark-voxel rule below the cranium then labelled 13 % more bone (and the
    skull mesh took twice as long), so linear stays.
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


def is_fine(vol: Volume, voxel_mm: float, up_to: float = 1.5) -> bool:
    """Whether no voxel edge of ``vol`` is longer than ``up_to`` working voxels of
    ``voxel_mm``: a scan fine enough to be read at its voxels' centres (not thick slices).

    Examples
    --------
    >>> is_fine(Volume(np.zeros((2, 2, 2)), np.diag([0.9, 0.9, 1.2, 1.0])), 1.0)
    True
    >>> is_fine(Volume(np.zeros((2, 2, 2)), np.diag([1.0, 1.0, 4.0, 1.0])), 1.0)
    False
    """
    return max(vol.zooms_mm) <= up_to * voxel_mm


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


def shares_voxel_centres(a: Volume, b: Volume) -> bool:
    """Whether every voxel centre of ``b`` is a voxel centre of ``a``'s lattice.

    True when ``b``'s grid is ``a``'s with axes permuted or flipped and shifted by
    whole voxels; then resampling between them is a copy (no interpolation).

    Examples
    --------
    >>> a = Volume(np.zeros((4, 4, 4)), np.eye(4))
    >>> flipped = np.diag([-1.0, 1.0, 1.0, 1.0]); flipped[0, 3] = 3.0
    >>> shares_voxel_centres(a, Volume(np.zeros((4, 4, 4)), flipped))
    True
    >>> half = np.eye(4); half[0, 3] = 0.5
    >>> shares_voxel_centres(a, Volume(np.zeros((4, 4, 4)), half))
    False
    """
    return _is_voxel_permutation(np.linalg.inv(a.affine) @ b.affine)


def to_input_grid(labels: Volume, input_grid: Volume) -> Volume:
    """Bring a label map from the working grid back to the input grid.

    When the input grid shares the working grid's voxel centres (the usual
    axis-aligned scan at the working voxel size) the labels are copied.
    Otherwise each input voxel takes the label that a Gaussian-weighted vote
    of the working voxels around it elects, so an oblique grid does not get the
    staircase of nearest neighbour and thick slices do not decimate thin
    structures. The vote's spread is at least ``0.5 x`` the smallest input
    voxel edge, and along thick slices that of the input voxel's whole extent
    (``extent / sqrt(12)``, a box's), so a 4 mm slice takes the label that fills
    most of it, not the one at its centre plane. Only voxels near a label
    boundary are voted; elsewhere every neighbour agrees with the nearest one.

    Examples
    --------
    >>> lab = np.full((4, 4, 10), 2, np.uint8); lab[:, :, 2] = 3  # 1 mm of CSF in bone
    >>> aff = np.diag([1.0, 1.0, 5.0, 1.0]); aff[2, 3] = 2.0  # 5 mm slices around z = 2, 7
    >>> to_input_grid(Volume(lab, np.eye(4)), Volume(np.zeros((4, 4, 2)), aff)).data[0, 0].tolist()
    [2, 2]
    """
    work_zoom = float(labels.zooms_mm[0])
    if shares_voxel_centres(labels, input_grid) and max(input_grid.zooms_mm) <= work_zoom * 1.01:
        out = resample_to_grid(labels, input_grid, order=0)
        return out.with_data(out.data.astype(np.uint8))
    # an input voxel's extent along each world axis, in working voxels
    extent = np.abs(input_grid.affine[:3, :3]).sum(axis=1) / work_zoom
    in_zoom = float(np.min(input_grid.zooms_mm))
    sigma = np.maximum(extent / np.sqrt(12.0), 0.5 * in_zoom / work_zoom)
    nearest, band = _nearest_and_band(labels, input_grid, sigma)
    vox = np.linalg.inv(labels.affine) @ input_grid.affine
    coords = vox[:3, :3] @ np.array(np.nonzero(band), dtype=np.float64) + vox[:3, 3:4]
    nearest[band] = _vote(labels.data, coords, sigma)
    return Volume(nearest, input_grid.affine)


def _uniform_radius(sigma: np.ndarray, share: float = 0.6) -> np.ndarray:
    """Per-axis half-width ``d`` (working voxels) of a box around a point's nearest voxel
    that holds at least ``share`` of the vote's weight, wherever the point lies in
    that voxel: where the box is all one label, that label has the majority and wins.

    The weight is scipy's Gaussian kernel (truncated at 4 sigma) followed by
    linear interpolation, which is separable, so each axis gets ``share ** (1/3)``.
    """
    per_axis = share ** (1.0 / 3.0)
    radius = []
    for s in sigma:
        r = int(4.0 * s + 0.5)
        x = np.arange(-r, r + 1)
        k = np.exp(-0.5 * (x / s) ** 2)
        k /= k.sum()
        d = 0
        # worst case: the point half-way between its nearest voxel and the next
        while 0.5 * (k[np.abs(x) <= d].sum() + k[(x >= -d - 1) & (x <= d - 1)].sum()) < per_axis:
            d += 1
        radius.append(d)
    return np.array(radius)


def _nearest_and_band(
    labels: Volume, input_grid: Volume, sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour labels on the input grid, and the input voxels whose vote can
    differ from them (more than one label within :func:`_uniform_radius` of their
    nearest working voxel), in one resampling."""
    data = labels.data
    if int(data.max(initial=0)) >= 128:
        raise ValueError("label values must be below 128")
    size = tuple(2 * _uniform_radius(sigma) + 1)
    near = np.zeros(data.shape, bool)
    box = ndi.find_objects((data > 0).astype(np.uint8))
    if box and box[0] is not None:  # mixed boxes lie within the non-background's box
        crop = tuple(
            slice(max(0, s.start - w // 2), min(n, s.stop + w // 2))
            for s, n, w in zip(box[0], data.shape, size)
        )
        sub = data[crop]
        near[crop] = ndi.maximum_filter(sub, size=size) != ndi.minimum_filter(sub, size=size)
    packed = data.astype(np.uint8) | (near.astype(np.uint8) << 7)
    moved = resample_to_grid(labels.with_data(packed), input_grid, order=0).data
    return moved & 127, moved >= 128


def _vote(data: np.ndarray, coords: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """The label with the largest Gaussian-smoothed share at each of ``coords`` (3 x n,
    working voxels). Each label is smoothed in its own bounding box and looked up only
    at the points inside it; background's share is what the others leave."""
    reach = np.array([int(4.0 * s + 0.5) + 1 for s in sigma])  # kernel + interpolation
    best = np.zeros(coords.shape[1], np.float32)
    result = np.zeros(coords.shape[1], np.uint8)
    total = np.zeros(coords.shape[1], np.float32)
    for value, box in enumerate(ndi.find_objects(data), start=1):
        if box is None:
            continue
        lo = np.array([max(0, s.start - r) for s, r in zip(box, reach)])
        hi = np.array([min(n, s.stop + r) for s, n, r in zip(box, data.shape, reach)])
        inside = np.all((coords > lo[:, None] - 1) & (coords < hi[:, None]), axis=0)
        crop = tuple(slice(a, b) for a, b in zip(lo, hi))
        frac = ndi.gaussian_filter((data[crop] == value).astype(np.float32), sigma)
        prob = ndi.map_coordinates(
            frac, coords[:, inside] - lo[:, None], order=1, mode="constant", cval=0.0
        )
        total[inside] += prob
        better = np.zeros_like(inside)
        better[inside] = prob > best[inside]
        best[better] = prob[better[inside]]
        result[better] = value
    result[1.0 - total >= best] = 0  # ties go to background, as in ascending order
    return result


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
