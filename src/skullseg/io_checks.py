"""Checks that an input image can hold a head, each failing with one line that names the file.

:func:`skullseg.io.load_volume` runs them in this order: the dimensions (3D, or 4D with one
volume chosen) and the declared size (no gzip bomb, no truncated file) from the header alone;
then the geometry (a finite, non-singular affine, plausible voxels, a field of view large
enough for a head); the voxel values last (non-finite voxels, a constant image).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from .errors import InputError

__all__ = [
    "VOXEL_MM_RANGE",
    "MIN_EXTENTS_MM",
    "MAX_NONFINITE_FRACTION",
    "check_dims",
    "check_declared_size",
    "check_geometry",
    "check_values",
    "zooms_mm",
]

log = logging.getLogger("skullseg")

#: Plausible voxel edge lengths (mm).
VOXEL_MM_RANGE = (0.1, 10.0)
#: Minimum field of view (mm), axes sorted by extent: two axes of at least 80 mm and a third of
#: at least 20 mm, so that partial-coverage slabs of a head still pass.
MIN_EXTENTS_MM = (80.0, 80.0, 20.0)
#: Refuse images with more than this fraction of NaN/infinite voxels (fewer are set to 0).
MAX_NONFINITE_FRACTION = 0.5


class DeclaredHeader(Protocol):
    """What :func:`check_declared_size` reads of a header."""

    raw_shape: tuple[int, ...]
    dtype: np.dtype
    data_bytes: int | None


def check_dims(path: Path, raw_shape: tuple[int, ...], volume_index: int | None) -> int:
    """3D, or 4D with one volume chosen; returns the volume index."""
    dims = _fmt_dims(raw_shape)
    if 0 in raw_shape:
        raise InputError(f"{path}: image has no voxels (shape {dims})")
    spatial = [s for s in raw_shape[:3] if s > 1]
    if len(spatial) < 3:
        shown = _fmt_dims(spatial) or dims
        raise InputError(f"{path}: {len(spatial)}D image ({shown}); a 3D head volume is needed")
    n_volumes = math.prod(raw_shape[3:])
    if n_volumes > 1 and len(raw_shape) > 4:
        raise InputError(f"{path}: {len(raw_shape)}D image ({dims}); a 3D or 4D image is needed")
    if volume_index is None:
        if n_volumes > 1:
            raise InputError(
                f"{path}: 4D image with {n_volumes} volumes; choose one with --volume N"
            )
        return 0
    if not 0 <= volume_index < n_volumes:
        raise InputError(
            f"{path}: volume {volume_index} does not exist "
            f"(the image has {n_volumes} volume(s), numbered from 0)"
        )
    return volume_index


def check_declared_size(path: Path, header: DeclaredHeader, max_voxels: int) -> None:
    """Refuse oversized declarations (gzip bombs) and uncompressed files shorter than declared."""
    n_voxels = math.prod(header.raw_shape)
    n_bytes = n_voxels * header.dtype.itemsize
    if n_voxels > max_voxels:
        root = round(max_voxels ** (1 / 3))
        limit = f"{root}^3" if root**3 == max_voxels else f"{max_voxels:,}"
        raise InputError(
            f"{path}: decompressed size {_fmt_bytes(n_bytes)} exceeds the limit of {limit} voxels"
        )
    if header.data_bytes is not None and header.data_bytes < n_bytes:
        raise InputError(
            f"{path}: header says {_fmt_dims(header.raw_shape)} {header.dtype.name} "
            f"({_fmt_bytes(n_bytes)}) but the file holds only "
            f"{_fmt_bytes(max(header.data_bytes, 0))}"
        )


def check_geometry(path: Path, affine: NDArray, shape3: tuple[int, int, int]) -> None:
    """Finite, non-singular affine; voxel size in 0.1-10 mm; field of view large enough.

    Examples
    --------
    >>> check_geometry(Path("head.nii.gz"), np.eye(4), (256, 256, 170))  # passes
    >>> try:
    ...     check_geometry(Path("slab.nii.gz"), np.eye(4), (256, 256, 10))
    ... except InputError as e:
    ...     print(e)
    slab.nii.gz: image of 256x256x10 voxels (25.6x25.6x1 cm) is too small to hold a head
    """
    if not np.all(np.isfinite(affine)):
        raise InputError(f"{path}: voxel-to-world affine contains NaN or infinite values")
    zooms = zooms_mm(affine)
    lo, hi = VOXEL_MM_RANGE
    if np.any(zooms < lo * (1 - 1e-6)) or np.any(zooms > hi * (1 + 1e-6)):
        raise InputError(
            f"{path}: voxel size {_fmt_dims(zooms, decimal=True)} mm is not plausible "
            f"(need {lo:g}–{hi:g} mm)"
        )
    if abs(np.linalg.det(affine[:3, :3])) < 1e-6 * float(np.prod(zooms)):
        raise InputError(
            f"{path}: voxel-to-world affine is singular (voxel axes are not independent)"
        )
    extents = np.asarray(shape3) * zooms
    if np.any(np.sort(extents)[::-1] < np.asarray(MIN_EXTENTS_MM)):
        cm = _fmt_dims(np.round(extents / 10.0, 1))
        raise InputError(
            f"{path}: image of {_fmt_dims(shape3)} voxels ({cm} cm) is too small to hold a head"
        )


def check_values(path: Path, data: NDArray[np.float32]) -> NDArray[np.float32]:
    """Set NaN/infinite voxels to 0 (refusing mostly non-finite images); refuse constant ones."""
    bad = ~np.isfinite(data)
    n_bad = int(np.count_nonzero(bad))
    percent = 100.0 * n_bad / data.size
    if n_bad > MAX_NONFINITE_FRACTION * data.size:
        raise InputError(
            f"{path}: {percent:.1f}% of voxels are NaN or infinite "
            f"(more than {100 * MAX_NONFINITE_FRACTION:g}%)"
        )
    if n_bad:
        log.warning("%s: %d NaN or infinite voxels (%.2f%%) replaced by 0", path, n_bad, percent)
        data = np.where(bad, np.float32(0.0), data)
    if data.min() == data.max():
        raise InputError(f"{path}: image is constant (all voxels = {float(data.min()):g})")
    return data


def zooms_mm(affine: NDArray) -> NDArray[np.float64]:
    """Voxel edge lengths (mm) of a voxel-to-world affine."""
    return np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))


def _fmt_dims(values, decimal: bool = False) -> str:
    """``256x256x51`` text; with ``decimal``, every number shows a decimal point (``0.0x1.0``)."""
    out = []
    for v in map(float, values):
        text = str(int(v)) if v.is_integer() and not decimal else f"{v:.3g}"
        if decimal and not any(c in text for c in ".ein"):
            text += ".0"
        out.append(text)
    return "x".join(out)


def _fmt_bytes(n: float) -> str:
    power = min(int(math.log(max(n, 1), 1024)), 5)
    return f"{n} bytes" if power == 0 else f"{n / 1024**power:.1f} {' kMGTP'[power]}B"
