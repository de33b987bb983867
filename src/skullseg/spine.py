"""The spinal canal below the brain on a T1: the cord, tracked down from the brainstem.

Below the brain, compact bone, CSF and air are all dark in a T1, so the extracranial bone
rule (:func:`skullseg.tissue.extracranial_bone`) would take the CSF around the cord for
bone. The cord is bright, and in an axial slice the dark CSF and bone of the canal enclose
it: :func:`spinal_canal` follows such enclosed regions down from the brainstem, slice by
slice, and :func:`spinal_cord` adds the dark CSF around them. Nothing in the canal is bone.

The CSF around the cord is not a ring of constant width: at the foramen magnum and the
atlas (C1) the canal is 25-35 mm across for a cord of about 10 mm, lower down 15-20 mm.
:func:`spinal_cord` takes the dark region that holds the cord, up to ``reach_mm`` beyond it
and opened by ``open_mm`` (so thin dark plates, the laminae and cortices of the vertebrae,
do not join it). Measured on the simulated heads (BENCHMARKS.md, session 27): whole-skull
Dice +0.003 each (a fixed 3 mm ring left 8-9 mL of canal CSF in the bone); a 16 mm reach
takes bone, and a 1 mm wall left to the bone at the blob's rim costs 0.001.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from .morphology import bounding_box, closing, dilate, fill_holes_2d, opening
from .volume import Volume

__all__ = ["spinal_canal", "spinal_cord"]

log = logging.getLogger("skullseg")


def spinal_cord(
    image: Volume,
    head: NDArray[np.bool_],
    brain: NDArray[np.bool_],
    dark_threshold: float,
    *,
    ring_mm: float = 3.0,
    reach_mm: float = 12.0,
    open_mm: float = 2.0,
    max_cord_area_mm2: float = 200.0,
    bridge_mm: float = 1.5,
    max_gap_mm: float = 8.0,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """The spinal cord below the brain and the canal around it, on a T1 (RAS working grid).

    Below the brain, the cord is a bright region that dark CSF (and bone) encloses in
    an axial slice; :func:`spinal_canal` follows it down from the brainstem. Gaps
    of up to ``2 x bridge_mm`` in the dark ring (partial volume, vessels) are
    closed first, and slices where the cord was not enclosed are bridged along
    the canal, up to ``max_gap_mm``. The canal is the cord plus the dark voxels
    (below ``dark_threshold``, lightly smoothed) within ``ring_mm`` of it, and, in the
    slices where the cord is no wider than a cord (``max_cord_area_mm2``; the pons of a
    field of view cut at the brainstem is not), the dark region that holds the cord:
    dark voxels within ``reach_mm`` of it, opened by ``open_mm`` (a ball), the pieces
    that touch the cord.

    Returns
    -------
    cord, canal : ndarray of bool

    Examples
    --------
    >>> img = np.full((40, 40, 60), 100.0, np.float32)
    >>> i, j, k = np.indices(img.shape)
    >>> r = np.hypot(i - 20, j - 20)
    >>> img[(r > 4) & (r <= 7) & (k < 40)] = 10.0  # CSF and bone around a cord
    >>> brain = (r <= 10) & (k >= 45)
    >>> cord, canal = spinal_cord(Volume(img, np.eye(4)), np.ones(img.shape, bool), brain, 40.0)
    >>> bool(cord[20, 20, 10]), bool(canal[20, 26, 10]), bool(canal[20, 35, 10])
    (True, True, False)
    """
    vox = image.zooms_mm[0]
    cord = np.zeros(image.shape, bool)
    zs = np.flatnonzero(brain.any(axis=(0, 1)))
    if not len(zs):
        return cord, cord.copy()
    top = int(zs[0]) + 1  # the slices below the brain's lowest one
    dark = (ndi.gaussian_filter(image.data[:, :, :top], 0.5 / vox) < dark_threshold) & head[
        :, :, :top
    ]
    ring = closing(dark, bridge_mm, vox) if bridge_mm > 0 else dark
    enclosed = np.zeros(image.shape, bool)
    enclosed[:, :, :top] = fill_holes_2d(ring, axis=2) & ~ring
    cord = spinal_canal(enclosed, brain, vox)
    span = int(round(max_gap_mm / vox)) + 1
    if cord.any() and span > 1:  # bridge the slices where the ring was open
        cord |= ndi.binary_closing(cord, np.ones((1, 1, span), bool))
    if cord.any() and bridge_mm > 0:  # the closing of the ring took the cord's rim
        cord[:, :, :top] |= dilate(cord[:, :, :top], bridge_mm, vox) & ~dark
    canal = cord.copy()
    canal[:, :, :top] |= dilate(cord[:, :, :top], ring_mm, vox) & dark
    if cord.any() and reach_mm > ring_mm:
        canal[:, :, :top] |= _dark_around_cord(
            cord[:, :, :top], dark, vox, reach_mm, open_mm, max_cord_area_mm2
        )
    if cord.any():
        log.info(
            "spinal canal: %.1f mL (cord %.1f mL)",
            canal.sum() * image.voxel_volume_ml,
            cord.sum() * image.voxel_volume_ml,
        )
    return cord, canal


def _dark_around_cord(
    cord: NDArray[np.bool_],
    dark: NDArray[np.bool_],
    voxel_mm: float,
    reach_mm: float,
    open_mm: float,
    max_cord_area_mm2: float,
) -> NDArray[np.bool_]:
    """The dark region that holds the cord (CSF of the canal), in cord-sized slices only."""
    box = bounding_box(cord, margin=int(np.ceil((reach_mm + open_mm) / voxel_mm)) + 1)
    if box is None:
        return np.zeros(cord.shape, bool)
    c = cord[box]
    near = dilate(c, reach_mm, voxel_mm) & dark[box]
    blob = opening(near | c, open_mm, voxel_mm) if open_mm > 0 else near | c
    lab, _ = ndi.label(blob)
    touching = np.unique(lab[c & blob])
    blob = np.isin(lab, touching[touching > 0]) & near
    area_mm2 = c.sum(axis=(0, 1)) * voxel_mm**2
    blob[:, :, area_mm2 > max_cord_area_mm2] = False
    out = np.zeros(cord.shape, bool)
    out[box] = blob
    return out


def spinal_canal(
    enclosed: NDArray[np.bool_],
    brain: NDArray[np.bool_],
    voxel_mm: float,
    *,
    start_band_mm: float = 3.0,
    first_shift_mm: float = 15.0,
    max_shift_mm: float = 8.0,
    area_mm2: tuple[float, float] = (20.0, 400.0),
    max_gap_mm: float = 30.0,
) -> NDArray[np.bool_]:
    """The cord's track among regions enclosed in axial slices (by CSF and bone; RAS grid).

    The canal continues the brainstem downwards. Each region (of ``area_mm2``) in
    the slices just below the brain, within ``first_shift_mm`` of the centre of the
    brain's lowest ``start_band_mm`` (often the cerebellar tonsils, behind the
    medulla), starts a walk down: each slice takes the region nearest to the last
    position, within ``max_shift_mm``, and the walk ends after ``max_gap_mm`` of
    slices without one. The walk that finds the most slices is the canal.

    Examples
    --------
    >>> enclosed = np.zeros((30, 30, 40), bool); brain = enclosed.copy()
    >>> brain[10:20, 10:20, 30:] = True
    >>> enclosed[12:18, 12:18, :25] = True  # a tube below the brain: the canal
    >>> enclosed[2:6, 2:6, :25] = True  # off to the side: not the canal
    >>> canal = spinal_canal(enclosed, brain, 1.0)
    >>> int(canal.sum()), bool(canal[3, 3, 5])
    (900, False)
    """
    canal = np.zeros(enclosed.shape, bool)
    zs = np.flatnonzero(brain.any(axis=(0, 1)))
    if not len(zs) or not enclosed.any():
        return canal
    low = brain[:, :, zs[0] : zs[0] + max(1, int(round(start_band_mm / voxel_mm)))]
    start = np.argwhere(low)[:, :2].mean(axis=0)
    # regions of the right size in every slice below the brain: (labels, centroids)
    slices: dict[int, tuple[NDArray, NDArray]] = {}
    for k in range(int(zs[0]) - 1, -1, -1):
        lab, n = ndi.label(enclosed[:, :, k])
        if not n:
            continue
        area = np.bincount(lab.ravel(), minlength=n + 1)[1:] * voxel_mm**2
        ok = np.flatnonzero((area >= area_mm2[0]) & (area <= area_mm2[1])) + 1
        if len(ok):
            centres = np.array(ndi.center_of_mass(np.ones_like(lab), lab, ok)).reshape(-1, 2)
            slices[k] = (lab, np.column_stack([ok, centres]))
    reach = int(round(first_shift_mm / voxel_mm))
    seeds = [
        (k, row[1:])
        for k, (_, rows) in slices.items()
        if k >= zs[0] - reach
        for row in rows
        if np.linalg.norm(row[1:] - start) <= first_shift_mm / voxel_mm
    ]
    best: list[tuple[int, int]] = []
    for k0, xy in seeds:
        path, gap, k = [], 0, k0 + 1
        while k > 0 and gap * voxel_mm <= max_gap_mm:
            k -= 1
            if k not in slices:
                gap += 1
                continue
            rows = slices[k][1]
            d = np.linalg.norm(rows[:, 1:] - xy, axis=1)
            i = int(np.argmin(d))
            if d[i] <= max_shift_mm / voxel_mm:
                path.append((k, int(rows[i, 0])))
                xy, gap = rows[i, 1:], 0
            else:
                gap += 1
        if len(path) > len(best):
            best = path
    for k, i in best:
        canal[:, :, k] = slices[k][0] == i
    return canal
