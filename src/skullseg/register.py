"""Rigid registration of a second MR contrast (T2, PD) to the T1, and a pairing check.

World coordinates are RAS millimetres, as everywhere in skullseg; ITK works
in LPS, so images cross over with the x and y axes of the affine negated and
the transform comes back through the same flip. Registration maximises
Mattes mutual information over 6 rigid parameters, coarse to fine, with a
fixed sampling seed and one thread, so the same inputs give the same result.
"""

from __future__ import annotations

import logging

import numpy as np
import SimpleITK as sitk
from numpy.typing import NDArray
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from .conform import resample_to_grid
from .errors import InputError
from .morphology import fill_holes
from .sitkgrid import FLIP
from .volume import Volume

__all__ = ["to_sitk", "register_rigid", "normalised_mutual_information", "check_pairing"]

log = logging.getLogger("skullseg")


def to_sitk(vol: Volume) -> sitk.Image:
    """A float32 SimpleITK image with the geometry of ``vol`` (RAS affine -> LPS header).

    Examples
    --------
    >>> affine = np.diag([2.0, 2.0, 2.0, 1.0])
    >>> affine[:3, 3] = [10.0, 20.0, 30.0]  # RAS
    >>> img = to_sitk(Volume(np.zeros((4, 5, 6), np.float32), affine))
    >>> img.GetSize(), img.GetOrigin(), img.GetDirection()[0]
    ((4, 5, 6), (-10.0, -20.0, 30.0), -1.0)
    """
    lps = FLIP @ vol.affine
    spacing = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
    img = sitk.GetImageFromArray(
        np.ascontiguousarray(vol.data.astype(np.float32).transpose(2, 1, 0))
    )
    img.SetSpacing([float(s) for s in spacing])
    img.SetDirection([float(v) for v in (lps[:3, :3] / spacing).ravel()])
    img.SetOrigin([float(v) for v in lps[:3, 3]])
    return img


def _transform_matrix(tx: sitk.Transform, centre: NDArray) -> NDArray[np.float64]:
    """4x4 LPS matrix of a linear ITK transform (fixed points -> moving points).

    Read off the images of a centre and three points 100 mm from it, so it works
    for any linear transform (a composite one included).
    """
    c = np.asarray(centre, dtype=np.float64)
    pts = np.vstack([c, c + 100.0 * np.eye(3)])
    out = np.array([tx.TransformPoint([float(v) for v in p]) for p in pts])
    m = np.eye(4)
    m[:3, :3] = (out[1:] - out[0]).T / 100.0
    m[:3, 3] = out[0] - m[:3, :3] @ c
    return m


def _bin_shrink(img: sitk.Image, voxel_mm: float) -> sitk.Image:
    """Block-average ``img`` to voxels of about ``voxel_mm`` (unchanged when already as coarse)."""
    factors = [max(1, int(round(voxel_mm / s))) for s in img.GetSpacing()]
    return sitk.BinShrink(img, factors) if max(factors) > 1 else img


