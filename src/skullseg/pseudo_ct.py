"""Pseudo-CT: Hounsfield-like values painted from a label map (not a measured CT).

Each tissue label gets a typical CT value (air -1000, soft tissue 40, CSF 15,
brain 35, cortical bone 1400, cancellous bone 600, fat -90); where a T1 is
given, bright scalp is fat and bright bone is marrow-filled diploë. The
result is smoothed at the boundaries so that it looks and simulates (e.g.
for ultrasound or radiotherapy planning prototypes) like a CT, but its
values only restate the segmentation.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from . import labels as L
from .conform import resample_to_grid
from .morphology import distance_inside_mm
from .volume import Volume

__all__ = ["HU", "pseudo_ct"]

#: Typical Hounsfield units of the tissues that the pseudo-CT distinguishes.
HU: dict[str, float] = {
    "air": -1000.0,
    "soft": 40.0,
    "fat": -90.0,
    "csf": 15.0,
    "brain": 35.0,
    "cortical": 1400.0,
    "cancellous": 600.0,
}


def pseudo_ct(
    labels: Volume,
    *,
    image: Volume | None = None,
    smooth_mm: float = 1.0,
    diploe_depth_mm: float = 1.5,
) -> Volume:
    """A label-derived, CT-like image in Hounsfield units (float32).

    This is **not** a measured CT: every value comes from the label of its
    voxel (values of :mod:`skullseg.labels`) and a few rules, so it carries no
    information beyond the segmentation (no real bone density, no lesions).

    Background and air cavities are -1000 HU, scalp 40 HU, CSF 15 HU, brain
    35 HU. Skull is cortical bone (1400 HU) except cancellous bone (600 HU):
    skull voxels deeper than ``diploe_depth_mm`` from the skull's surface that
    are, when ``image`` (a T1 on any grid) is given, also bright in it
    (marrow-filled diploë; dark bone stays cortical). With ``image``, scalp
    voxels brighter than 0.85 x the white-matter level are fat (-90 HU). The
    map is then smoothed by a Gaussian of ``smooth_mm`` (0: none), which
    mimics the partial volume of a real CT at the tissue boundaries.

    Parameters
    ----------
    labels : Volume
        Label map (0 background, 1 scalp, 2 skull, 3 CSF, 4 brain, 5 air cavity).
    image : Volume, optional
        T1-weighted image of the same head (resampled onto the label grid).
    smooth_mm : float
        Gaussian sigma in mm.
    diploe_depth_mm : float
        Bone this close to the skull's surface is cortical.

    Returns
    -------
    Volume
        float32 pseudo-CT on the label grid.

    Examples
    --------
    >>> lab = np.zeros((20, 20, 20), np.uint8)
    >>> lab[2:18, 2:18, 2:18] = 2
    >>> lab[6:14, 6:14, 6:14] = 4
    >>> ct = pseudo_ct(Volume(lab, np.eye(4)), smooth_mm=0)
    >>> float(ct.data[0, 0, 0]), float(ct.data[10, 10, 10]), float(ct.data[3, 10, 10])
    (-1000.0, 35.0, 1400.0)
    """
    lab = np.asarray(labels.data)
    hu = np.full(lab.shape, HU["air"], np.float32)
    hu[lab == L.SCALP] = HU["soft"]
    hu[lab == L.CSF] = HU["csf"]
    hu[lab == L.BRAIN] = HU["brain"]
    skull = lab == L.SKULL
    hu[skull] = HU["cortical"]
    depth_mm = distance_inside_mm(skull, labels.zooms_mm) - 0.5 * min(labels.zooms_mm)
    deep = skull & (depth_mm > diploe_depth_mm)  # from voxel centre to the skull's surface
    if image is not None:
        t1 = _on_grid(image, labels)
        wm = _white_matter_level(t1, lab)
        if wm > 0:
            deep &= t1 > _diploe_threshold(t1, lab, skull, wm)
            hu[(lab == L.SCALP) & (t1 > 0.85 * wm)] = HU["fat"]
    hu[deep] = HU["cancellous"]
    if smooth_mm > 0:
        sigma = [smooth_mm / z for z in labels.zooms_mm]
        hu = ndi.gaussian_filter(hu, sigma, mode="nearest")
    return labels.with_data(hu.astype(np.float32))


def _on_grid(image: Volume, labels: Volume) -> NDArray[np.float32]:
    """The image's values on the label grid (linear; 0 outside its field of view)."""
    out = image if image.same_grid(labels) else resample_to_grid(image, labels, order=1)
    return np.asarray(out.data, dtype=np.float32)


def _white_matter_level(t1: NDArray, lab: NDArray) -> float:
    """90th percentile of the brain label in the T1 (about the white-matter level)."""
    brain = t1[lab == L.BRAIN]
    return float(np.percentile(brain, 90)) if brain.size > 100 else 0.0


def _diploe_threshold(t1: NDArray, lab: NDArray, skull: NDArray, wm: float) -> float:
    """Midway between the dark bone (skull's 10th percentile) and the scalp's median."""
    bone = t1[skull]
    scalp = t1[lab == L.SCALP]
    dark = float(np.percentile(bone, 10)) if bone.size else 0.0
    soft = float(np.median(scalp)) if scalp.size else 0.6 * wm
    return 0.5 * (dark + soft)
