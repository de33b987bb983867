"""The atlas priors the pipeline uses: an affine fit, its priors, and a deformable refinement.

:func:`fit_atlas` registers the packaged whole-head atlas (:mod:`skullseg.atlas`) and
refuses a poor fit; :func:`affine_priors` warps its priors; :func:`deformed_priors` refines
the fit with a B-spline (:mod:`skullseg.deformable`) for the skull base's cisterns;
:func:`intracranial_prior_region` is where the brain mask may grow.
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
    "intracranial_prior_region",
]

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
