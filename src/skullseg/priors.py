"""The atlas priors the pipeline uses: an affine fit, its priors, and a deformable refinement.

:func:`fit_atlas` registers the packaged whole-head atlas (:mod:`skullseg.atlas`) and
refuses a poor fit; :func:`affine_priors` warps its priors; :func:`deformed_priors` refines
the fit with a B-spline (:mod:`skullseg.deformable`) for the skull base's cisterns;
:func:`intracranial_prior_region` is where the brain mask may grow;
:func:`fluid_to_brain_ratio` tells a T2-weighted image from a T1 by where the atlas expects CSF.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray

from .volume import Volume

__all__ = [
    "affine_priors",
    "deformed_priors",
    "fit_atlas",
    "fluid_to_brain_ratio",
    "intracranial_prior_region",
    "looks_t2_weighted",
]

#: A T2-weighted image's CSF is brighter than its brain: :func:`looks_t2_weighted` calls an
#: image T2-weighted when :func:`fluid_to_brain_ratio` is above this. On the shared heads
#: the 15 T1s (the PD-like Visible Male included) read 0.63-0.93 and the three T2s 1.59-2.82
#: (BENCHMARKS.md, "More contrasts"); the threshold sits near their geometric middle.
T2_FLUID_RATIO = 1.2

log = logging.getLogger("skullseg")


def fit_atlas(
    work: Volume, head: Volume, *, min_head_dice: float = 0.8
) -> tuple[NDArray[np.float64] | None, str]:
    """Affinely register the whole-head atlas to ``work``: ``(atlas_from_subject, "")``.

    Returns ``(None, warning)`` when the atlas does not fit the head well (head Dice
    below ``min_head_dice``), so a bad registration never constrains.
    """
    from .atlas import load_atlas, register_atlas

    transform, info = register_atlas(load_atlas(), work, head_mask=head)
    if info.get("head_dice", 0.0) < min_head_dice:
        return None, (
            f"atlas registration is poor (head overlap {info.get('head_dice', 0):.2f});"
            " the brain mask is not constrained by the atlas and no sinus air is looked"
            " for inside the skull"
        )
    log.info("atlas: head overlap %.2f, %.1f s", info["head_dice"], info.get("seconds", 0))
    return transform, ""


def affine_priors(
    work: Volume, transform: NDArray[np.float64], classes: tuple[str, ...] = ("brain", "csf", "air")
) -> dict[str, Volume]:
    """The atlas priors of ``classes`` (and ``"coverage"``) on ``work``'s grid, affinely."""
    from .atlas import load_atlas, warp_priors

    return warp_priors(load_atlas(), transform, work, classes=classes)


def deformed_priors(
    work: Volume,
    head: Volume,
    transform: NDArray[np.float64],
    classes: tuple[str, ...] = ("csf", "skull"),
) -> dict[str, Volume] | None:
    """The priors of ``classes`` through a B-spline refinement of the affine ``transform``.

    None when the refinement is rejected (:func:`skullseg.deformable.refine_atlas_fit`).
    """
    from .atlas import load_atlas
    from .deformable import refine_atlas_fit, warp_priors_deformable

    atlas = load_atlas()
    warp, info = refine_atlas_fit(atlas, work, transform, head)
    if warp is None:
        return None
    log.info(
        "atlas: B-spline refinement, largest shift %.1f mm, %.1f s",
        info["max_displacement_mm"],
        info["seconds"],
    )
    return warp_priors_deformable(atlas, warp, work, classes=classes)


def intracranial_prior_region(
    priors: dict[str, Volume], *, level: float = 0.02, margin_mm: float = 6.0
) -> np.ndarray:
    """Where the brain may be: the atlas's brain + CSF prior above ``level``, dilated."""
    from .morphology import dilate

    brain = priors["brain"]
    region = (brain.data + priors["csf"].data) > level
    return dilate(region, margin_mm, brain.zooms_mm[0])


def fluid_to_brain_ratio(
    image: Volume,
    head: Volume,
    priors: dict[str, Volume],
    *,
    csf_level: float = 0.8,
    brain_level: float = 0.95,
) -> float:
    """How bright the atlas's CSF is against its brain: a contrast's signature.

    The upper quartile of ``image`` where the registered atlas's CSF prior exceeds
    ``csf_level`` (ventricles, sulci, cisterns), over its median where the brain prior
    exceeds ``brain_level``, inside ``head``. The upper quartile rather than the median
    because an affine fit puts some brain into the CSF region: in a T1 the ratio is
    below 1 (CSF dark), in a T2 well above it (CSF bright). NaN when either region is empty.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.full((10, 10, 10), 100.0, np.float32); img[4:6] = 300.0
    >>> csf = np.zeros_like(img); csf[4:6] = 1.0
    >>> v = Volume(img, np.eye(4)); head = v.with_data(np.ones(img.shape, bool))
    >>> priors = {"csf": v.with_data(csf), "brain": v.with_data(1.0 - csf)}
    >>> round(fluid_to_brain_ratio(v, head, priors), 2)
    3.0
    """
    data = np.asarray(image.data, dtype=np.float32)
    inside = np.asarray(head.data) > 0
    fluid = inside & (priors["csf"].data > csf_level)
    brain = inside & (priors["brain"].data > brain_level)
    if not fluid.any() or not brain.any():
        return float("nan")
    brain_median = float(np.median(data[brain]))
    if brain_median <= 0:
        return float("nan")
    return float(np.percentile(data[fluid], 75)) / brain_median


def looks_t2_weighted(
    image: Volume, head: Volume, priors: dict[str, Volume], *, ratio: float = T2_FLUID_RATIO
) -> bool:
    """True when the atlas's CSF is brighter than its brain by more than ``ratio``.

    See :func:`fluid_to_brain_ratio`; an undecidable image (NaN) counts as a T1.
    """
    value = fluid_to_brain_ratio(image, head, priors)
    log.info("contrast: CSF / brain intensity %.2f (T2-weighted above %.2f)", value, ratio)
    return bool(value > ratio)
