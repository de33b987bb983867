"""The pipeline: conform -> bias-correct -> masks -> skull surfaces -> labels -> outputs.

:func:`segment` is the one-call library API on a :class:`Volume`; :func:`run`
(:mod:`skullseg.job`, importable from here too) does a whole command-line job from a
file to a folder of outputs, written atomically (a temporary folder beside the output,
renamed at the end).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from . import labels as L
from .checks import check_result
from .conform import (
    conform,
    extend_grid,
    field_of_view,
    is_fine,
    pad_faces,
    resample_to_grid,
    shares_voxel_centres,
    to_input_grid,
    working_grid,
)
from .errors import SkullsegError
from .head import cut_faces, head_mask, skin_mask
from .intensity import n4_bias_correct
from .job import run
from .label_map import label_map
from .masks import (
    BrainLevels,
    adaptive_brain_mask,
    brain_levels,
    brain_levels_t2,
    slice_heights_mm,
)
from .parallel import cpu_threads, itk_single_thread
from .priors import (
    affine_priors,
    deformed_priors,
    fit_atlas,
    intracranial_prior_region,
    looks_t2_weighted,
)
from .progress import ProgressDisplay
from .sharpen import sharpen_cranium
from .skull import SkullParams, SkullSurfaces, fit_skull_surfaces
from .volume import Volume

__all__ = ["SegmentResult", "segment", "run", "OUTPUT_FILES"]

log = logging.getLogger("skullseg")

#: The output contract of ``skullseg run`` (names other tools rely on).
OUTPUT_FILES = (
    "report.html",
    "thickness.nii.gz",
    "labels.seg.nrrd",
    "bem/inner_skull.surf",
    "bem/outer_skull.surf",
    "bem/outer_skin.surf",
    "labels.nii.gz",
    "labels.tsv",
    "skull_mask.nii.gz",
    "skull.stl",
    "qc.png",
    "report.json",
)


@dataclass
class SegmentResult:
    """Everything :func:`segment` found, on the input grid and on the working grid."""

    labels: Volume  # uint8 on the input grid
    labels_work: Volume  # uint8 on the working grid (RAS, isotropic)
    image_work: Volume  # bias-corrected input on the working grid
    surfaces: SkullSurfaces
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # hard plausibility failures
    t1_weighted: bool = True  # the input was segmented as a T1 (False: as a T2 alone)

    @property
    def skull_mask(self) -> Volume:
        """uint8 0/1 skull mask on the input grid."""
        return self.labels.with_data((self.labels.data == L.SKULL).astype(np.uint8))


def segment(
    image: Volume,
    *,
    voxel_mm: float = 1.0,
    params: SkullParams | None = None,
    n4: bool = True,
    use_atlas: bool = True,
    deformable_atlas: bool = True,
    t2: Volume | None = None,
    facial_bone: bool = True,
    t1_weighted: bool | None = True,
    pad_cut_mm: float = 20.0,
    progress: ProgressDisplay | None = None,
) -> SegmentResult:
    """Segment skull, scalp, CSF, brain and air cavities from a T1-weighted head MRI.

    Parameters
    ----------
    image : Volume
        T1-weighted head image, any orientation and voxel size.
    voxel_mm : float
        Working resolution in mm.
    params : SkullParams
        Bounds of the layered skull model.
    n4 : bool
        Correct the bias field (N4) before segmenting.
    t2 : Volume, optional
        A T2- or PD-weighted image already aligned with ``image`` (same world
        space, any grid; see :func:`skullseg.register.register_rigid`). It
        places the inner skull where bright CSF meets dark bone, and what is
        left in the bone band that is dark in the T1 but bright in the T2 is
        CSF (:func:`skullseg.tissue.fluid_in_bone`: cisterns at the skull base).
    facial_bone : bool
        Also label the bone below the cranium (facial skeleton, mandible, skull
        base, upper spine) as skull; ``False`` keeps only the cranium between
        the inner and outer skull surfaces. Needs a T1-weighted ``image``.
    t1_weighted : bool or None
        ``image`` is T1-weighted (CSF dark). Then the spinal cord is followed
        below the brain and its canal is kept out of the skull label;
        ``False`` (a T2 or PD image alone) also turns ``facial_bone`` off and,
        without ``t2``, uses ``image`` as its own T2. ``None`` decides from the image once the
        atlas is registered: T2-weighted when the atlas's CSF is brighter than its
        brain (:func:`skullseg.priors.looks_t2_weighted`), else T1; without the
        atlas (or with ``t2`` given) it is a T1. ``SegmentResult.t1_weighted``
        says which. An image taken as a T1 whose CSF looks bright gets a warning.
    use_atlas : bool
        Register the whole-head atlas (affine) and keep the brain inside its
        intracranial prior, which stops leaks into the face and neck.
    deformable_atlas : bool
        Without a T2 (T1 input), refine the atlas fit with a B-spline
        (:func:`skullseg.deformable.refine_atlas_fit`, a few seconds) and take the skull
        base's cisterns from its CSF prior (:func:`skullseg.cisterns.cisterns_from_atlas`).
    pad_cut_mm : float
        Where the field of view cuts through the head (:func:`skullseg.head.cut_faces`),
        the image is extended this far by repeating its edge slice before segmenting,
        so the head's tissue goes on past the cut and no skull is closed across the
        last slices; labels are cropped back to the field of view. 0 turns this off.
    progress : ProgressDisplay, optional
        Where stage progress goes (silent by default; timings are kept either way).

    Returns
    -------
    SegmentResult

    Examples
    --------
    >>> from skullseg.phantom import make_phantom
    >>> result = segment(make_phantom(2.0).t1)  # doctest: +SKIP
    """
    timer = progress if progress is not None else ProgressDisplay(quiet=True)
    warnings: list[str] = []
    side = cpu_threads(2) > 1  # a second CPU runs independent stages side by side

    # 1. conform: an isotropic RAS working grid, extended past any cut of the field of view
    with timer.stage("conform"):
        grid, crop, work, fov = _conform(image, voxel_mm, pad_cut_mm, warnings)
    with timer.stage("head mask"):
        head = head_mask(work)

    # 2. bias correction (N4) beside the atlas registration (affine); neither needs the other
    raw = work
    work, priors, transform = _correct_and_register(
        work, head, n4=n4, use_atlas=use_atlas, side=side, timer=timer, warnings=warnings
    )
    # the contrast: a T2 alone has CSF brighter than brain where the atlas expects CSF
    bright_csf = (
        t1_weighted is not False and priors is not None and looks_t2_weighted(work, head, priors)
    )
    if t1_weighted is None:  # decide
        t1_weighted = t2 is not None or not bright_csf
        if not t1_weighted:
            warnings.append(
                "input looks T2-weighted (CSF brighter than brain): segmented as a T2 "
                "(cranium only); --modality t1 overrides"
            )
    if t1_weighted and bright_csf:
        warnings.append(
            "input looks T2-weighted (CSF brighter than brain) but is segmented as a T1"
            + (": are the T1 and the T2 swapped?" if t2 is not None else "")
        )
    if not t1_weighted and t2 is None:  # a T2 alone is its own T2: it places the inner skull
        t2 = image

    # the B-spline refinement of the atlas fit is needed only for the labels (the skull
    # base's cisterns, without a T2): with a second CPU it runs beside steps 3-5
    def deformed() -> dict[str, Volume] | None:
        with timer.stage("atlas refinement"), itk_single_thread():
            return deformed_priors(raw, head, transform)

    cistern_priors: Callable[[], dict[str, Volume] | None] | None = None
    if transform is not None and deformable_atlas and t2 is None and t1_weighted:
        if side:
            deform_pool = ThreadPoolExecutor(max_workers=1)
            cistern_priors = deform_pool.submit(deformed).result
            deform_pool.shutdown(wait=False)  # the submitted job still runs to its end
        else:
            done = deformed()
            cistern_priors = lambda: done  # noqa: E731

    # 3. brain: an adaptive threshold mask kept inside the atlas's intracranial prior
    with timer.stage("brain mask"):
        levels, brain = _brain(work, head, priors, t1_weighted)

    # 4. skull surfaces: inner skull, outer skull and scalp along 10 242 rays
    with timer.stage("skull surfaces"):
        # the head mask is generous (dark skin kept in); the scalp ends where the
        # skin's fall into air is at half height
        skin = skin_mask(work, head, field_of_view=fov)
        p = params or SkullParams()
        t2_work = None if t2 is None else resample_to_grid(t2, work, order=1)
        surfaces = fit_skull_surfaces(
            work,
            skin,
            brain,
            dark_threshold=p.dark_fraction * levels.wm,
            params=p,
            t2=t2_work,
            input_axes_mm=image.affine[:3, :3],
        )

    # 5. labels on the working grid, then on the input grid
    with timer.stage("labels"):
        # an oblique (or finer) scan gets its labels back by a vote: the cranium's boundaries
        # are then read off the surfaces at its own voxel centres (the surfaces' own layers)
        oblique = not shares_voxel_centres(grid, image) and is_fine(image, grid.zooms_mm[0])
        lab_work, layers = label_map(
            work,
            skin.data > 0,
            brain.data > 0,
            surfaces,
            levels,
            p,
            air_prior=None if priors is None else priors["air"],
            t2=t2_work,
            t1_weighted=t1_weighted,
            facial_bone=facial_bone,
            keep_layers=oblique,
            cistern_priors=cistern_priors,
            threads=2 if side else 1,
        )
        if crop is not None:  # back to the field of view's working grid
            lab_work, work = lab_work.crop(crop), work.crop(crop)
            layers = None if layers is None else layers[crop]
        lab_in = to_input_grid(lab_work, image)
        if layers is not None:
            lab_in = sharpen_cranium(lab_in, lab_work, layers, surfaces)
    checks = check_result(
        lab_work, thickness_median_mm=float(np.median(surfaces.outer_mm - surfaces.inner_mm))
    )
    warnings += checks.warnings
    return SegmentResult(
        lab_in,
        lab_work,
        work,
        surfaces,
        dict(timer.timings),
        warnings,
        failures=checks.failures,
        t1_weighted=t1_weighted,
    )


def _conform(
    image: Volume, voxel_mm: float, pad_cut_mm: float, warnings: list[str]
) -> tuple[Volume, tuple[slice, ...] | None, Volume, Volume]:
    """The working grid (extended where the field of view cuts the head), the crop back to
    the field of view, the image on that grid and the field of view's mask."""
    grid = working_grid(image, voxel_mm)
    faces = cut_faces(image) if pad_cut_mm > 0 else []
    crop = None
    if faces:
        grid, crop = extend_grid(grid, image, faces, pad_cut_mm)
        log.info(
            "field of view cuts the head: %d face(s) extended by %.0f mm",
            len(faces),
            pad_cut_mm,
        )
    padded = pad_faces(image, faces, pad_cut_mm)
    work = conform(padded, grid=grid)
    fov = field_of_view(padded, grid)
    if max(image.zooms_mm) > 2.5:
        warnings.append(
            f"thick slices ({max(image.zooms_mm):.1f} mm): accuracy is limited "
            "along the slice direction"
        )
    return grid, crop, work, fov


