"""Intensity: bias-field correction, robust scaling and a 1D tissue-class model.

MR intensities have no units; later stages express their thresholds as
fractions of tissue levels estimated with :func:`fit_gmm_1d`.
"""

from __future__ import annotations

import logging

import numpy as np
import SimpleITK as sitk
from numpy.typing import NDArray

from .parallel import itk_single_thread
from .volume import Volume

__all__ = ["n4_bias_correct", "fit_gmm_1d"]

log = logging.getLogger("skullseg")


def n4_bias_correct(
    vol: Volume,
    mask: Volume,
    *,
    shrink: int = 8,
    iterations: int = 50,
    spline_distance_mm: float = 100.0,
) -> Volume:
    """N4 bias-field correction (Tustison 2010, SimpleITK) fitted inside ``mask``.

    The field is estimated on an image shrunk by ``shrink`` and applied at
    full resolution, which keeps it to a few seconds for a 1 mm head. A strong
    field (``benchmarks/simulate.py --bias-range 0.4 0.4``: a log field with a
    standard deviation of 0.4, so about 2x between one standard deviation below
    and above) needs the 50 iterations a level: with 25 it was left in part on
    one of three simulated heads, whose brain mask lost the darkened frontal lobe.

    Parameters
    ----------
    vol : Volume
        Non-negative MR image.
    mask : Volume
        Head mask (non-zero where the field is fitted).
    shrink : int
        Integer shrink factor for the fit.
    iterations : int
        Iterations at each of the 3 fitting levels.
    spline_distance_mm : float
        B-spline control point spacing of the field (smoothness).
    """
    data = np.clip(vol.data.astype(np.float32), 0, None)
    img = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)) + 1.0)
    zoom = vol.zooms_mm
    img.SetSpacing(zoom)
    msk = sitk.GetImageFromArray(np.ascontiguousarray((mask.data > 0).astype(np.uint8).T))
    msk.CopyInformation(img)
    small = sitk.Shrink(img, [shrink] * 3)
    small_mask = sitk.Shrink(msk, [shrink] * 3)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([iterations] * 3)
    n4.SetNumberOfThreads(1)  # reductions in a fixed order: same result on any machine
    extent = np.array(small.GetSize()) * np.array(small.GetSpacing())
    n4.SetNumberOfControlPoints([int(max(4, e / spline_distance_mm + 3)) for e in extent])
    # all of it on one thread, the filters N4 runs inside included (they take the global
    # default): ITK splits B-spline fits and evaluations by region, so another thread count
    # gives a slightly different field, and --threads must not change the labels
    with itk_single_thread():
        n4.Execute(small, small_mask)
        log_field = n4.GetLogBiasFieldAsImage(img)
    field = np.exp(sitk.GetArrayFromImage(log_field).T).astype(np.float32)
    out = (data + 1.0) / np.maximum(field, 1e-3) - 1.0
    return vol.with_data(np.clip(out, 0, None).astype(np.float32))


def fit_gmm_1d(
    values: NDArray, n_classes: int, *, iterations: int = 60, n_bins: int = 4096
) -> tuple[NDArray, NDArray, NDArray]:
    """Fit a 1D Gaussian mixture by EM, initialised at quantiles (deterministic).

    EM runs on a histogram of ``n_bins`` equal bins over the values' range, which
    for millions of voxels gives the fit of all of them at the cost of a few
    thousand points.

    Returns
    -------
    means, sigmas, weights : ndarray
        Sorted by increasing mean.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(0, 1, 5000), rng.normal(10, 1, 5000)])
    >>> m, s, w = fit_gmm_1d(x, 2)
    >>> bool(abs(m[0]) < 0.2 and abs(m[1] - 10) < 0.2)
    True
    """
    values = np.asarray(values).ravel()
    counts, edges = np.histogram(values, bins=n_bins)
    x = 0.5 * (edges[1:] + edges[:-1])
    keep = counts > 0
    x, c = x[keep], counts[keep].astype(np.float64)
    cdf = np.cumsum(c) / c.sum()
    q = np.linspace(0, 1, 2 * n_classes + 1)[1::2]
    means = x[np.minimum(np.searchsorted(cdf, q), len(x) - 1)]
    mean_all = (c * x).sum() / c.sum()
    std_all = float(np.sqrt((c * (x - mean_all) ** 2).sum() / c.sum()))
    sig = np.full(n_classes, max(std_all / n_classes, 1e-6))
    w = np.full(n_classes, 1.0 / n_classes)
    for _ in range(iterations):
        ll = -0.5 * ((x[:, None] - means) / sig) ** 2 - np.log(sig) + np.log(w)
        ll -= ll.max(axis=1, keepdims=True)
        r = np.exp(ll)
        r *= (c / r.sum(axis=1))[:, None]  # responsibilities times bin counts
        nk = r.sum(axis=0) + 1e-9
        means = (r * x[:, None]).sum(axis=0) / nk
        sig = np.sqrt((r * (x[:, None] - means) ** 2).sum(axis=0) / nk) + 1e-6 * std_all
        w = nk / nk.sum()
    order = np.argsort(means)
    return means[order], sig[order], w[order]
