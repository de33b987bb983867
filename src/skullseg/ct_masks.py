"""Masks of a head CT from Hounsfield units: head, bone, intracranial space and CSF.

* :func:`ct_head_mask`: above -500 HU, cut free from the scanner table and head holder by
  an opening (thin, flat structures go), closed and filled;
* :func:`ct_bone_mask`: above the midpoint between soft tissue and the brightest bone
  nearby, plus the diploë inside it; metal (> ``METAL_HU``) clipped, isolated spokes
  (streak artefacts) dropped;
* :func:`intracranial_mask`: the largest hole of the bone once a closing has sealed the
  foramen magnum and the orbits, grown back into the fossae;
* :func:`csf_mask`: CSF inside it, from the brain's median HU and the rim under the bone.

:func:`skullseg.ct.segment_ct` puts them together.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from .morphology import (
    closing,
    dilate,
    distance_inside_mm,
    erode,
    fill_holes,
    fill_holes_2d,
    largest_component,
    opening,
)
from .volume import Volume

__all__ = ["METAL_HU", "ct_head_mask", "ct_bone_mask", "intracranial_mask", "csf_mask"]

log = logging.getLogger("skullseg")

METAL_HU = 3000.0


def ct_head_mask(
    work: Volume,
    *,
    threshold_hu: float = -500.0,
    closing_mm: float = 5.0,
    opening_mm: float = 3.0,
    regrow_mm: float = 4.0,
) -> NDArray[np.bool_]:
    """Head mask of a CT on the working grid, without the scanner table or head holder.

    Voxels above ``threshold_hu`` (lightly smoothed; midway between air and
    soft tissue, so a voxel counts when it is more than half tissue); an
    opening of ``opening_mm`` cuts thin flat structures (table, holder) from
    the head; the largest part grows back through the thin parts it lost
    (ears, nose) up to ``opening_mm + regrow_mm`` away, then is closed and
    its holes filled.
    """
    vox = work.zooms_mm[0]
    body = ndi.gaussian_filter(work.data, 0.7 / vox) > threshold_hu
    core = largest_component(opening(body, opening_mm, vox))
    if not core.any():
        core = largest_component(body)
    head = largest_component(dilate(core, opening_mm + regrow_mm, vox) & body)
    head = fill_holes(closing(head, closing_mm, vox))
    return fill_holes_2d(head, axis=2)


def ct_bone_mask(
    work: Volume, head: NDArray[np.bool_], *, bone_hu: float = 300.0, min_volume_ml: float = 0.05
) -> tuple[NDArray[np.bool_], NDArray[np.float32]]:
    """Bone (skull, face, vertebrae) inside the head, and a signed bone score in HU.

    A voxel is bone when it is brighter than the midpoint between soft tissue
    and the brightest bone within 2 mm (at least ``bone_hu``): a partial-volume
    voxel counts when it is more than half bone, and thin bone that never
    reaches full density still counts. Cancellous bone (diploë) above
    ``bone_hu`` whose 6 neighbours all are too is added (partial-volume edges
    are not). Values above 3000 HU (metal) are clipped first; components under
    ``min_volume_ml`` (noise, specks of streak artefacts) are dropped.

    Returns
    -------
    bone : ndarray of bool
    score_hu : ndarray of float32
        HU above the local half-bone level, positive exactly on ``bone``; its
        zero level is the sub-voxel bone boundary (used to resample the skull).
    """
    vox = work.zooms_mm[0]
    hu = np.minimum(work.data, METAL_HU)
    inside = hu[head]
    soft = inside[(inside > -200.0) & (inside < 200.0)]
    soft_hu = float(np.median(soft)) if soft.size else 40.0
    size = 2 * int(round(2.0 / vox)) + 1
    score = hu - np.maximum(bone_hu, 0.5 * (soft_hu + ndi.maximum_filter(hu, size=size)))
    strong = (score > 0) & head
    weak = (hu > bone_hu) & head
    bone = strong | ndi.binary_erosion(weak, border_value=1)
    bone = _drop_specks(bone, vox, min_volume_ml)
    score = np.where(bone, np.maximum(score, 1.0), np.minimum(score, -1.0)).astype(np.float32)
    log.info("ct bone: soft tissue %.0f HU, %.0f mL", soft_hu, bone.sum() * work.voxel_volume_ml)
    return bone, score


def _drop_specks(bone: NDArray[np.bool_], vox: float, min_volume_ml: float) -> NDArray[np.bool_]:
    """Bone without tiny components, nor small ones that are only thin lines (streaks)."""
    lab, n = ndi.label(bone)
    if n == 0:
        return bone
    sizes = np.bincount(lab.ravel()) * vox**3 / 1000.0
    sizes[0] = 0.0
    keep = sizes >= min_volume_ml
    small = keep & (sizes < 2.0)
    if small.any():
        depth = distance_inside_mm(bone, vox)
        thick = ndi.maximum(depth, lab, index=np.arange(n + 1)) >= 1.5
        keep &= ~small | thick
    keep[0] = False
    return keep[lab]


def intracranial_mask(
    work: Volume,
    head: NDArray[np.bool_],
    bone: NDArray[np.bool_],
    *,
    seal_mm: tuple[float, ...] = (15.0, 25.0, 35.0),
    reach_mm: float = 10.0,
    foramen_fraction: float = 0.1,
) -> NDArray[np.bool_]:
    """The cranial cavity: everything non-bone enclosed by the skull, above the foramen magnum.

    A closing of the bone seals the foramen magnum, the orbits and smaller
    openings (on a 2 mm copy, with the first radius of ``seal_mm`` that leaves
    a hole of at least 300 mL); the largest hole of the sealed skull is the
    core of the cavity. It grows back by up to ``reach_mm`` through non-bone voxels
    (> -100 HU) into the fossae that the closing filled. Below the widest
    slice, the first axial slice whose cavity area is under
    ``foramen_fraction`` of the widest ends it (the cord is not intracranial).
    """
    vox = work.zooms_mm[0]
    hu = ndi.gaussian_filter(work.data, 0.7 / vox)
    core = _sealed_hole(bone, vox, seal_mm)
    if core.sum() * work.voxel_volume_ml < 100.0:  # skull open at the top: fill per slice
        filled = fill_holes_2d(closing(bone, 3.0, vox), axis=2)
        core = largest_component(erode(filled & ~bone, 4.0, vox))
    cand = ~bone & head & (hu > -100.0)
    steps = max(1, int(round(reach_mm / vox)))
    ic = ndi.binary_dilation(core & cand, iterations=steps, mask=cand)
    area = ic.sum(axis=(0, 1))
    peak = int(np.argmax(area))
    low = np.nonzero(area[:peak] < foramen_fraction * area[peak])[0]
    if low.size:
        ic[:, :, : low[-1] + 1] = False
    ic = fill_holes(largest_component(ic))  # calcifications, vessels: intracranial
    log.info("ct intracranial: %.0f mL", ic.sum() * work.voxel_volume_ml)
    return ic


def _sealed_hole(bone: NDArray[np.bool_], vox: float, radii_mm: tuple[float, ...]) -> NDArray:
    """Largest hole of the bone closed by the smallest of ``radii_mm`` that leaves one (>300 mL).

    Computed on a grid of about 2 mm (max-pooled bone) and brought back to
    the full grid, minus the bone; empty when no radius seals the skull.
    """
    f = max(1, int(round(2.0 / vox)))
    pad = [(0, (-n) % f) for n in bone.shape]
    b = np.pad(bone, pad)
    s = b.shape
    small = b.reshape(s[0] // f, f, s[1] // f, f, s[2] // f, f).any(axis=(1, 3, 5))
    hole = np.zeros(small.shape, bool)
    for r in radii_mm:
        sealed = closing(small, r, vox * f)
        hole = largest_component(fill_holes(sealed) & ~sealed)
        if hole.sum() * (vox * f) ** 3 / 1000.0 >= 300.0:
            break
    full = hole.repeat(f, 0).repeat(f, 1).repeat(f, 2)
    full = full[: bone.shape[0], : bone.shape[1], : bone.shape[2]]
    return full & ~bone


def csf_mask(
    work: Volume, intracranial: NDArray[np.bool_], bone: NDArray[np.bool_], *, csf_hu: float = 8.0
) -> NDArray[np.bool_]:
    """CSF inside the cranial cavity; the rest of it is brain.

    The threshold is midway between ``csf_hu`` and the median HU of the cavity
    (mostly brain), kept within 12..25 HU. The thin CSF layer under the bone
    is blurred with it by partial volume: within 1 mm of bone everything is
    CSF, within 2.5 mm whatever is not in the brain's HU range. The cavity's
    rim at its openings (foramen magnum) is CSF too, so brain never meets scalp.
    """
    vox = work.zooms_mm[0]
    hu = ndi.gaussian_filter(work.data, 0.5 / vox)
    brain_hu = float(np.median(hu[intracranial])) if intracranial.any() else 35.0
    thr = float(np.clip(0.5 * (csf_hu + brain_hu), 12.0, 25.0))
    to_bone = distance_inside_mm(~bone, vox)
    csf = hu < thr
    csf |= (to_bone <= 2.5) & (hu > brain_hu + 12.0)
    csf |= to_bone <= 1.0
    csf |= distance_inside_mm(intracranial | bone, vox) <= 1.0  # rim at the openings
    log.info("ct csf: brain median %.0f HU, csf below %.0f HU", brain_hu, thr)
    return csf & intracranial