def _correct_and_register(
    work: Volume,
    head: Volume,
    *,
    n4: bool,
    use_atlas: bool,
    side: bool,
    timer: ProgressDisplay,
    warnings: list[str],
) -> tuple[Volume, dict[str, Volume] | None, NDArray | None]:
    """N4 bias correction and the atlas's affine fit (on the uncorrected image: mutual
    information does not mind a smooth bias), side by side when ``side``. Each runs on one
    ITK thread, so neither result depends on the machine."""

    def atlas_prior(image: Volume) -> tuple[dict[str, Volume] | None, NDArray | None, str]:
        with timer.stage("atlas prior"):
            transform, note = fit_atlas(image, head)
            if transform is None:
                return None, None, note
            return affine_priors(image, transform), transform, ""

    priors, transform, note = None, None, ""
    with itk_single_thread(), ThreadPoolExecutor(max_workers=1) as pool:
        registering = pool.submit(atlas_prior, work) if side and use_atlas else None
        raw = work
        with timer.stage("bias correction"):
            if n4:
                work = n4_bias_correct(work, head)
        if registering is not None:
            priors, transform, note = registering.result()
        elif use_atlas:
            priors, transform, note = atlas_prior(raw)
    if note:
        warnings.append(note)
    return work, priors, transform


#: The brain mask may reach down to this far above the bottom of the registered atlas's
#: brain (prior > 0.5) where that is lower than 85 mm below the brain's guessed centre.
ATLAS_FLOOR_MARGIN_MM = 5.0


