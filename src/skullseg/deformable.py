"""A deformable (B-spline) refinement of the affine atlas fit, and the priors it warps.

The affine fit (:func:`skullseg.atlas.register_atlas`) places the atlas's head, brain and
skull to within several millimetres; at the skull base, where the cisterns, the clivus
and the occipital bone lie a few millimetres apart, that is not sharp enough. Here a
cubic B-spline with control points every ``control_spacing_mm`` (40 mm: a few dozen
per axis, so only the head's shape, not its folding, is fitted) refines it by Mattes
mutual information between the subject (fixed, inside its head mask) and the atlas
template (moving), at 8 then 4 mm. The result is kept as a displacement field on the
4 mm grid. Mutual information cannot tell CSF from bone in a T1, but it aligns the brain,
the scalp and the face, and with them the atlas's cisterns and skull base.

Measured (BENCHMARKS.md, session 14, with a slower 3 mm fit): the warped skull prior's
overlap with the reference bone went 0.62 -> 0.67 on mne_sample and 0.63 -> 0.69 on colin27
(prior > 0.5), and its intracranial prior 0.951 -> 0.961 and 0.960 -> 0.964.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi
import SimpleITK as sitk
from numpy.typing import NDArray

from skullseg.atlas import CLASSES, Atlas, renormalised, warp_priors
from skullseg.conform import resample_to_grid
from skullseg.parallel import itk_single_thread
from skullseg.sitkgrid import (
    FLIP,
    block_grid,
    block_mean,
    clipped_image,
    is_unsheared,
    matrix_to_itk,
    to_sitk,
)
from skullseg.volume import Volume

__all__ = ["AtlasWarp", "refine_atlas_fit", "warp_priors_deformable"]

log = logging.getLogger("skullseg")


@dataclass(frozen=True)
class AtlasWarp:
    """An affine atlas fit plus a smooth displacement in the subject's world.

    A subject point ``x`` (world RAS mm) maps to the atlas point
    ``atlas_from_subject @ (x + u(x))``, ``u`` interpolated linearly in
    ``displacement_mm`` on ``grid``.

    Attributes
    ----------
    atlas_from_subject : ndarray, shape (4, 4)
        The affine fit (subject RAS -> atlas RAS), as from :func:`register_atlas`.
    grid : Volume
        A coarse grid of the subject's world (its data is unused).
    displacement_mm : ndarray, shape ``grid.shape + (3,)``
        float32 ``u`` in RAS mm at each point of ``grid``.
    """

    atlas_from_subject: NDArray[np.float64]
    grid: Volume
    displacement_mm: NDArray[np.float32]

    @property
    def max_displacement_mm(self) -> float:
        """The largest displacement on the grid (mm)."""
        return float(np.sqrt((self.displacement_mm**2).sum(axis=-1)).max())


def _field_transform(warp: AtlasWarp) -> sitk.Transform:
    """The ITK transform (subject LPS -> atlas LPS) of ``warp``: field, then affine."""
    lps = warp.displacement_mm * np.array([-1.0, -1.0, 1.0], np.float32)  # RAS -> LPS
    ref = to_sitk(warp.grid, reference_only=True)
    # the array's axes are the Volume's, as to_sitk expects; components are physical
    field = sitk.GetImageFromArray(np.ascontiguousarray(lps, np.float64), isVector=True)
    field.CopyInformation(ref)
    dft = sitk.DisplacementFieldTransform(field)
    aff = matrix_to_itk(FLIP @ warp.atlas_from_subject @ FLIP, np.zeros(3))
    return sitk.CompositeTransform([aff, dft])


def refine_atlas_fit(
    atlas: Atlas,
    image: Volume,
    atlas_from_subject: NDArray[np.float64],
    head_mask: Volume,
    *,
    control_spacing_mm: float = 40.0,
    work_mm: float = 4.0,
    iterations: int = 15,
    sampling: float = 0.05,
    max_displacement_mm: float = 25.0,
    seed: int = 0,
) -> tuple[AtlasWarp | None, dict]:
    """Refine an affine atlas fit with a cubic B-spline (deterministic: one ITK thread).

    Parameters
    ----------
    atlas : Atlas
        From :func:`skullseg.atlas.load_atlas`.
    image : Volume
        The subject image the affine fit was made on (unsheared grid).
    atlas_from_subject : ndarray, shape (4, 4)
        The affine fit from :func:`skullseg.atlas.register_atlas`.
    head_mask : Volume
        Subject head mask (any grid of the subject's world): where the metric is sampled.
    control_spacing_mm : float
        Spacing of the B-spline's control points (mm).
    work_mm : float
        Finest voxel size of the fit (mm); the first level is at twice that.
    iterations : int
        L-BFGS-B iterations per level.
    sampling : float
        Share of the head's voxels sampled by the metric (fixed seed).
    max_displacement_mm : float
        A refinement that moves any point further than this is taken as a failure.
    seed : int
        Seed of the metric's random sampling.

    Returns
    -------
    warp : AtlasWarp or None
        None when the refinement did not improve the metric, moved too far, or failed;
        then the affine fit alone should be used.
    info : dict
        ``seconds``, ``metric_before``, ``metric_after``, ``max_displacement_mm``,
        ``accepted``.

    Examples
    --------
    >>> from skullseg.atlas import load_atlas, register_atlas  # doctest: +SKIP
    >>> t, _ = register_atlas(load_atlas(), t1, head_mask=head)  # doctest: +SKIP
    >>> warp, info = refine_atlas_fit(load_atlas(), t1, t, head)  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    info: dict = {"accepted": False}
    if not is_unsheared(image.affine):
        return None, info | {"reason": "sheared grid"}
    sub = block_mean(image, work_mm)
    fixed = clipped_image(sub)
    mask = head_mask.with_data((head_mask.data > 0).astype(np.float32))
    near = ndi.binary_dilation(resample_to_grid(mask, sub, order=1).data > 0.5, iterations=2)
    if near.sum() < 1000:
        return None, info | {"reason": "head mask too small"}
    moving = to_sitk(atlas.template)
    aff = matrix_to_itk(FLIP @ np.asarray(atlas_from_subject) @ FLIP, np.zeros(3))
    extent = np.asarray(fixed.GetSize()) * np.asarray(fixed.GetSpacing())
    mesh = [max(2, int(round(e / control_spacing_mm))) for e in extent]
    bspline = sitk.BSplineTransformInitializer(fixed, mesh, order=3)
    reg = sitk.ImageRegistrationMethod()
    reg.SetNumberOfThreads(1)
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(sampling, seed + 1)  # seed 0 would mean "wall clock"
    fixed_mask = to_sitk(sub.with_data(near.astype(np.float32)))
    reg.SetMetricFixedMask(sitk.Cast(fixed_mask, sitk.sitkUInt8))
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsLBFGSB(
        gradientConvergenceTolerance=1e-5,
        numberOfIterations=iterations,
        maximumNumberOfCorrections=5,
        maximumNumberOfFunctionEvaluations=4 * iterations,
        costFunctionConvergenceFactor=1e7,
    )
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([2.0 * work_mm, 0.5 * work_mm])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetMovingInitialTransform(aff)
    reg.SetInitialTransform(bspline, inPlace=True)
    try:
        with itk_single_thread():  # pyramid filters too: determinism
            before = float(reg.MetricEvaluate(fixed, moving))
            reg.Execute(fixed, moving)
            after = float(reg.MetricEvaluate(fixed, moving))
    except RuntimeError as exc:  # ITK: e.g. too few samples in the mask
        log.info("atlas: B-spline refinement failed (%s); affine fit kept", exc)
        return None, info | {"reason": str(exc).splitlines()[0]}
    field = sitk.TransformToDisplacementField(
        bspline,
        sitk.sitkVectorFloat64,
        fixed.GetSize(),
        fixed.GetOrigin(),
        fixed.GetSpacing(),
        fixed.GetDirection(),
    )
    lps = sitk.GetArrayFromImage(field).astype(np.float32)  # (k, j, i) order = Volume axes
    ras = lps * np.array([-1.0, -1.0, 1.0], np.float32)
    warp = AtlasWarp(np.asarray(atlas_from_subject, np.float64), sub, ras)
    info |= {
        "seconds": time.perf_counter() - t0,
        "metric_before": before,
        "metric_after": after,
        "max_displacement_mm": warp.max_displacement_mm,
        "control_points": mesh,
    }
    if not after < before or warp.max_displacement_mm > max_displacement_mm:
        log.info("atlas: B-spline refinement rejected (%s); affine fit kept", info)
        return None, info
    info["accepted"] = True
    return warp, info


def warp_priors_deformable(
    atlas: Atlas,
    warp: AtlasWarp,
    target: Volume,
    classes: tuple[str, ...] = CLASSES,
    *,
    step_mm: float = 2.0,
) -> dict[str, Volume]:
    """Resample the priors onto ``target``'s grid through ``warp``.

    Like :func:`skullseg.atlas.warp_priors` (same keys, ``"coverage"`` included, priors
    renormalised), but through the deformable fit. The priors are pulled through the
    field onto a ``step_mm`` grid (the atlas's own resolution) and then interpolated
    linearly onto ``target``: a few seconds for a 256³ grid, where pulling every voxel
    through the field would take ten times as long.

    Examples
    --------
    >>> warp, _ = refine_atlas_fit(atlas, t1, transform, head)  # doctest: +SKIP
    >>> priors = warp_priors_deformable(atlas, warp, t1, ("csf", "skull"))  # doctest: +SKIP
    >>> sorted(priors)  # doctest: +SKIP
    ['coverage', 'csf', 'skull']
    """
    if not is_unsheared(target.affine):
        return warp_priors(atlas, warp.atlas_from_subject, target, classes)
    wanted = [c for c in CLASSES if c in classes]
    tx = _field_transform(warp)
    _, shape, affine = block_grid(target, step_mm)
    coarse = to_sitk(Volume(np.zeros(shape, np.uint8), affine), reference_only=True)
    ref = to_sitk(target, reference_only=True)
    stack = [atlas.priors[c].data for c in wanted] + [np.ones(atlas.template.shape, np.float32)]
    warped = []
    for d in stack:
        mid = sitk.Resample(to_sitk(atlas.template.with_data(d)), coarse, tx, sitk.sitkLinear)
        fine = sitk.Resample(
            mid, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32, True
        )  # nearest-neighbour extrapolation at the grid's edge
        warped.append(sitk.GetArrayFromImage(fine))
    return renormalised(target, wanted, warped)