def _head_mask(data: NDArray) -> NDArray[np.bool_]:
    """A rough head mask: above half of Otsu's threshold, largest component, filled."""
    d = np.asarray(data, dtype=np.float32)
    sample = d.ravel()[:: max(1, d.size // 1_000_000)]
    if float(sample.max()) <= float(sample.min()):
        return np.zeros(d.shape, bool)
    m = ndi.gaussian_filter(d, 1.0) > 0.5 * float(threshold_otsu(sample))
    lab, n = ndi.label(m)
    if n == 0:
        return m
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return fill_holes(lab == int(np.argmax(sizes)))


def normalised_mutual_information(a: NDArray, b: NDArray, mask: NDArray, bins: int = 32) -> float:
    """Studholme's NMI, (H(a) + H(b)) / H(a, b), over ``mask``: 1 independent, 2 identical.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(20, 20, 20))
    >>> m = np.ones(x.shape, bool)
    >>> round(normalised_mutual_information(x, x, m), 2)
    2.0
    """
    x, y = np.asarray(a)[mask], np.asarray(b)[mask]
    if x.size < 100:
        return float("nan")
    edges = [np.quantile(v, np.linspace(0, 1, bins + 1)) for v in (x, y)]
    ix = np.clip(np.searchsorted(edges[0], x, side="right") - 1, 0, bins - 1)
    iy = np.clip(np.searchsorted(edges[1], y, side="right") - 1, 0, bins - 1)
    joint = np.bincount(ix * bins + iy, minlength=bins * bins).astype(np.float64) / x.size

    def entropy(p: NDArray) -> float:
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    joint = joint.reshape(bins, bins)
    return (entropy(joint.sum(1)) + entropy(joint.sum(0))) / max(entropy(joint.ravel()), 1e-12)


def register_rigid(
    moving: Volume,
    fixed: Volume,
    *,
    seed: int = 0,
    sampling_fraction: float = 0.05,
    max_samples: int = 100_000,
    shrink_factors: tuple[int, ...] = (4, 2, 1),
    smoothing_mm: tuple[float, ...] = (2.0, 1.0, 0.0),
    finest_mm: float = 2.0,
    iterations: int = 200,
) -> tuple[Volume, NDArray[np.float64], dict]:
    """Rigidly register ``moving`` (e.g. a T2) to ``fixed`` (the T1) by mutual information.

    Mattes mutual information (50 bins), regular sampling of
    ``sampling_fraction`` of the voxels (at most ``max_samples`` per level) with
    a fixed ``seed``, one thread
    (deterministic), three resolution levels of images block-averaged to
    about ``finest_mm`` voxels, regular-step gradient descent
    over the 6 rigid parameters. The transform starts from the centres of
    the two images, or from their intensity centroids when those are more
    than 20 mm further apart than the geometric centres.

    Parameters
    ----------
    moving, fixed : Volume
        Any orientations, voxel sizes and fields of view.
    seed : int
        Seed of the metric sampling.

    Returns
    -------
    resampled : Volume
        ``moving`` resampled (linear) onto ``fixed``'s grid; 0 outside its field of view.
    fixed_from_moving : ndarray, shape (4, 4)
        World (RAS mm) transform that carries moving-image positions onto the fixed
        image: ``Volume(moving.data, fixed_from_moving @ moving.affine)`` is aligned.
    quality : dict
        ``metric`` (final Mattes MI, negative: lower is better), ``nmi`` and
        ``correlation`` of the two images inside the fixed head mask, ``overlap``
        (share of the fixed head inside the moving field of view), ``rotation_deg``,
        ``translation_mm`` (how far the transform moves the fixed grid's centre),
        ``initialisation``, ``iterations`` and ``stop`` (the optimizer's reason).

    Examples
    --------
    >>> from skullseg.phantom import make_phantom
    >>> ph = make_phantom(4.0)
    >>> out, m, q = register_rigid(ph.t2, ph.t1)  # doctest: +SKIP
    >>> q["rotation_deg"] < 1.0  # doctest: +SKIP
    True
    """
    f_img, m_img = to_sitk(fixed), to_sitk(moving)
    init = sitk.CenteredTransformInitializer(
        f_img, m_img, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.GEOMETRY
    )
    how = "geometry"
    moments = sitk.CenteredTransformInitializer(
        f_img, m_img, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    shift = np.linalg.norm(
        np.subtract(sitk.Euler3DTransform(init).GetTranslation(), moments.GetTranslation())
    )
    if shift > 20.0:
        init, how = moments, "moments"

    reg = sitk.ImageRegistrationMethod()
    reg.SetNumberOfThreads(1)
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
    reg.SetMetricSamplingStrategy(reg.REGULAR)
    f_small, m_small = _bin_shrink(f_img, finest_mm), _bin_shrink(m_img, finest_mm)
    n_vox = float(np.prod(f_small.GetSize()))
    fractions = [min(sampling_fraction, max_samples * f**3 / n_vox) for f in shrink_factors]
    reg.SetMetricSamplingPercentagePerLevel(fractions, seed + 1)  # ITK: seed 0 = wall clock
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0,
        minStep=1e-3,
        numberOfIterations=iterations,
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-6,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(shrink_factors))
    reg.SetSmoothingSigmasPerLevel(list(smoothing_mm))
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(sitk.Euler3DTransform(init), inPlace=False)
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        tx = reg.Execute(f_small, m_small)
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    moving_from_fixed = (
        FLIP @ _transform_matrix(tx, FLIP[:3, :3] @ fixed.center_world()) @ FLIP
    )  # RAS, fixed -> moving points
    fixed_from_moving = np.linalg.inv(moving_from_fixed)

    aligned = Volume(moving.data, fixed_from_moving @ moving.affine)
    resampled = resample_to_grid(aligned, fixed, order=1, cval=0.0)
    resampled = resampled.with_data(resampled.data.astype(np.float32))
    ones = Volume(np.ones(moving.shape, np.uint8), aligned.affine)
    inside = resample_to_grid(ones, fixed, order=0).data > 0

    head = _head_mask(fixed.data)
    in_head = head & inside
    overlap = float(in_head.sum() / max(head.sum(), 1))
    nmi = normalised_mutual_information(fixed.data, resampled.data, in_head)
    x, y = fixed.data[in_head].astype(np.float64), resampled.data[in_head].astype(np.float64)
    corr = float(np.corrcoef(x, y)[0, 1]) if x.size > 100 and x.std() > 0 and y.std() > 0 else 0.0
    rot = moving_from_fixed[:3, :3]
    c = fixed.center_world()
    centre_shift = fixed_from_moving[:3, :3] @ c + fixed_from_moving[:3, 3] - c
    angle = float(np.degrees(np.arccos(np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0))))
    quality = {
        "metric": float(reg.GetMetricValue()),
        "nmi": nmi,
        "correlation": corr,
        "overlap": overlap,
        "rotation_deg": angle,
        "translation_mm": float(np.linalg.norm(centre_shift)),
        "initialisation": how,
        "iterations": int(reg.GetOptimizerIteration()),
        "stop": reg.GetOptimizerStopConditionDescription(),
    }
    log.info(
        "registration: MI %.3f, NMI %.3f, overlap %.2f, rotation %.1f deg, translation %.1f mm",
        quality["metric"],
        nmi,
        overlap,
        angle,
        quality["translation_mm"],
    )
    return resampled, fixed_from_moving, quality


def _extent_mm(mask: NDArray[np.bool_], affine: NDArray) -> NDArray[np.float64]:
    """World (RAS) bounding-box size of a mask in mm along x, y, z (zeros when empty)."""
    idx = np.argwhere(mask)
    if idx.size == 0:
        return np.zeros(3)
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    lo, hi = idx.min(0), idx.max(0)
    pts = np.where(corners, hi, lo) @ affine[:3, :3].T + affine[:3, 3]
    return pts.max(0) - pts.min(0)


def _fmt(extent: NDArray) -> str:
    return " x ".join(f"{v:.0f}" for v in extent)


def check_pairing(
    t1: Volume,
    second: Volume,
    result_quality: dict,
    *,
    resampled: Volume | None = None,
    min_overlap: float = 0.5,
    max_extent_change: float = 0.2,
    min_nmi: float = 1.02,
) -> list[str]:
    """Reject an obviously mismatched T1 / second-contrast pair; warn about doubtful ones.

    Raises :class:`~skullseg.errors.InputError` when the registered fields of view
    hardly overlap (``overlap`` < ``min_overlap``), when the heads' left-right or
    front-back sizes differ by more than ``max_extent_change`` (another subject, a
    wrong voxel size), when, registered, the second image's head extent differs from
    the T1's by as much along any axis (it covers only part of the head) or when the
    normalised mutual information is below ``min_nmi`` (no shared anatomy).

    Parameters
    ----------
    t1, second : Volume
        The fixed T1 and the second contrast as given (native grid).
    result_quality : dict
        The quality dict of :func:`register_rigid`.
    resampled : Volume, optional
        The registered second image on the T1 grid; with it the head extents are
        compared in the T1's frame (only the common field of view counts).

    Returns
    -------
    list of str
        Warnings (partial overlap, weak similarity, large motion).

    Examples
    --------
    >>> from skullseg.phantom import make_phantom
    >>> ph = make_phantom(4.0)
    >>> check_pairing(ph.t1, ph.t2, {"overlap": 1.0, "nmi": 1.3, "rotation_deg": 0.0})
    []
    """
    warnings: list[str] = []
    overlap = float(result_quality.get("overlap", 1.0))
    nmi = float(result_quality.get("nmi", 2.0))
    if overlap < min_overlap:
        raise InputError(
            f"second image: covers only {overlap:.0%} of the T1 head after registration "
            "(different field of view or not the same head)"
        )
    if overlap < 0.9:
        warnings.append(f"second image covers {overlap:.0%} of the T1 head")
    head_t1 = _head_mask(t1.data)
    ext_t1 = _extent_mm(head_t1, t1.affine)
    ext_2 = _extent_mm(_head_mask(second.data), second.affine)
    # left-right and front-back head size, each image in full: another head or voxel size
    change = np.abs(ext_2[:2] - ext_t1[:2]) / np.maximum(ext_t1[:2], 1.0)
    if float(change.max()) > max_extent_change:
        raise InputError(
            f"second image: head {_fmt(ext_2[:2])} mm (left-right x front-back) against "
            f"{_fmt(ext_t1[:2])} mm in the T1 (different subject or wrong voxel size)"
        )
    if resampled is not None:  # in the T1's frame: the second image covers part of the head
        ext_r = _extent_mm(_head_mask(resampled.data), resampled.affine)
        change = np.abs(ext_r - ext_t1) / np.maximum(ext_t1, 1.0)
        if float(change.max()) > max_extent_change:
            raise InputError(
                f"second image: registered head extent {_fmt(ext_r)} mm against "
                f"{_fmt(ext_t1)} mm in the T1 (the fields of view differ)"
            )
    if not np.isfinite(nmi) or nmi < min_nmi:
        raise InputError(
            f"second image: normalised mutual information with the T1 is {nmi:.3f} "
            "(the images do not look like the same head)"
        )
    if nmi < min_nmi + 0.02:
        warnings.append(f"weak similarity to the T1 (NMI {nmi:.3f})")
    if float(result_quality.get("rotation_deg", 0.0)) > 30.0:
        warnings.append(
            f"large rotation between the images ({result_quality['rotation_deg']:.0f} deg)"
        )
    return warnings
