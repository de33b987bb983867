"""The label map on the working grid: skull surfaces and tissue rules put together.

The cranium comes from the nested surfaces (:class:`~skullseg.skull.SkullSurfaces`): inside
the inner skull is CSF or brain, between the inner and outer skull is bone. The rest of
:mod:`skullseg.labels`' classes come from rules on the image, in this order:

1. air cavities (sinuses, mastoid cells): dark voxels anywhere beyond the outer skull, and in
   the bone band only at the skull base where the registered atlas expects air
   (:func:`~skullseg.tissue.sinus_region`, :func:`~skullseg.tissue.air_cavities`);
2. the spinal canal, traced below the brain on a T1 (:func:`~skullseg.spine.spinal_cord`),
   which is never bone;
3. bone below the cranium on a T1: facial skeleton, mandible, skull base, upper spine
   (:func:`~skullseg.tissue.extracranial_bone`);
4. with a T2, what is dark in the T1 but bright in the T2 inside the bone is CSF
   (:func:`~skullseg.tissue.fluid_in_bone`);
5. soft tissue that bone encloses on every side is marrow, so bone
   (:func:`~skullseg.tissue.enclosed_marrow`: thick bone whose outer table the layered
   model missed, e.g. the occipital protuberance);
6. without a T2, from an atlas that fits the head: air where the deformed atlas expects
   bone and no air is dark bone (:func:`~skullseg.dark_bone.dark_bone_from_atlas`), and the
   skull base's cisterns (and CSF the band rule put in the bone elsewhere) come from the
   deformed atlas's CSF prior (:func:`~skullseg.cisterns.cisterns_from_atlas`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import NDArray

from . import labels as L
from .cisterns import ATLAS_MIN_INSIDE, atlas_csf_inside, cisterns_from_atlas
from .dark_bone import dark_bone_from_atlas
from .masks import BrainLevels
from .sharpen import cranial_layers
from .skull import SkullParams, SkullSurfaces
from .tissue import (
    air_cavities,
    assemble_labels,
    enclosed_marrow,
    extracranial_bone,
    fluid_in_bone,
    sinus_region,
    spinal_cord,
)
from .volume import Volume

__all__ = ["label_map"]

log = logging.getLogger("skullseg")


def label_map(
    work: Volume,
    head: NDArray[np.bool_],
    brain: NDArray[np.bool_],
    surfaces: SkullSurfaces,
    levels: BrainLevels,
    params: SkullParams,
    *,
    air_prior: Volume | None = None,
    t2: Volume | None = None,
    t1_weighted: bool = True,
    facial_bone: bool = True,
    keep_layers: bool = False,
    cistern_priors: Callable[[], dict[str, Volume] | None] | None = None,
    threads: int = 1,
) -> tuple[Volume, NDArray[np.uint8] | None]:
    """Label every voxel of the working grid (values of :mod:`skullseg.labels`).

    Parameters
    ----------
    work : Volume
        Bias-corrected image on the working grid (RAS, isotropic).
    head, brain : ndarray of bool
        Head (skin) and brain masks on that grid.
    surfaces : SkullSurfaces
        Inner skull, outer skull and scalp (:func:`skullseg.skull.fit_skull_surfaces`).
    levels : BrainLevels
        The image's white-matter level; bone, CSF and air are below
        ``params.dark_fraction`` of it, air below ``params.air_fraction``.
    params : SkullParams
        Thresholds and the skull base's air rule.
    air_prior : Volume, optional
        The registered atlas's air prior (affine fit); without it no air is sought in the
        bone band, and no air is turned into dark bone.
    t2 : Volume, optional
        A T2 on the working grid: the bone band's fluid becomes CSF.
    t1_weighted : bool
        ``work`` is a T1: trace the spinal canal and, with ``facial_bone``, find the bone
        below the cranium.
    facial_bone : bool
        Label the facial skeleton, mandible, skull base and upper spine as bone.
    keep_layers : bool
        Also return the cranium's layers on this grid
        (:func:`skullseg.sharpen.cranial_layers`), for labels resampled to an oblique or
        finer input grid.
    cistern_priors : callable, optional
        Returns the deformed atlas's ``"csf"`` and ``"skull"`` priors (or ``None``); called
        once, when the rest of the labels are made, so a refinement started earlier can
        finish beside them. They give the basal cisterns and, with ``air_prior``, the dark
        bone taken for air.
    threads : int
        With 2, the spinal canal is traced on a second thread beside the surfaces' masks
        (the same result either way).

    Returns
    -------
    labels : Volume
        uint8 labels on the working grid.
    layers : ndarray or None
        The cranium's layers when ``keep_layers``.

    Examples
    --------
    >>> from skullseg.phantom import make_phantom
    >>> from skullseg.pipeline import segment
    >>> result = segment(make_phantom(2.0).t1)  # doctest: +SKIP
    >>> int((result.labels_work.data == 2).sum()) > 0  # doctest: +SKIP
    True
    """
    p = params
    dark = p.dark_fraction * levels.wm  # bone, CSF and air are darker than this in a T1
    tracing = None
    if t1_weighted and threads > 1:  # the spinal canal needs no surface: beside the masks
        cord_pool = ThreadPoolExecutor(max_workers=1)
        tracing = cord_pool.submit(spinal_cord, work, head, brain, dark_threshold=dark)
        cord_pool.shutdown(wait=False)
    inner, outer = surfaces.inside_all(work)
    layers = cranial_layers(inner, outer) if keep_layers else None
    inner &= head
    outer = (outer & head) | inner
    # air (sinuses, mastoid cells): anywhere beyond the outer skull; in the bone band
    # only at the skull base where the atlas expects air
    sinus = sinus_region(
        work,
        air_prior,
        below_z_mm=float(surfaces.centre_world[2]) + p.shell_air_above_centre_mm,
        prior_level=p.shell_air_prior,
    )
    no_air = inner | (outer & ~sinus)
    air = air_cavities(work, head, no_air, air_threshold=p.air_fraction * levels.wm)
    canal = other = None
    if tracing is not None:
        _, canal = tracing.result()
    elif t1_weighted:
        _, canal = spinal_cord(work, head, brain, dark_threshold=dark)
    if facial_bone and t1_weighted:
        other = extracranial_bone(
            work,
            head,
            outer,
            brain,
            air,
            tissue_floor=p.soft_floor_fraction * levels.wm,
            tissue_ceiling=p.soft_ceiling_fraction * levels.wm,
            bone_fraction=p.bone_fraction,
            below_z_mm=float(surfaces.centre_world[2]),
            canal=canal,
        )
    if t2 is not None and t1_weighted:
        band = outer & ~inner if other is None else (outer & ~inner) | other
        fluid = fluid_in_bone(work, t2, band & head, inner, brain, dark_threshold=dark)
        log.info("T2: %.1f mL of the bone band is fluid (CSF)", fluid.sum() * work.voxel_volume_ml)
        inner = inner | fluid
    labels = work.with_data(assemble_labels(head, brain, inner, outer, air, other, canal=canal))
    keep_out = None if canal is None else canal & head  # the canal is never bone
    marrow = enclosed_marrow(labels.data, work.zooms_mm)
    if keep_out is not None:
        marrow &= ~keep_out
    if marrow.any():
        log.info(
            "%.1f mL of soft tissue enclosed by bone is marrow", marrow.sum() * work.voxel_volume_ml
        )
        labels.data[marrow] = L.SKULL
    priors = None if cistern_priors is None else cistern_priors()
    fits = priors is not None and atlas_csf_inside(labels, priors["csf"]) >= ATLAS_MIN_INSIDE
    if fits and air_prior is not None:  # dark bone taken for air, where the atlas has bone
        bone = dark_bone_from_atlas(labels, priors["skull"], air_prior)
        if not facial_bone:  # the cranium alone: no bone from the face, jaw or spine
            bone &= outer
        if keep_out is not None:
            bone &= ~keep_out
        log.info(
            "atlas: %.1f mL of dark tissue taken for air is bone", bone.sum() * work.voxel_volume_ml
        )
        labels.data[bone] = L.SKULL
    if priors is not None:
        cisterns = cisterns_from_atlas(labels, priors["csf"], priors["skull"])
        log.info(
            "atlas: %.1f mL of the bone band is CSF (the basal cisterns, mostly)",
            cisterns.sum() * work.voxel_volume_ml,
        )
        labels.data[cisterns] = L.CSF
    return labels, layers
