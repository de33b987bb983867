"""Head and brain masks on the working grid (isotropic, RAS-aligned).

The head mask is everything that is not outside air (:mod:`skullseg.head`, whose
functions are importable from here too); the brain mask is the connected brain
parenchyma (grey and white matter), cut free from the scalp, eyes and neck by an
erosion and grown back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .head import cut_faces, head_mask, head_threshold, skin_mask
from .intensity import fit_gmm_1d
from .morphology import (
    centre_of_mass,
    closing,
    dilate,
    erode,
    fill_holes,
    largest_component,
)
from .volume import Volume

__all__ = [
    "brain_levels_t2",
    "head_mask",
    "head_threshold",
    "skin_mask",
    "cut_faces",
    "BrainLevels",
    "brain_centre",
    "brain_levels",
    "brain_mask",
    "adaptive_brain_mask",
    "slice_heights_mm",
]

log = logging.getLogger("skullseg")


@dataclass(frozen=True)
class BrainLevels:
    """Intensity reference inside the brain (image units)."""

    wm: float  # white matter: the upper mode of the brain's centre
    lower: float  # grey matter / CSF boundary: between the head's dark and middle classes

    @property
    def dark(self) -> float:
        """Below this a voxel looks like bone, CSF or air in a T1 (0.45 x WM)."""
        return 0.45 * self.wm


def brain_centre(head: Volume, *, depth_mm: float = 85.0) -> np.ndarray:
    """A voxel-space guess of the brain centre: ``depth_mm`` below the top of the head.

    x and y come from the centre of mass of the head's upper 100 mm, so the
    neck and face do not pull it.
    """
    h = head.data > 0
    vox = head.zooms_mm[0]
    zs = np.nonzero(h.any(axis=(0, 1)))[0]
    top = zs.max()
    lo = max(zs.min(), int(top - 100.0 / vox))
    com = centre_of_mass(h[:, :, lo : top + 1])
    com[2] = max(zs.min(), top - depth_mm / vox)
    return com


def brain_levels_t2(vol: Volume, head: Volume, *, radius_mm: float = 45.0) -> BrainLevels:
    """Brain range of a T2 (or PD) image, as the :class:`BrainLevels` of a T1.

    In a T2, CSF is the brightest tissue and white matter is darker than grey
    matter; where it is much darker, :func:`brain_levels` (white matter at the
    top of the brain's range) cuts the white matter out, and
    :func:`skullseg.pipeline.segment` falls back to these levels. A 3-class
    mixture inside a sphere at the brain centre gives white matter, grey matter
    and CSF (ventricles, sulci). The brain's range runs from half-way between
    the head's dark level (5th percentile: bone, air) and white matter, up to
    30 % of the way from grey matter to CSF (partial-volume CSF in the sulci
    stays out). The returned ``wm`` is that top / 1.3, because
    :func:`brain_mask` keeps voxels below 1.3 x ``wm`` (so bone and air are
    darker than ``0.45 x wm``, as in a T1).

    Examples
    --------
    >>> i, j, k = np.indices((40, 40, 40))
    >>> r = 5.0 * np.sqrt((i - 20) ** 2 + (j - 20) ** 2 + (k - 20) ** 2)  # mm, 5 mm voxels
    >>> img = np.select([r < 10, r < 40, r < 75, r < 85], [1400.0, 450.0, 650.0, 50.0], 0.0)
    >>> vol = Volume(img.astype(np.float32), np.diag([5.0, 5.0, 5.0, 1.0]))
    >>> lv = brain_levels_t2(vol, vol.with_data((r < 85).astype(np.uint8)), radius_mm=60.0)
    >>> bool(50 < lv.lower < 450 and 650 < 1.3 * lv.wm < 1400)
    True
    """
    means, _, _ = fit_gmm_1d(_centre_values(vol, head, radius_mm), 3)
    dark = float(np.percentile(vol.data[head.data > 0], 5))
    lower = 0.5 * (dark + float(means[0]))
    upper = float(means[1] + 0.3 * (means[2] - means[1]))
    lv = BrainLevels(upper / 1.3, lower)
    log.info("brain levels (T2): brain between %.3g and %.3g", lv.lower, upper)
    return lv


def _centre_values(vol: Volume, head: Volume, radius_mm: float) -> np.ndarray:
    """Head voxel values within ``radius_mm`` of :func:`brain_centre`."""
    vox = vol.zooms_mm[0]
    c = brain_centre(head)
    r = radius_mm / vox
    lo = np.maximum(np.floor(c - r).astype(int), 0)
    hi = np.minimum(np.ceil(c + r).astype(int) + 1, vol.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    ii, jj, kk = np.ogrid[box]
    r2 = (ii - c[0]) ** 2 + (jj - c[1]) ** 2 + (kk - c[2]) ** 2
    return vol.data[box][(r2 < r**2) & (head.data[box] > 0)]


def brain_levels(vol: Volume, head: Volume, *, radius_mm: float = 45.0) -> BrainLevels:
    """White-matter level and grey-matter/CSF threshold.

    White matter is the 75th percentile inside a sphere at the brain centre,
    which holds mostly white and deep grey matter. The lower brain threshold
    is half-way between the dark (CSF, bone, air) and middle (grey matter,
    muscle) classes of a 3-class mixture over the whole head.
    """
    values = _centre_values(vol, head, radius_mm)
    means, _, _ = fit_gmm_1d(vol.data[head.data > 0], 3)
    lv = BrainLevels(float(np.percentile(values, 75)), float(0.5 * (means[0] + means[1])))
    log.info("brain levels: white matter %.3g, grey matter/CSF threshold %.3g", lv.wm, lv.lower)
    return lv


def slice_heights_mm(vol: Volume) -> np.ndarray:
    """World height (mm) of each axial slice of a grid whose third axis is world z.

    Examples
    --------
    >>> slice_heights_mm(Volume(np.zeros((2, 2, 3)), np.diag([1.0, 1.0, 2.0, 1.0])))
    array([0., 2., 4.])
    """
    return vol.affine[2, 2] * np.arange(vol.shape[2]) + vol.affine[2, 3]


def brain_mask(
    vol: Volume,
    head: Volume,
    levels: BrainLevels,
    *,
    erosion_mm: float = 4.0,
    skin_margin_mm: float = 8.0,
    lower_shift: float = 0.0,
    max_depth_below_centre_mm: float = 85.0,
    regrow_extra_mm: float = 2.0,
    allowed: np.ndarray | None = None,
    floor_z_mm: float | None = None,
) -> Volume:
    """Brain parenchyma: GM-to-WM voxels cut free by erosion, grown back, filled.

    Parameters
    ----------
    vol : Volume
        Bias-corrected image on the working grid.
    head : Volume
        Head mask.
    levels : BrainLevels
        Class means from :func:`brain_levels`.
    erosion_mm : float
        Erosion radius that breaks thin bridges to the eyes, muscles and dura.
    skin_margin_mm : float
        The brain is at least this far inside the skin.
    lower_shift : float
        Raise the lower threshold by this fraction of the white-matter level.
    max_depth_below_centre_mm : float
        Nothing deeper than this below :func:`brain_centre` is brain (cord, neck).
    regrow_extra_mm : float
        The eroded core grows back this much further than it was eroded, so
        gyral crowns far from the white matter come back.
    allowed : ndarray of bool, optional
        Where the brain may be (e.g. a dilated intracranial atlas prior).
    floor_z_mm : float, optional
        World height down to which the brain may reach although it lies deeper than
        ``max_depth_below_centre_mm`` (the registered atlas's brain in a large head).
    """
    vox = vol.zooms_mm[0]
    data = ndi.gaussian_filter(vol.data.astype(np.float32), 0.6 / vox)
    lower = levels.lower + lower_shift * levels.wm
    upper = 1.3 * levels.wm
    cand = (data > lower) & (data < upper) & erode(head.data > 0, skin_margin_mm, vox)
    # the brain ends a hand's breadth below its centre: cut the cord and the neck
    cut = np.arange(cand.shape[2]) < brain_centre(head)[2] - max_depth_below_centre_mm / vox
    if floor_z_mm is not None:
        cut &= slice_heights_mm(vol) < floor_z_mm
    cand[:, :, cut] = False
    if allowed is not None:
        cand &= allowed
    core = erode(cand, erosion_mm, vox)
    core = _central_component(core, head)
    grown = dilate(core, erosion_mm + regrow_extra_mm, vox) & cand
    grown = largest_component(grown)
    grown = closing(grown, 2.0, vox)
    grown = fill_holes(grown)
    log.info("brain mask: %.0f mL (lower threshold %.3g)", grown.sum() * vol.voxel_volume_ml, lower)
    return vol.with_data(grown.astype(np.uint8))


def _central_component(mask: np.ndarray, head: Volume) -> np.ndarray:
    """Of the large components, the one nearest the expected brain centre."""
    lab, n = ndi.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    order = np.argsort(sizes)[::-1][: min(5, n)]
    centre = brain_centre(head)
    vox = head.zooms_mm[0]
    boxes = ndi.find_objects(lab)
    coms = [centre_of_mass(lab[boxes[k - 1]] == k) + [b.start for b in boxes[k - 1]] for k in order]
    scores = [
        np.log(sizes[k]) - np.linalg.norm((np.array(c) - centre) * vox) / 40.0
        if sizes[k] >= 0.2 * sizes[order[0]]
        else -np.inf
        for k, c in zip(order, coms)
    ]
    return lab == order[int(np.argmax(scores))]


def adaptive_brain_mask(
    vol: Volume,
    head: Volume,
    levels: BrainLevels,
    *,
    shifts: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3),
    max_brain_ml: float = 1900.0,
    expected_brain_ml: float | None = None,
    max_brain_ratio: float = 1.5,
    allowed: np.ndarray | None = None,
    floor_z_mm: float | None = None,
) -> Volume:
    """Brain mask just above the mixture threshold, raised while it is implausibly big.

    A brain (grey and white matter) above ``max_brain_ml``, or above
    ``max_brain_ratio`` times ``expected_brain_ml`` where that is larger (the
    registered atlas's brain volume: a large head's brain may exceed 1900 mL; on
    the 16 real shared heads our masks are 0.95-1.36 times the atlas's), means the
    mask has leaked into the scalp or neck through bone that is not dark enough;
    each step raises the threshold by 5% of white matter. ``floor_z_mm`` goes to
    :func:`brain_mask`. The first step
    already sits 5% above the mixture's dark/middle midpoint, which keeps
    dura and partial-volume CSF out of the brain envelope. The volumes are
    checked on a 2 mm copy; the chosen threshold is applied at full resolution.
    """
    from .conform import resample_to_grid, working_grid

    coarse_grid = working_grid(vol, max(2.0, vol.zooms_mm[0]))
    small = resample_to_grid(vol, coarse_grid, order=1)
    small_head = resample_to_grid(head.with_data(head.data.astype(np.float32)), coarse_grid)
    small_head = small_head.with_data((small_head.data > 0.5).astype(np.uint8))
    small_allowed = None
    if allowed is not None:
        small_allowed = (
            resample_to_grid(vol.with_data(allowed.astype(np.float32)), coarse_grid).data > 0.5
        )
    if expected_brain_ml is not None:
        max_brain_ml = max(max_brain_ml, max_brain_ratio * expected_brain_ml)
    chosen = shifts[-1]
    for shift in shifts:
        mask = brain_mask(
            small,
            small_head,
            levels,
            lower_shift=shift,
            allowed=small_allowed,
            floor_z_mm=floor_z_mm,
        )
        if float(mask.data.sum() * small.voxel_volume_ml) <= max_brain_ml:
            chosen = shift
            break
    log.info("brain threshold: %.3g", levels.lower + chosen * levels.wm)
    return brain_mask(vol, head, levels, lower_shift=chosen, allowed=allowed, floor_z_mm=floor_z_mm)