def _brain(
    work: Volume, head: Volume, priors: dict[str, Volume] | None, t1_weighted: bool
) -> tuple[BrainLevels, Volume]:
    """The brain's intensity levels and mask; raises when no brain is found."""
    # the registered atlas says how large the brain is and how low it reaches
    atlas: dict = {}
    if priors is not None:
        prior = priors["brain"]
        reached = slice_heights_mm(prior)[(prior.data > 0.5).any(axis=(0, 1))]
        floor = float(reached.min()) + ATLAS_FLOOR_MARGIN_MM if reached.size else None
        atlas = {
            "allowed": intracranial_prior_region(priors),
            "expected_brain_ml": float(prior.data.sum()) * prior.voxel_volume_ml,
            "floor_z_mm": floor,
        }
    levels = brain_levels(work, head)
    brain = adaptive_brain_mask(work, head, levels, **atlas)
    if not t1_weighted and brain.data.sum() * brain.voxel_volume_ml < 300:
        # a T2 whose white matter is much darker than its grey matter: the T1 levels
        # cut the white matter out; take the brain's range from a T2 mixture instead
        log.info("brain mask: too small with T1 levels; T2 levels instead")
        levels = brain_levels_t2(work, head)
        brain = adaptive_brain_mask(work, head, levels, **atlas)
    if brain.data.sum() * brain.voxel_volume_ml < 300:
        raise SkullsegError("no brain found in the image (is it a head MRI?)")
    return levels, brain
