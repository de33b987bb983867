"""CSF that a T1 cannot tell from bone, taken from the registered atlas (the basal cisterns).

Below the brain, the prepontine cistern lies on the clivus and the cisterna magna on the
occipital bone. In a T1 both fluid and compact bone are dark, so the layered model puts
the inner skull somewhere in that dark band and labels part of the cisterns as bone; over
the vault the same band rule puts the inner skull too deep where the CSF layer is wider than
usual. The registered atlas (deformable, :mod:`skullseg.deformable`) knows where CSF
usually is. Skull-labelled voxels where CSF is the atlas's majority class (prior above
``min_prior`` = 0.5 and above ``ratio`` times its skull prior), that are more than
``margin_mm`` inside the bone (so the outer table is never thinned) and that touch the
intracranial space, are relabelled CSF. The rule trusts the atlas only when it fits: when
less than ``min_inside`` of its CSF lies in the cranium found on the image
(:func:`atlas_csf_inside`), nothing is relabelled.

Measured (BENCHMARKS.md, session 14), with the deformable priors and ``min_prior`` 0.7:
whole-skull Dice sim0 / sim1 +0.0036 / +0.0034, colin27 +0.0011, mne_sample −0.0004 (its
FLASH surfaces close the skull across the foramen magnum); the vault does not change. With
the affine priors alone the same rule cost mne_sample 0.0014. Session 25 lowered
``min_prior`` to 0.5, the majority level (cached labels, whole skull): sim0–2 +0.0033 /
+0.0029 / +0.0024, the atrophied variant +0.0077, clinical0 +0.0005, colin27 +0.0003,
mne_sample −0.0031; 0.4 adds little on the simulated heads and costs mne_sample more.
The atlas's CSF lies 82–97 % in the cranium found on the simulated heads and their variants,
the clinical-like 4 mm heads, MNE sample, Colin27 and two real unreferenced heads (the
atrophied variant lowest, 82 %: its band rule puts the inner skull too deep, which is what
the rule mends), and 49–77 % on the synthetic phantom, which has no cisterns and a box-like
skull base that the atlas cannot follow (there the rule cost up to 0.012 Dice);
``min_inside`` is 0.8. The rule then went from below the brain's centre to every height:
vaults sim0–2 +0.0024 / +0.0012 / +0.0005, clinical0–1 +0.0003 / +0.0048, mne_sample
+0.0010, colin27 +0.0013, atrophied +0.0135.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import scipy.ndimage as ndi
from numpy.typing import NDArray

from skullseg.labels import BRAIN, CSF, SKULL
from skullseg.masks import slice_heights_mm
from skullseg.volume import Volume

__all__ = ["ATLAS_MIN_INSIDE", "atlas_csf_inside", "cisterns_from_atlas"]

#: the atlas fits the head when this share of its CSF lies in the cranium found
ATLAS_MIN_INSIDE = 0.8

log = logging.getLogger("skullseg")


def atlas_csf_inside(labels: Volume, csf_prior: Volume) -> float:
    """How much of the registered atlas's CSF lies in the cranium found on the image.

    The share of the CSF prior's mass on voxels labelled CSF or brain (1 when there is no
    prior). An atlas that fits puts nearly all of its CSF there (0.82-0.97 on the simulated
    and real heads measured); one that does not follow the head puts much of it in the
    bone or beyond.

    Examples
    --------
    >>> lab = np.full((8, 8, 8), SKULL, np.uint8); lab[:, :, :4] = CSF
    >>> prior = np.zeros(lab.shape, np.float32); prior[:, :, 2:6] = 0.9
    >>> v = Volume(lab, np.eye(4))
    >>> atlas_csf_inside(v, v.with_data(prior))
    0.5
    """
    prior = np.asarray(csf_prior.data, dtype=np.float64)
    total = float(prior.sum())
    if total <= 0:
        return 1.0
    inside = np.isin(labels.data, [CSF, BRAIN])
    return float(prior[inside].sum()) / total


def cisterns_from_atlas(
    labels: Volume,
    csf_prior: Volume,
    skull_prior: Volume,
    *,
    below_z_mm: float = math.inf,
    min_prior: float = 0.5,
    ratio: float = 1.0,
    margin_mm: float = 2.5,
    min_inside: float = ATLAS_MIN_INSIDE,
) -> NDArray[np.bool_]:
    """Skull-labelled voxels that the atlas says are CSF (to be relabelled CSF).

    Parameters
    ----------
    labels : Volume
        Label map (:mod:`skullseg.labels` values) on an unsheared grid.
    csf_prior, skull_prior : Volume
        The registered atlas's CSF and skull priors on the same grid.
    below_z_mm : float
        Only voxels whose world height is below this are considered; every height by
        default.
    min_prior : float
        The CSF prior must exceed this (0.5: CSF is the atlas's majority class) ...
    ratio : float
        ... and ``ratio`` times the skull prior.
    margin_mm : float
        Voxels within this distance of anything but skull, CSF and brain stay bone.
    min_inside : float
        Nothing is relabelled when :func:`atlas_csf_inside` is below this (the atlas does
        not fit the head).

    Returns
    -------
    ndarray of bool
        The voxels to relabel, on ``labels``' grid.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.full((12, 12, 12), SKULL, np.uint8); lab[:, :, 8:] = CSF
    >>> prior = np.zeros(lab.shape, np.float32); prior[:, :, 7:] = 0.9
    >>> v = Volume(lab, np.eye(4))
    >>> found = cisterns_from_atlas(v, v.with_data(prior), v.with_data(0 * prior),
    ...                             below_z_mm=20.0, margin_mm=0.0)
    >>> int(found.sum()) == 12 * 12 * 1
    True
    """
    lab = labels.data
    z_mm = slice_heights_mm(labels)
    if not np.allclose(labels.affine[2, :2], 0.0) or not np.allclose(labels.affine[:2, 2], 0.0):
        raise ValueError("cisterns_from_atlas needs a grid whose third axis is world z")
    inside = atlas_csf_inside(labels, csf_prior)
    fits = inside >= min_inside
    log.info(
        "atlas: %.0f%% of its CSF lies in the cranium found (%s %.0f%%)%s",
        100 * inside,
        ">=" if fits else "<",
        100 * min_inside,
        "" if fits else ": it does not fit the head, no CSF taken from it",
    )
    if not fits:
        return np.zeros(lab.shape, dtype=bool)
    csf, skull = csf_prior.data, skull_prior.data
    cand = (lab == SKULL) & (z_mm < below_z_mm)[None, None, :]
    cand &= (csf > min_prior) & (csf > ratio * skull)
    if margin_mm > 0 and cand.any():
        # the depth test needs only the candidates' box, padded past the margin
        pad = [int(np.ceil(margin_mm / z)) + 1 for z in labels.zooms_mm]
        idx = np.argwhere(cand)
        box = tuple(
            slice(max(lo - p, 0), hi + p + 1) for lo, hi, p in zip(idx.min(0), idx.max(0), pad)
        )
        inside = np.isin(lab[box], [SKULL, CSF, BRAIN])
        depth = ndi.distance_transform_edt(inside, sampling=labels.zooms_mm)
        cand[box] &= depth > margin_mm
    intra = (lab == CSF) | (lab == BRAIN)
    comp, _ = ndi.label(cand | intra)
    keep = np.unique(comp[intra])
    return cand & np.isin(comp, keep[keep > 0])
