"""Tissue labels from the nested surfaces: scalp, skull, CSF, brain and air cavities.

The label map follows from the geometry: inside the inner skull is CSF or
brain, between inner and outer skull is bone, between outer skull and skin
is scalp. Air cavities are large, very dark regions outside the inner
skull (sinuses, mastoid cells, nasal cavity and pharynx), found by an erosion
so that thin compact bone, which is as dark as air in a T1, is not mistaken
for air, and grown back short of the cavity's bony wall. Below the cranium,
the facial skeleton, mandible and upper spine are the dark structures that are
neither air nor thick fluid-filled blobs (eyes), plus the marrow their cortex
encloses, except the spinal canal (cord and CSF), which is tracked down from
the brainstem (:mod:`skullseg.spine`; ``spinal_cord`` and ``spinal_canal`` are
importable from here too). Soft tissue that bone encloses on every side, in the cranium
or below it, is marrow (:func:`enclosed_marrow`).
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from . import labels as L
from .morphology import (
    bounding_box,
    closing,
    dilate,
    distance_inside_mm,
    drop_small_components,
    erode,
    fill_holes,
    fill_holes_2d,
    opening,
)
from .spine import spinal_canal, spinal_cord
from .volume import Volume

__all__ = [
    "air_cavities",
    "sinus_region",
    "assemble_labels",
    "enclosed_marrow",
    "extracranial_bone",
    "marrow_pieces",
    "fluid_in_bone",
    "spinal_canal",
    "spinal_cord",
]

log = logging.getLogger("skullseg")


def air_cavities(
    image: Volume,
    head: NDArray[np.bool_],
    inner: NDArray[np.bool_],
    air_threshold: float,
    *,
    min_radius_mm: float = 2.5,
    min_volume_ml: float = 0.5,
    wall_mm: float = 1.0,
) -> NDArray[np.bool_]:
    """Very dark regions in the head, outside ``inner``, at least 2 x ``min_radius_mm`` thick.

    The regions that survive an erosion by ``min_radius_mm`` grow back by
    ``min_radius_mm - wall_mm`` only: the outermost ``wall_mm`` of a dark cavity
    is its bony wall (as dark as air in a T1), not air.

    Parameters
    ----------
    image : Volume
        Bias-corrected T1 on the working grid.
    head, inner : ndarray of bool
        Head mask, and where no air is looked for: the inside of the inner skull (the
        pipeline adds the cranial bone band outside :func:`sinus_region`).
    air_threshold : float
        Intensity below which a voxel may be air.
    min_radius_mm : float
        Erosion radius: thinner dark structures (compact bone) are not air.
    min_volume_ml : float
        Smaller dark blobs are ignored.
    wall_mm : float
        Dark rim left to the cavity's wall.
    """
    vox = image.zooms_mm[0]
    dark = (ndi.gaussian_filter(image.data, 0.7 / vox) < air_threshold) & head & ~inner
    core = erode(dark, min_radius_mm, vox)
    air = dilate(core, max(min_radius_mm - wall_mm, 0.0), vox) & dark
    return drop_small_components(air, min_volume_ml / image.voxel_volume_ml)


def sinus_region(
    image: Volume, air_prior: Volume | None, *, below_z_mm: float, prior_level: float = 0.5
) -> NDArray[np.bool_]:
    """Where air cavities may lie inside the cranial bone (sinuses, mastoid air cells).

    In a T1, thick compact bone is as dark as air, so inside the bone band
    only a registered atlas tells a sinus from a thick table: the region is where
    ``air_prior`` (the atlas's air class on ``image``'s grid) exceeds ``prior_level``,
    below the world height ``below_z_mm`` (the skull base). Empty without a prior.

    Examples
    --------
    >>> vol = Volume(np.zeros((2, 1, 2)), np.eye(4))
    >>> prior = vol.with_data(np.array([[[0.9, 0.9]], [[0.1, 0.9]]]))
    >>> sinus_region(vol, prior, below_z_mm=0.5).astype(int).tolist()
    [[[1, 0]], [[0, 0]]]
    """
    if air_prior is None:
        return np.zeros(image.shape, bool)
    return (image.world_coordinate(2) < below_z_mm) & (air_prior.data > prior_level)


def extracranial_bone(
    image: Volume,
    head: NDArray[np.bool_],
    outer: NDArray[np.bool_],
    brain: NDArray[np.bool_],
    air: NDArray[np.bool_],
    *,
    tissue_floor: float,
    below_z_mm: float,
    tissue_ceiling: float | None = None,
    bone_fraction: float = 0.5,
    local_sigma_mm: float = 8.0,
    skin_margin_mm: float = 3.0,
    brain_margin_mm: float = 3.0,
    fluid_radius_mm: float = 3.0,
    closing_mm: float = 1.5,
    min_volume_ml: float = 0.3,
    max_marrow_ml: float = 150.0,
    max_marrow_depth_mm: float = 15.0,
    canal: NDArray[np.bool_] | None = None,
) -> NDArray[np.bool_]:
    """Bone outside the cranium: facial skeleton, mandible, skull base and upper spine (T1).

    In a T1, compact bone is dark; so are air, which ``air`` already holds, and
    fluid (eyes, CSF). Candidates are head voxels outside the outer skull,
    below the world height ``below_z_mm``, at least ``skin_margin_mm`` inside the
    skin and ``brain_margin_mm`` away from the brain, darker than
    ``bone_fraction`` of the local soft-tissue level (the Gaussian-weighted mean,
    ``local_sigma_mm``, of head voxels brighter than ``tissue_floor`` and, when given,
    darker than ``tissue_ceiling``: fat is left out, since beside bright fat half the mean
    is above muscle's level in a T1; local, so a residual coil fall-off in the neck does
    not turn muscle into bone). Dark
    blobs thicker than ``2 x fluid_radius_mm`` (eyes, cisterns) are removed; a
    closing by ``closing_mm`` takes in thin marrow between cortical plates;
    components under ``min_volume_ml`` are dropped. What the dark cortical bone
    encloses in an axial slice is marrow (vertebral bodies, mandible; bright in a
    T1) and is filled, except air (sinuses have bony walls too) and fluid, in pieces
    that are bone-sized (:func:`marrow_pieces`: up to ``max_marrow_ml`` and never
    deeper than ``max_marrow_depth_mm`` from their cortex within a slice; an oral
    cavity or a slab of neck that a dark line happens to enclose is wider). Nothing
    in ``canal`` (the spinal canal, see :func:`spinal_cord`) is bone.

    Parameters
    ----------
    image : Volume
        Bias-corrected T1 on a RAS working grid (axis 2 points superior).
    head, outer, brain, air : ndarray of bool
        Head mask, inside of the outer skull, brain mask, air cavities.
    tissue_floor : float
        Intensity above which a head voxel counts as soft tissue for the local level.
    tissue_ceiling : float, optional
        Intensity below which it does (fat is brighter); no ceiling when None. Where
        no such voxel is within reach (Gaussian weight under 0.05: amid fat alone),
        the local level is the ceiling itself.
    below_z_mm : float
        World z (mm) above which no extracranial bone is sought (the vault's
        scalp has none); the pipeline passes the brain centre.

    Returns
    -------
    ndarray of bool

    Examples
    --------
    >>> img = np.full((30, 30, 30), 100.0, np.float32)
    >>> img[5:25, 5:25, 8:10] = 5.0  # a dark plate in soft tissue
    >>> vol = Volume(img, np.eye(4))
    >>> head = np.ones(img.shape, bool); none = np.zeros(img.shape, bool)
    >>> bone = extracranial_bone(vol, head, none, none, none, tissue_floor=30.0,
    ...                          below_z_mm=20.0, skin_margin_mm=2.0)
    >>> int(bone.sum())
    800
    """

    vox = image.zooms_mm[0]
    out = np.zeros(image.shape, bool)
    candidates = head & ~outer & ~air & (image.world_coordinate(2) < below_z_mm)
    if not candidates.any():
        return out
    # work in the candidates' bounding box, padded beyond every morphological reach
    pad = int(np.ceil((skin_margin_mm + brain_margin_mm + fluid_radius_mm + closing_mm) / vox))
    nz = np.nonzero(candidates)
    box = tuple(
        slice(max(int(c.min()) - pad, 0), min(int(c.max()) + pad + 1, n))
        for c, n in zip(nz, image.shape)
    )
    region = erode(head[box], skin_margin_mm, vox) & candidates[box]
    region &= ~dilate(brain[box], brain_margin_mm, vox)
    data = image.data[box].astype(np.float32)
    soft = head[box] & (data > tissue_floor)
    if tissue_ceiling is not None:
        soft &= data < tissue_ceiling
    soft = soft.astype(np.float32)
    sigma = local_sigma_mm / vox
    weight = ndi.gaussian_filter(soft, sigma)
    level = ndi.gaussian_filter(data * soft, sigma) / np.maximum(weight, 1e-3)
    if tissue_ceiling is not None:  # amid fat alone, the level is the ceiling itself
        level = np.where(weight >= 0.05, level, tissue_ceiling)
    dark = region & (data < bone_fraction * level)
    fluid = opening(dark, fluid_radius_mm, vox)
    bone = closing(dark & ~fluid, closing_mm, vox) & region & ~fluid
    bone = drop_small_components(bone, min_volume_ml / image.voxel_volume_ml)
    not_canal = np.ones(bone.shape, bool) if canal is None else ~canal[box]
    if max_marrow_ml > 0:
        enclosed = fill_holes_2d(bone, axis=2) & ~bone & ~air[box] & ~fluid & not_canal
        bone |= marrow_pieces(
            enclosed, image.zooms_mm, max_ml=max_marrow_ml, max_depth_mm=max_marrow_depth_mm
        )
    out[box] = bone & not_canal
    log.info("extracranial bone: %.0f mL", out.sum() * image.voxel_volume_ml)
    return out


def marrow_pieces(
    enclosed: NDArray[np.bool_],
    voxel_mm: tuple[float, float, float],
    *,
    max_ml: float = 150.0,
    max_depth_mm: float = 15.0,
) -> NDArray[np.bool_]:
    """The pieces (6-connected) of ``enclosed`` that are shaped like the marrow of a bone.

    Marrow lies within a few millimetres of its cortex: the body of a cervical
    vertebra is about 15-25 mm wide, a mandible 8-15 mm thick. A piece is kept if no
    voxel of it lies deeper than ``max_depth_mm`` from the piece's edge within its
    axial slice (axis 2) and the piece holds at most ``max_ml``. An oral cavity or a
    slab of neck is 40 mm or more across; a whole mandible's marrow, joined at the
    chin, is a thin piece of 25-80 mL.

    Examples
    --------
    >>> m = np.zeros((60, 60, 10), bool)
    >>> m[2:12, 2:50, :] = True    # 10 mm thick, like a mandible's marrow
    >>> m[20:58, 20:58, :] = True  # 38 mm across, like an oral cavity
    >>> kept = marrow_pieces(m, (1.0, 1.0, 1.0))
    >>> bool(kept[5, 10, 5]), bool(kept[40, 40, 5])
    (True, False)
    """
    out = np.zeros(enclosed.shape, bool)
    # the pieces' bounding box with a one-voxel rim: every depth is measured within it
    box = bounding_box(enclosed, 1)
    if box is None:
        return out
    sub = enclosed[box]
    lab, n = ndi.label(sub)
    depth = np.zeros(sub.shape, np.float32)
    for k in np.flatnonzero(sub.any(axis=(0, 1))):
        depth[:, :, k] = distance_inside_mm(sub[:, :, k][..., None], (*voxel_mm[:2], 1e6))[..., 0]
    index = np.arange(1, n + 1)
    deepest = ndi.maximum(depth, lab, index)
    volume_ml = np.bincount(lab.ravel(), minlength=n + 1)[1:] * float(np.prod(voxel_mm)) / 1000.0
    keep = np.zeros(n + 1, bool)
    keep[1:] = (np.asarray(deepest) <= max_depth_mm) & (volume_ml <= max_ml)
    out[box] = keep[lab]
    return out


def enclosed_marrow(
    labels: NDArray[np.uint8],
    voxel_mm: tuple[float, float, float],
    *,
    max_ml: float = 150.0,
    max_depth_mm: float = 15.0,
) -> NDArray[np.bool_]:
    """Soft tissue that bone encloses on every side: the marrow of thick bone.

    Where bone is thick (the occipital protuberance, the petrous and mastoid bone, the
    vertebral bodies), its marrow is as bright as the scalp's tissue in a T1, and the
    layered model can put the outer skull on the inner table with the marrow outside it;
    the thin outer table beyond is then found as bone below the cranium, and the marrow
    between the two is labelled scalp. Soft tissue that bone encloses in 3-D (no path
    through anything but bone, 6-connected, leads out of it) is not scalp; pieces shaped
    like marrow (:func:`marrow_pieces`, with ``max_ml`` and ``max_depth_mm``) are bone.
    Air cavities and the intracranial labels are left alone.

    Parameters
    ----------
    labels : ndarray of uint8
        Label map (:mod:`skullseg.labels` values).
    voxel_mm : tuple of float
        Voxel size in mm.
    max_ml : float
        Largest enclosed piece taken (mL).
    max_depth_mm : float
        Deepest a piece may be from its edge within an axial slice (mm).

    Returns
    -------
    ndarray of bool
        The scalp-labelled voxels to relabel as skull.

    Examples
    --------
    >>> lab = np.full((12, 12, 12), L.SCALP, np.uint8)
    >>> lab[2:10, 2:10, 2:10] = L.SKULL
    >>> lab[4:8, 4:8, 4:8] = L.SCALP  # marrow inside a bone
    >>> int(enclosed_marrow(lab, (1.0, 1.0, 1.0)).sum())
    64
    >>> lab[4:8, 4:8, 8:10] = L.SCALP  # a channel to the outside: not enclosed
    >>> int(enclosed_marrow(lab, (1.0, 1.0, 1.0)).sum())
    0
    """
    bone = labels == L.SKULL
    out = np.zeros(labels.shape, bool)
    box = bounding_box(bone)  # enclosed voxels lie inside the bone's bounding box
    if box is None:
        return out
    holes = fill_holes(bone[box]) & ~bone[box] & (labels[box] == L.SCALP)
    out[box] = marrow_pieces(holes, voxel_mm, max_ml=max_ml, max_depth_mm=max_depth_mm)
    return out


def fluid_in_bone(
    t1: Volume,
    t2: Volume,
    band: NDArray[np.bool_],
    intracranial: NDArray[np.bool_],
    brain: NDArray[np.bool_],
    *,
    dark_threshold: float,
    fraction: float = 0.6,
    sigma_mm: float = 0.5,
) -> NDArray[np.bool_]:
    """Voxels of the bone ``band`` that are fluid: dark in the T1 and bright in the T2.

    Compact bone is dark in both images; CSF is dark in a T1 and the brightest
    tissue of a T2; marrow and fat are bright in a T1. So a ``band`` voxel
    darker than ``dark_threshold`` in ``t1`` whose T2 (Gaussian-smoothed,
    ``sigma_mm``) exceeds ``fraction`` of the CSF level is fluid: cisterns at the
    skull base, a CSF layer the surfaces left in the bone. The CSF level is the
    75th percentile of the T2 in the ``intracranial`` space outside the
    ``brain`` (where the T2 has signal); nothing is returned unless that level
    is at least twice the band's median T2 (CSF bright, bone dark). Only fluid
    connected (26-neighbourhood) to the intracranial space is returned, so eyes
    and sinus fluid stay as they are.

    Examples
    --------
    >>> t1 = np.full((9, 9, 9), 100.0, np.float32); t2 = np.full((9, 9, 9), 50.0, np.float32)
    >>> inside = np.zeros(t1.shape, bool); inside[:, :, :3] = True   # CSF
    >>> band = np.zeros(t1.shape, bool); band[:, :, 3:6] = True      # the bone band
    >>> t1[:, :, :6] = 10.0; t2[:, :, :3] = 1000.0; t2[:, :, 3] = 1000.0  # fluid in its first slice
    >>> fluid = fluid_in_bone(Volume(t1, np.eye(4)), Volume(t2, np.eye(4)), band, inside,
    ...                       np.zeros(t1.shape, bool), dark_threshold=45.0, sigma_mm=0.0)
    >>> int(fluid.sum()), bool(fluid[:, :, 3].all())
    (81, True)
    """
    none = np.zeros(band.shape, bool)
    t2_data = t2.data.astype(np.float32)
    csf = intracranial & ~brain & (t2_data > 0)  # a T2 covering part of the head is 0 outside
    if not band.any() or csf.sum() < 50:
        return none
    level = float(np.percentile(t2_data[csf], 75))
    if level <= 2.0 * float(np.median(t2_data[band])):
        log.info("T2: CSF is not brighter than the bone band; no fluid sought there")
        return none
    if sigma_mm > 0:
        t2_data = ndi.gaussian_filter(t2_data, sigma_mm / t2.zooms_mm[0])
    fluid = band & (t1.data < dark_threshold) & (t2_data > fraction * level)
    if not fluid.any():
        return fluid
    comp, _ = ndi.label(fluid | intracranial, ndi.generate_binary_structure(3, 3))
    keep = np.unique(comp[intracranial])
    return fluid & np.isin(comp, keep[keep > 0])


def assemble_labels(
    head: NDArray[np.bool_],
    brain: NDArray[np.bool_],
    inner: NDArray[np.bool_],
    outer: NDArray[np.bool_],
    air: NDArray[np.bool_] | None = None,
    other_bone: NDArray[np.bool_] | None = None,
    canal: NDArray[np.bool_] | None = None,
) -> NDArray[np.uint8]:
    """Label map (values of :mod:`skullseg.labels`) from nested masks.

    ``inner`` must lie inside ``outer``; both are clipped to the head.
    ``other_bone`` (bone outside the cranium) is labelled skull where it is not air.
    Nothing in the spinal ``canal`` is skull: where the cranium's band (or bone below
    it) crosses the canal, its contents, cord included, are labelled CSF. (Not brain:
    the brain label stays enclosed by CSF and skull, which :mod:`skullseg.checks` tests.)

    Examples
    --------
    >>> z = np.zeros((5, 5, 5), bool)
    >>> head = z.copy(); head[:] = True
    >>> outer = z.copy(); outer[1:4, 1:4, 1:4] = True
    >>> inner = z.copy(); inner[2, 2, 2] = True
    >>> lab = assemble_labels(head, inner, inner, outer)
    >>> [int((lab == v).sum()) for v in range(5)]
    [0, 98, 26, 0, 1]
    >>> outer[:] = False  # no bone at all: the ordering rule still puts bone around the brain
    >>> lab = assemble_labels(head, inner, inner, inner | outer)
    >>> int((lab == 2).sum())
    26
    """
    out = np.zeros(head.shape, np.uint8)
    out[head] = L.SCALP
    out[outer & head] = L.SKULL
    if other_bone is not None:
        out[other_bone & head & ~inner] = L.SKULL
    if air is not None:
        out[air & head & ~inner] = L.AIR_CAVITY
    out[inner & head] = L.CSF
    out[inner & head & brain] = L.BRAIN
    # ordering rule (as in SimNIBS charm): soft tissue or air touching the intracranial
    # space is bone, so brain and CSF are always enclosed by skull
    touching = ndi.binary_dilation(inner & head, ndi.generate_binary_structure(3, 3))
    out[touching & ((out == L.SCALP) | (out == L.AIR_CAVITY))] = L.SKULL
    if canal is not None:
        out[canal & head & (out == L.SKULL)] = L.CSF
    return out
