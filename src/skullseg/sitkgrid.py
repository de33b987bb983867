"""Volumes and SimpleITK images: the grid bridges the atlas fits share.

SimpleITK works in LPS physical coordinates: images enter ITK with x and y negated
(:data:`FLIP`, ``diag(-1, -1, 1, 1)``) and an ITK transform ``L`` becomes ``FLIP @ L @ FLIP``
in RAS. :func:`to_sitk` hands the array over without a transpose (ITK's fastest axis is
the Volume's last), and :func:`block_mean` shrinks a volume by averaging whole voxels.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from numpy.typing import NDArray

from skullseg.volume import Volume

__all__ = [
    "FLIP",
    "block_grid",
    "block_mean",
    "clipped_image",
    "is_unsheared",
    "itk_to_matrix",
    "matrix_to_itk",
    "to_sitk",
]

#: RAS <-> LPS, its own inverse.
FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])


def is_unsheared(affine: NDArray, tol: float = 1e-4) -> bool:
    """True when the affine's columns are orthogonal (what ITK's direction needs)."""
    cols = affine[:3, :3] / np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    return bool(np.allclose(cols.T @ cols, np.eye(3), atol=tol))


def to_sitk(vol: Volume, reference_only: bool = False) -> sitk.Image:
    """A float32 SimpleITK image (LPS physical space) of an unsheared Volume, no copy-transpose.

    The numpy array goes in as is: ITK's fastest axis (x) is then the Volume's last axis,
    so ITK index ``(x, y, z)`` is voxel ``(k, j, i)`` and the geometry is permuted to
    match. With ``reference_only``, an empty image on the Volume's grid (for resampling).
    """
    lps = (FLIP @ vol.affine)[:, [2, 1, 0, 3]]
    zooms = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
    if reference_only:
        img = sitk.Image([int(s) for s in vol.shape[::-1]], sitk.sitkFloat32)
    else:
        img = sitk.GetImageFromArray(np.ascontiguousarray(vol.data, dtype=np.float32))
    img.SetSpacing([float(z) for z in zooms])
    img.SetOrigin([float(o) for o in lps[:3, 3]])
    img.SetDirection([float(d) for d in (lps[:3, :3] / zooms).ravel()])
    return img


def itk_to_matrix(tx: sitk.Transform) -> NDArray[np.float64]:
    """4x4 matrix of an ITK matrix-offset transform (fixed -> moving physical points)."""
    tx = tx.Downcast()
    if isinstance(tx, sitk.CompositeTransform):
        tx = tx.GetNthTransform(0).Downcast()
    m = np.eye(4)
    m[:3, :3] = np.reshape(tx.GetMatrix(), (3, 3))
    centre = np.asarray(tx.GetCenter())
    m[:3, 3] = np.asarray(tx.GetTranslation()) + centre - m[:3, :3] @ centre
    return m


def matrix_to_itk(m: NDArray[np.float64], centre: NDArray[np.float64]) -> sitk.AffineTransform:
    """An ITK affine transform about ``centre`` that maps points as the 4x4 ``m`` does.

    Examples
    --------
    >>> m = np.eye(4); m[:3, 3] = [1.0, 2.0, 3.0]
    >>> matrix_to_itk(m, np.array([5.0, 0.0, 0.0])).TransformPoint((0.0, 0.0, 0.0))
    (1.0, 2.0, 3.0)
    """
    tx = sitk.AffineTransform(3)
    tx.SetCenter([float(c) for c in centre])
    tx.SetMatrix([float(v) for v in m[:3, :3].ravel()])
    tx.SetTranslation([float(v) for v in m[:3, 3] + m[:3, :3] @ centre - centre])
    return tx


def block_grid(vol: Volume, target_mm: float) -> tuple[list[int], list[int], NDArray]:
    """Block factors, shape and affine of :func:`block_mean`'s grid (factors 1 if too small)."""
    f = [max(1, int(target_mm / z + 0.25)) for z in vol.zooms_mm]
    shape = [s // k for s, k in zip(vol.shape, f)]
    if min(shape) < 2:
        return [1, 1, 1], list(vol.shape), vol.affine
    step = np.diag([*map(float, f), 1.0])
    step[:3, 3] = (np.asarray(f) - 1) / 2.0
    return f, shape, vol.affine @ step


def block_mean(vol: Volume, target_mm: float) -> Volume:
    """Average blocks of whole voxels so that each edge approaches ``target_mm``.

    Examples
    --------
    >>> v = block_mean(Volume(np.arange(64.0).reshape(4, 4, 4), np.eye(4)), 2.0)
    >>> v.shape, float(v.data[0, 0, 0]), float(v.affine[0, 3])
    ((2, 2, 2), 10.5, 0.5)
    """
    f, shape, affine = block_grid(vol, target_mm)
    if f == [1, 1, 1]:
        return Volume(vol.data.astype(np.float32), affine)
    data = vol.data[: shape[0] * f[0], : shape[1] * f[1], : shape[2] * f[2]].astype(np.float32)
    data = data.reshape(shape[0], f[0], shape[1], f[1], shape[2], f[2]).mean(axis=(1, 3, 5))
    return Volume(data, affine)


def clipped_image(vol: Volume) -> sitk.Image:
    """:func:`to_sitk` of ``vol`` clipped to its 0.5th-99.5th percentiles (for a metric)."""
    lo, hi = np.percentile(vol.data, [0.5, 99.5])
    return to_sitk(vol.with_data(np.clip(vol.data, lo, hi)))
