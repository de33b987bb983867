"""Tissue labels from the nested surfaces: scalp, skull, CSF, brain and air cavities.

The label map follows from the geometry: inside the inner skull is CSF or
brain, between inner and outer skull is bone, between outer skull and skin
is scalp. Air cavities are large, very dark regions outside the inner
skull (sinuses, mastoid cells, nasal cavity and pharynx), found by an opening
so that thin compact bone, which is as dark as air in a T1, is not mistaken
for air.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray

from . import labels as L
from .morphology import opening
from .volume import Volume

__all__ = ["air_cavities", "assemble_labels"]

log = logging.getLogger("skullseg")


def air_cavities(
    image: Volume,
    head: NDArray[np.bool_],
    inner: NDArray[np.bool_],
    air_threshold: float,
    *,
    min_radius_mm: float = 2.5,
    min_volume_ml: float = 0.5,
) -> NDArray[np.bool_]:
    """Very dark regions in the head, outside the inner skull, at least 2 x ``min_radius_mm`` thick.

    Parameters
    ----------
    image : Volume
        Bias-corrected T1 on the working grid.
    head, inner : ndarray of bool
        Head mask and inside of the inner skull.
    air_threshold : float
        Intensity below which a voxel may be air.
    min_radius_mm : float
        Opening radius: thinner dark structures (compact bone) are not air.
    min_volume_ml : float
        Smaller dark blobs are ignored.
    """
    from scipy import ndimage as ndi

    vox = image.zooms_mm[0]
    dark = (ndi.gaussian_filter(image.data, 0.7 / vox) < air_threshold) & head & ~inner
    air = opening(dark, min_radius_mm, vox)
    lab, n = ndi.label(air)
    if n == 0:
        return air
    sizes = np.bincount(lab.ravel()) * image.voxel_volume_ml
    sizes[0] = 0
    return (sizes >= min_volume_ml)[lab]


def assemble_labels(
    head: NDArray[np.bool_],
    brain: NDArray[np.bool_],
    inner: NDArray[np.bool_],
    outer: NDArray[np.bool_],
    air: NDArray[np.bool_] | None = None,
) -> NDArray[np.uint8]:
    """Label map (values of :mod:`skullseg.labels`) from nested masks.

    ``inner`` must lie inside ``outer``; both are clipped to the head.

    Examples
    --------
    >>> z = np.zeros((5, 5, 5), bool)
    >>> head = z.copy(); head[:] = True
    >>> outer = z.copy(); outer[1:4, 1:4, 1:4] = True
    >>> inner = z.copy(); inner[2, 2, 2] = True
    >>> lab = assemble_labels(head, inner, inner, outer)
    >>> [int((lab == v).sum()) for v in range(5)]
    [0, 98, 26, 0, 1]
    >>> outer[:] = False  # no bone at all: the ordering rule still puts bone around the brain
    >>> lab = assemble_labels(head, inner, inner, inner | outer)
    >>> int((lab == 2).sum())
    26
    """
    out = np.zeros(head.shape, np.uint8)
    out[head] = L.SCALP
    out[outer & head] = L.SKULL
    if air is not None:
        out[air & head & ~inner] = L.AIR_CAVITY
    out[inner & head] = L.CSF
    out[inner & head & brain] = L.BRAIN
    # ordering rule (as in SimNIBS charm): soft tissue or air touching the intracranial
    # space is bone, so brain and CSF are always enclosed by skull
    from scipy import ndimage as ndi

    touching = ndi.binary_dilation(inner & head, ndi.generate_binary_structure(3, 3))
    out[touching & ((out == L.SCALP) | (out == L.AIR_CAVITY))] = L.SKULL
    return out
