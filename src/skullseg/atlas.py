"""A whole-head probabilistic atlas (derived from samseg) and its affine fit to a subject.

The package data ``atlas_priors.npz`` holds a template T1 and six tissue priors on a
2 mm grid in the template's world space (MNI-like RAS mm), rasterised from FreeSurfer's
samseg whole-head atlas by ``tools/build_atlas_priors.py`` (MIT, see
``data/ATLAS_LICENSE.txt``). Nothing here imports samseg.

Transforms are 4x4 world-to-world matrices in RAS mm. :func:`register_atlas` returns
``atlas_from_subject``: it maps a point ``x`` of the subject's world to the matching
point ``T @ x`` of the atlas world, which is what resampling the atlas onto a subject
grid needs. Its inverse places atlas points in the subject.

SimpleITK works in LPS physical coordinates; :mod:`skullseg.sitkgrid` holds the bridges
(an ITK transform ``L`` becomes ``FLIP @ L @ FLIP`` in RAS).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import numpy as np
import scipy.ndimage as ndi
import SimpleITK as sitk
from numpy.typing import NDArray

from skullseg.conform import resample_to_grid, working_grid
from skullseg.morphology import centre_of_mass, fill_holes
from skullseg.parallel import itk_single_thread
from skullseg.sitkgrid import (
    FLIP,
    block_mean,
    clipped_image,
    is_unsheared,
    itk_to_matrix,
    matrix_to_itk,
    to_sitk,
)
from skullseg.volume import Volume

__all__ = ["CLASSES", "Atlas", "load_atlas", "register_atlas", "renormalised", "warp_priors"]

#: prior classes, in the order they are stored.
CLASSES: tuple[str, ...] = ("air", "brain", "csf", "skull", "soft", "eyes")
#: starting rotations (axis, degrees; 0 = x, pitch): an upright head, tilted or turned.
_TILTS = (
    [(0, 0.0)]
    + [(0, d) for d in (-45.0, -30.0, -15.0, 15.0, 30.0, 45.0)]
    + [(a, d) for a in (1, 2) for d in (-25.0, 25.0)]
)
#: and a head lying on its back, side or front, or upside down (whole-head centre only).
_TURNS = [(a, d) for a in range(3) for d in (-90.0, 90.0, 180.0)]
_SCREEN_ITERATIONS = 15


@dataclass(frozen=True)
class Atlas:
    """The template T1 and tissue priors, all on one grid in the atlas world (RAS mm).

    Attributes
    ----------
    template : Volume
        float32 template T1, 0..1.
    priors : dict of str to Volume
        float32 probabilities 0..1 of each class in :data:`CLASSES`; they sum to 1.
    info : dict
        Provenance: source atlas, class -> FreeSurfer structures, build settings.
    """

    template: Volume
    priors: dict[str, Volume]
    info: dict = field(default_factory=dict)

    def head_mask(self, level: float = 0.5) -> Volume:
        """Where the atlas expects head (any class but air) with probability > ``level``."""
        return self.template.with_data(self.priors["air"].data < 1.0 - level)


@lru_cache(maxsize=1)
def _read_npz() -> dict[str, NDArray]:
    ref = resources.files("skullseg").joinpath("data/atlas_priors.npz")
    with ref.open("rb") as fh, np.load(fh, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_atlas() -> Atlas:
    """Read the packaged atlas (cached; each call returns fresh float32 arrays).

    Returns
    -------
    Atlas
        Template and priors on the 2 mm atlas grid.
    """
    z = _read_npz()
    affine = z["affine"]
    template = Volume(z["template"].astype(np.float32) / 255.0, affine)
    names = [str(c) for c in z["classes"]]
    priors = {
        n: Volume(z["priors"][i].astype(np.float32) / 255.0, affine) for i, n in enumerate(names)
    }
    return Atlas(template, priors, json.loads(str(z["info"])))


# -- registration --------------------------------------------------------------------------------
def _foreground(vol: Volume) -> NDArray[np.bool_]:
    """A crude head mask: above a fraction of the bright level, largest part, holes filled."""
    d = vol.data
    fg = d > 0.15 * np.percentile(d, 99.0)
    fg = ndi.binary_opening(fg, iterations=1)
    lab, n = ndi.label(fg)
    if n > 1:
        fg = lab == (np.argmax(np.bincount(lab.ravel())[1:]) + 1)
    return fill_holes(fg)


def _centre(vol: Volume, mask: NDArray[np.bool_], top_mm: float | None) -> NDArray[np.float64]:
    """World centre of ``mask``, or of its part within ``top_mm`` of its highest point."""
    if top_mm is not None:
        i, j, k = np.ogrid[: vol.shape[0], : vol.shape[1], : vol.shape[2]]
        a = vol.affine[2]
        z = a[0] * i + a[1] * j + a[2] * k + a[3]
        top = np.percentile(z[mask], 99.9) if mask.any() else 0.0
        mask = mask & (z > top - top_mm)
    ijk = centre_of_mass(mask) if mask.any() else (np.asarray(vol.shape) - 1) / 2
    return vol.voxel_to_world(ijk[None])[0]


def _rotation(axis: int, deg: float) -> NDArray[np.float64]:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    i, j = [a for a in range(3) if a != axis]
    r = np.eye(4)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def _starts(
    sub: Volume,
    sub_fg: NDArray,
    atlas: Atlas,
    rotations: list[tuple[int, float]],
    top_centre: bool = True,
) -> list[NDArray]:
    """Initial subject_from_atlas matrices (RAS): centre alignments x ``rotations``.

    Centres are those of the whole head and (``top_centre``) of its top 11 cm, robust to
    a long neck; rotations are (axis, degrees) about the centres, (0, 0.0) for none.
    """
    amask = atlas.head_mask().data
    pairs = [(_centre(sub, sub_fg, None), _centre(atlas.template, amask, None))]
    if top_centre:
        pairs.append((_centre(sub, sub_fg, 110.0), _centre(atlas.template, amask, 110.0)))
    out = []
    for axis, deg in rotations:
        rot = _rotation(axis, deg)
        for cs, ca in pairs:
            m = rot.copy()
            m[:3, 3] = cs - rot[:3, :3] @ ca
            out.append(m)
    return out


def _run(
    fixed: sitk.Image,
    moving: sitk.Image,
    tx: sitk.Transform,
    levels: list[tuple[int, float]],
    seed: int,
    fixed_mask: sitk.Image | None,
    *,
    step_mm: float = 2.0,
    iterations: int = 100,
    sampling: float = 0.25,
) -> tuple[sitk.Transform, float]:
    """One multi-resolution Mattes-MI fit; ``levels`` are (shrink factor, smoothing mm)."""
    reg = sitk.ImageRegistrationMethod()
    reg.SetNumberOfThreads(1)
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(sampling, seed + 1)  # seed 0 would mean "wall clock"
    if fixed_mask is not None:
        reg.SetMetricFixedMask(fixed_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    # Learning rate re-estimated each iteration so no point moves more than step_mm.
    reg.SetOptimizerAsGradientDescent(
        learningRate=1.0,
        numberOfIterations=iterations,
        convergenceMinimumValue=1e-6,
        convergenceWindowSize=10,
        estimateLearningRate=reg.EachIteration,
        maximumStepSizeInPhysicalUnits=step_mm,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([f for f, _ in levels])
    reg.SetSmoothingSigmasPerLevel([s for _, s in levels])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(tx, inPlace=False)
    out = reg.Execute(fixed, moving)
    return out, float(reg.GetMetricValue())


def _head_dice(sub: Volume, sub_fg: NDArray, atlas: Atlas, t_ras: NDArray) -> float:
    """Dice of the subject foreground and the warped atlas head, where the atlas covers.

    Where the scalp is dark (fat-suppressed or T2-like images) the foreground is the
    intracranial space, so the better of head and intracranial overlaps counts.
    """
    warped = warp_priors(atlas, t_ras, sub, ("air", "brain", "csf"))
    inside = warped["coverage"].data > 0.99
    fg = sub_fg & inside
    best = 0.0
    for region in (warped["air"].data < 0.5, warped["brain"].data + warped["csf"].data > 0.5):
        region &= inside
        best = max(best, float(2.0 * (fg & region).sum() / max(1, fg.sum() + region.sum())))
    return best


def _similarity(m: NDArray, centre: NDArray, rigid: bool = False) -> sitk.Transform:
    """An ITK similarity (or, with ``rigid``, Euler) transform from an LPS 4x4 matrix."""
    aff = matrix_to_itk(m, centre)
    tx = sitk.Euler3DTransform() if rigid else sitk.Similarity3DTransform()
    tx.SetCenter(aff.GetCenter())
    tx.SetMatrix(aff.GetMatrix(), 1e-4)
    tx.SetTranslation(aff.GetTranslation())
    return tx


class _Fitter:
    """The fixed atlas (template and head-region mask) and the moving subject, in ITK.

    The atlas is the fixed image so that every candidate pose is scored on the same atlas
    sample points: metric values are comparable across starts. Matrices are LPS.
    """

    def __init__(self, atlas: Atlas, image: Volume, work_mm: float, seed: int) -> None:
        fixed = block_mean(atlas.template, work_mm)
        near = ndi.binary_dilation(block_mean(atlas.head_mask(), work_mm).data > 0.5, iterations=2)
        self.fixed = to_sitk(fixed)
        self.mask = sitk.Cast(to_sitk(fixed.with_data(near)), sitk.sitkUInt8)
        self.centre = (FLIP @ np.r_[_centre(fixed, near, None), 1.0])[:3]
        sub = block_mean(image, 0.75 * work_mm)
        self.moving = clipped_image(sub)
        # screening pair: pre-averaged to 2x work_mm, no smoothing, no mask (outline counts)
        self.coarse = (
            to_sitk(block_mean(atlas.template, 2 * work_mm)),
            clipped_image(block_mean(sub, 1.5 * work_mm)),
        )
        self.seed = seed

    def screen(self, m: NDArray) -> tuple[NDArray, float]:
        """Short rigid fit at 2x work_mm (no scale: it would shrink into wrong minima)."""
        tx = _similarity(m, self.centre, rigid=True)
        opts = {"step_mm": 4.0, "iterations": _SCREEN_ITERATIONS, "sampling": 0.5}
        tx, value = _run(*self.coarse, tx, [(1, 0.0)], self.seed, None, **opts)
        return itk_to_matrix(tx), value

    def similarity(self, m: NDArray) -> tuple[NDArray, float]:
        """Similarity fit (rotation, translation, isotropic scale) at 2x work_mm."""
        tx = _similarity(m, self.centre)
        opts = {"step_mm": 4.0, "iterations": 60}
        tx, value = _run(self.fixed, self.moving, tx, [(2, 4.0)], self.seed, self.mask, **opts)
        return itk_to_matrix(tx), value

    def fit(self, starts: list[NDArray], keep: int = 3) -> tuple[NDArray, float]:
        """Screen ``starts``, refine the ``keep`` best as similarities, then fit a 12-dof
        affine at 2x and 1x work_mm. Returns (LPS subject_from_atlas, metric).
        """
        screened = sorted((self.screen(m) for m in starts), key=lambda r: r[1])
        best = min((self.similarity(m) for m, _ in screened[:keep]), key=lambda r: r[1])
        aff = matrix_to_itk(best[0], self.centre)
        tx, value = _run(self.fixed, self.moving, aff, [(2, 4.0), (1, 2.0)], self.seed, self.mask)
        return itk_to_matrix(tx), value


def register_atlas(
    atlas: Atlas,
    image: Volume,
    *,
    head_mask: Volume | None = None,
    seed: int = 0,
    work_mm: float = 4.0,
) -> tuple[NDArray[np.float64], dict]:
    """Affinely register the atlas template to a subject head image (deterministic).

    Mattes mutual information (so T2 and other contrasts work too), sampled on the atlas
    head as the fixed image, so a long neck or a cut field of view in the subject does
    not matter. 31 starting poses (head centres aligned; the head upright, pitched by up
    to 45 degrees, rolled or turned by 25, or turned by 90 or 180 degrees about each
    axis) are screened with short rigid fits at 2x ``work_mm``; the 3 best are refined
    as similarities and the best of those as a 12-dof affine at 2x and 1x ``work_mm``.
    ITK runs on one thread with a fixed sampling seed, so results are reproducible.

    Parameters
    ----------
    atlas : Atlas
        From :func:`load_atlas`.
    image : Volume
        Subject image (T1 best; any grid, with or without neck, partial coverage is fine).
    head_mask : Volume, optional
        Subject head mask on any grid of the subject's world, used to centre the starting
        poses (and for ``head_dice``) instead of a crude intensity threshold.
    seed : int
        Seed of the metric's random sampling.
    work_mm : float
        Finest voxel size of the fit (mm).

    Returns
    -------
    atlas_from_subject : ndarray, shape (4, 4)
        Maps subject world RAS mm to atlas world RAS mm (see the module docstring); pass
        it to :func:`warp_priors`.
    info : dict
        ``metric`` (final Mattes MI, lower is better), ``head_dice`` (overlap of the
        subject's foreground with the registered atlas head, or with its intracranial
        space when that fits better, where the atlas covers; > 0.85 when the fit is
        sound), ``seconds``, ``n_starts``, ``scale`` (atlas-to-subject size ratio).
    """
    t0 = time.perf_counter()
    if not is_unsheared(image.affine):
        image = resample_to_grid(image, working_grid(image, min(image.zooms_mm)), order=1)
    sub = block_mean(image, 0.75 * work_mm)
    if head_mask is not None:
        mask = head_mask.with_data((head_mask.data > 0).astype(np.float32))
        sub_fg = resample_to_grid(mask, sub, order=1).data > 0.5
    else:
        sub_fg = _foreground(sub)
    starts = _starts(sub, sub_fg, atlas, _TILTS) + _starts(sub, sub_fg, atlas, _TURNS, False)
    with itk_single_thread():  # pyramid filters too: determinism
        lps, value = _Fitter(atlas, image, work_mm, seed).fit([FLIP @ m @ FLIP for m in starts])
    atlas_from_subject = np.linalg.inv(FLIP @ lps @ FLIP)
    info = {
        "metric": value,
        "head_dice": _head_dice(sub, sub_fg, atlas, atlas_from_subject),
        "seconds": time.perf_counter() - t0,
        "n_starts": len(starts),
        "scale": float(np.cbrt(abs(np.linalg.det(lps[:3, :3])))),
    }
    return atlas_from_subject, info


def warp_priors(
    atlas: Atlas,
    transform: NDArray[np.float64],
    target: Volume,
    classes: tuple[str, ...] = CLASSES,
) -> dict[str, Volume]:
    """Resample the priors onto ``target``'s grid (linear) through ``atlas_from_subject``.

    Parameters
    ----------
    atlas : Atlas
        From :func:`load_atlas`.
    transform : ndarray, shape (4, 4)
        ``atlas_from_subject`` from :func:`register_atlas` (subject RAS -> atlas RAS).
    target : Volume
        Any grid in the subject's world; only its shape and affine are used.
    classes : tuple of str
        Which priors to return (all by default).

    Returns
    -------
    dict of str to Volume
        float32 priors on ``target``'s grid, renormalised to sum to 1 (over all classes)
        wherever the atlas covers, and 0 where it does not; plus ``"coverage"``: 1 where
        the atlas grid covers the voxel, 0 where not (fractions at its edge on sheared
        grids).
    """
    wanted = [c for c in CLASSES if c in classes]
    stack = [atlas.priors[c].data for c in wanted] + [np.ones(atlas.template.shape, np.float32)]
    transform = np.asarray(transform, dtype=np.float64)
    if is_unsheared(target.affine):  # ITK: multi-threaded
        lps = matrix_to_itk(FLIP @ transform @ FLIP, np.zeros(3))
        ref = to_sitk(target, reference_only=True)
        moving = [to_sitk(atlas.template.with_data(d)) for d in stack]
        warped = [
            sitk.GetArrayFromImage(sitk.Resample(m, ref, lps, sitk.sitkLinear)) for m in moving
        ]
    else:  # the atlas grid placed in the subject's world, then scipy
        placed = np.linalg.inv(transform) @ atlas.template.affine
        warped = [resample_to_grid(Volume(d, placed), target, order=1).data for d in stack]
    return renormalised(target, wanted, warped)


def renormalised(target: Volume, wanted: list[str], warped: list[NDArray]) -> dict[str, Volume]:
    """Pulled priors (and, last in ``warped``, the pulled coverage) divided by the coverage.

    The stored priors sum to exactly 1, so linearly pulled ones sum to the coverage.
    """
    coverage = np.clip(warped[-1], 0.0, 1.0)
    scale = np.where(coverage > 1e-3, 1.0 / np.maximum(coverage, 1e-3), 0.0).astype(np.float32)
    out = {c: target.with_data(np.minimum(w * scale, 1.0)) for c, w in zip(wanted, warped[:-1])}
    out["coverage"] = target.with_data(coverage)
    return out
