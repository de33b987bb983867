"""The basal cisterns: CSF that a T1 cannot tell from bone, taken from the registered atlas.

Below the brain, the prepontine cistern lies on the clivus and the cisterna magna on the
occipital bone. In a T1 both fluid and compact bone are dark, so the layered model puts
the inner skull somewhere in that dark band and labels part of the cisterns as bone.
The registered atlas (deformable, :mod:`skullseg.deformable`) knows where the cisterns
usually are. Skull-labelled voxels below the brain's centre where CSF is the atlas's
majority class (prior above ``min_prior`` = 0.5 and above ``ratio`` times its skull prior),
that are more than ``margin_mm`` inside the bone (so the outer table is never thinned) and
that touch the intracranial space, are relabelled CSF. The rule trusts the atlas only where
it fits: when the atlas's CSF-majority region below the brain's centre overlaps the CSF found
there on the image by less than ``min_agreement`` (Dice,
:func:`atlas_csf_agreement`), nothing is relabelled.

Measured (BENCHMARKS.md, session 14), with the deformable priors and ``min_prior`` 0.7:
whole-skull Dice sim0 / sim1 +0.0036 / +0.0034, colin27 +0.0011, mne_sample −0.0004 (its
FLASH surfaces close the skull across the foramen magnum); the vault does not change. With
the affine priors alone the same rule cost mne_sample 0.0014. Session 25 lowered
``min_prior`` to 0.5, the majority level (cached labels, whole skull): sim0–2 +0.0033 /
+0.0029 / +0.0024, the atrophied variant +0.0077, clinical0 +0.0005, colin27 +0.0003,
mne_sample −0.0031; 0.4 adds little on the simulated heads and costs mne_sample more.
The agreement reads 0.42–0.55 on the simulated, clinical-like, MNE sample and Colin27
heads, and 0.10–0.15 on the synthetic phantom, whose cube-like skull base the atlas cannot
follow (there the rule cost 0.003–0.008 even at 0.7); ``min_agreement`` is 0.3.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.ndimage as ndi
from numpy.typing import NDArray

from skullseg.labels import BRAIN, CSF, SKULL
from skullseg.masks import slice_heights_mm
from skullseg.volume import Volume

__all__ = ["atlas_csf_agreement", "cisterns_from_atlas"]

log = logging.getLogger("skullseg")


def atlas_csf_agreement(
    labels: Volume, csf_prior: Volume, *, below_z_mm: float, level: float = 0.5
) -> float:
    """How well the registered atlas's CSF fits the CSF found on the image, below a height.

    The Dice overlap, below world height ``below_z_mm``, between the voxels labelled CSF and
    those where the atlas's CSF prior exceeds ``level``; 0 when both are empty.

    Examples
    --------
    >>> lab = np.full((8, 8, 8), BRAIN, np.uint8); lab[:, :, :2] = CSF
    >>> prior = np.zeros(lab.shape, np.float32); prior[:, :, :3] = 0.9
    >>> v = Volume(lab, np.eye(4))
    >>> round(atlas_csf_agreement(v, v.with_data(prior), below_z_mm=4.0), 2)
    0.8
    """
    low = (slice_heights_mm(labels) < below_z_mm)[None, None, :]
    found = (labels.data == CSF) & low
    atlas = (csf_prior.data > level) & low
    total = int(found.sum()) + int(atlas.sum())
    return 2.0 * float((found & atlas).sum()) / total if total else 0.0


def cisterns_from_atlas(
    labels: Volume,
    csf_prior: Volume,
    skull_prior: Volume,
    *,
    below_z_mm: float,
    min_prior: float = 0.5,
    ratio: float = 1.0,
    margin_mm: float = 2.5,
    min_agreement: float = 0.3,
) -> NDArray[np.bool_]:
    """Skull-labelled voxels that the atlas says are basal CSF (to be relabelled CSF).

    Parameters
    ----------
    labels : Volume
        Label map (:mod:`skullseg.labels` values) on an unsheared grid.
    csf_prior, skull_prior : Volume
        The registered atlas's CSF and skull priors on the same grid.
    below_z_mm : float
        Only voxels whose world height is below this (the brain's centre) are considered.
    min_prior : float
        The CSF prior must exceed this (0.5: CSF is the atlas's majority class) ...
    ratio : float
        ... and ``ratio`` times the skull prior.
    margin_mm : float
        Voxels within this distance of anything but skull, CSF and brain stay bone.
    min_agreement : float
        Nothing is relabelled when :func:`atlas_csf_agreement` is below this (the atlas
        does not fit the skull base).

    Returns
    -------
    ndarray of bool
        The voxels to relabel, on ``labels``' grid.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.full((12, 12, 12), SKULL, np.uint8); lab[:, :, 8:] = CSF
    >>> prior = np.zeros(lab.shape, np.float32); prior[:, :, 6:] = 0.9
    >>> v = Volume(lab, np.eye(4))
    >>> found = cisterns_from_atlas(v, v.with_data(prior), v.with_data(0 * prior),
    ...                             below_z_mm=20.0, margin_mm=0.0)
    >>> int(found.sum()) == 12 * 12 * 2
    True
    """
    lab = labels.data
    z_mm = slice_heights_mm(labels)
    if not np.allclose(labels.affine[2, :2], 0.0) or not np.allclose(labels.affine[:2, 2], 0.0):
        raise ValueError("cisterns_from_atlas needs a grid whose third axis is world z")
    agreement = atlas_csf_agreement(labels, csf_prior, below_z_mm=below_z_mm)
    if agreement < min_agreement:
        log.info(
            "atlas: its CSF overlaps the CSF found below the brain's centre by %.2f (< %.2f):"
            " no cisterns taken from it",
            agreement,
            min_agreement,
        )
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
